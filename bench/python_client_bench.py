#!/usr/bin/python3
"""Exec round trip through the Python client against the C++ bench client, in one run.

Benchmark 2's round trip -- ``POST /v1/vms/{id}/exec {"argv": ["/bin/true"]}``
on a fresh connection, the NDJSON stream read to its exit event -- timed
three ways against the SAME VM, interleaved sample by sample (the order
rotating each round), so the three share the machine's noise:

- the C++ bench client (bench/http_client.cc, Beast), as
  ``agentvm-bench exec-rtt --on-request``: one round trip per line it reads,
  timed inside that process;
- ``agentvm.Client(...).exec(["/bin/true"])``, timed around the call;
- ``await agentvm.AsyncClient(...).exec(["/bin/true"])`` on one event loop.

The difference of the p50s is what the Python library adds. It starts its own
agentvmd (TCG, ``--no-golden-snapshots``, VMs without a NIC) in a temp dir and
stops it at the end, or uses a running one with ``--socket``.

Usage (as root, after ``scripts/build --target agentvmd agentvm-guest agentvm-bench``):

    /usr/bin/python3 bench/python_client_bench.py [--runs 200] [--warmups 10]
        [--image-dir DIR] [--build-dir DIR] [--socket PATH]

Prints a markdown report on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "clients" / "python" / "src"))

import agentvm  # noqa: E402

ARGV = ["/bin/true"]


def log(message: str) -> None:
    print(f"python-client-bench: {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@contextmanager
def own_daemon(build_dir: Path, image_dir: str) -> Iterator[str]:
    """An agentvmd of our own, as agentvm-bench's benchmark 2 starts it; yields its socket."""
    root = Path(tempfile.mkdtemp(prefix="avmpy-bench-"))
    socket = str(root / "agentvm.sock")
    args = [str(build_dir / "bin" / "agentvmd"), "--socket", socket, "--state-dir", str(root / "state"),
            "--run-dir", str(root / "run"), "--image-dir", image_dir, "--accel", "tcg", "--stop-grace", "1",
            "--default-network", "isolated", "--no-golden-snapshots", "--log-level", "warn"]
    with open(root / "agentvmd.log", "wb") as log_file:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(socket) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if not os.path.exists(socket):
            raise SystemExit("agentvmd did not start:\n" + (root / "agentvmd.log").read_text(errors="replace"))
        yield socket
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def daemon_socket(socket: str | None, build_dir: Path, image_dir: str) -> Iterator[str]:
    if socket:
        yield socket
        return
    with own_daemon(build_dir, image_dir) as own:
        yield own


class CppClient:
    """``agentvm-bench exec-rtt --on-request``: a round trip per request, its time read back."""

    def __init__(self, bench: Path, socket: str, vm_id: str) -> None:
        self.process = subprocess.Popen(
            [str(bench), "exec-rtt", "--socket", socket, "--vm", vm_id, "--on-request"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __call__(self) -> float:
        stdin: IO[str] | None = self.process.stdin
        stdout: IO[str] | None = self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write("\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise SystemExit("agentvm-bench exec-rtt failed (see above)")
        return float(line)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(10)


def python_sync(socket: str, vm_id: str) -> Callable[[], float]:
    vm = agentvm.Client(socket).get(vm_id)

    def once() -> float:
        start = time.perf_counter()
        result = vm.exec(ARGV)
        elapsed = time.perf_counter() - start
        if not result.ok:
            raise SystemExit(f"exec /bin/true: {result}")
        return elapsed

    return once


def python_async(socket: str, vm_id: str, runner: asyncio.Runner) -> Callable[[], float]:
    vm = runner.run(agentvm.AsyncClient(socket).get(vm_id))

    async def timed() -> float:
        start = time.perf_counter()
        result = await vm.exec(ARGV)
        elapsed = time.perf_counter() - start
        if not result.ok:
            raise SystemExit(f"exec /bin/true: {result}")
        return elapsed

    return lambda: runner.run(timed())


def percentile(values: list[float], q: float) -> float:
    """Nearest rank, as bench/stats.cc."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="timed round trips of each kind (default 200)")
    parser.add_argument("--warmups", type=int, default=10, help="untimed round trips of each kind first (default 10)")
    parser.add_argument("--image-dir", default=os.environ.get("AGENTVM_IMAGE_DIR", "/var/lib/agentvm/images"))
    parser.add_argument("--build-dir", default=os.environ.get("AGENTVM_BUILD_DIR", str(REPO / "build")))
    parser.add_argument("--socket", help="use this running agentvmd instead of starting one")
    parser.add_argument("--command", default=None, help="how to reproduce this run, printed in the report")
    options = parser.parse_args()
    build_dir = Path(options.build_dir).resolve()
    options.image_dir = os.path.abspath(options.image_dir)
    bench = build_dir / "bin" / "agentvm-bench"
    if not bench.is_file():
        raise SystemExit(f"no {bench}: scripts/build --target agentvmd agentvm-guest agentvm-bench")
    command = options.command or "/usr/bin/python3 bench/python_client_bench.py " + " ".join(sys.argv[1:])
    load_start = load_average()
    started_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    with daemon_socket(options.socket, build_dir, options.image_dir) as socket:
        client = agentvm.Client(socket)
        log("creating a VM (a cold boot under TCG)")
        vm = client.create(image="tiny", cpus=1, memory_mib=256, network="isolated")
        try:
            cpp = CppClient(bench, socket, vm.id)
            with asyncio.Runner() as runner:
                kinds: dict[str, Callable[[], float]] = {
                    "cpp": cpp,
                    "sync": python_sync(socket, vm.id),
                    "async": python_async(socket, vm.id, runner),
                }
                samples: dict[str, list[float]] = {name: [] for name in kinds}
                names = list(kinds)
                for i in range(options.warmups + options.runs):
                    for k in range(len(names)):  # rotate who goes first
                        name = names[(i + k) % len(names)]
                        elapsed = kinds[name]()
                        if i >= options.warmups:
                            samples[name].append(elapsed)
                    if i >= options.warmups and (i - options.warmups + 1) % 50 == 0:
                        log(f"{i - options.warmups + 1}/{options.runs} rounds")
            cpp.close()
        finally:
            vm.remove(force=True)
    load_end = load_average()

    rows = [("cpp", "C++ bench client (`agentvm-bench exec-rtt`, Beast)"),
            ("sync", "Python `Client.exec` (http.client)"),
            ("async", "Python `AsyncClient.exec` (asyncio, loop.sock_*)")]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"Measured {started_at} with `{command}`.")
    print(f"Host: {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, load average at start {load_start}, "
          f"at end {load_end}. Python {platform.python_version()} ({sys.executable}). QEMU with TCG; "
          f"image tiny, 1 vCPU, 256 MiB, no NIC.\n")
    print(f"{options.runs} round trips of each kind, interleaved one by one in the same VM (order rotating), "
          f"after {options.warmups} untimed ones of each.\n")
    print("| client | p50 | p99 | mean | min |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for key, label in rows:
        values = samples[key]
        print(f"| {label} | {ms(median(values))} | {ms(percentile(values, 0.99))} | "
              f"{ms(sum(values) / len(values))} | {ms(min(values))} |")
    base = median(samples["cpp"])
    print()
    for key, label in rows[1:]:
        delta = median(samples[key]) - base
        # Each round's pair ran back to back, so slow drift in load cancels out.
        paired = median([py - cpp for py, cpp in zip(samples[key], samples["cpp"])])
        print(f"- {label.split(' (')[0]} minus C++: p50 **{delta * 1000:+.2f} ms**; "
              f"median of the per-round differences {paired * 1000:+.2f} ms")


if __name__ == "__main__":
    main()
