"""A real agentvmd for the vm tier, started the way tests/support/daemon.cc starts one.

Its own socket, state and run directories under a temp dir; TCG; no network
device for VMs (``--default-network isolated``: a daemon in the root network
namespace must never build a bridge or ruleset there). ``stop()`` sends
SIGTERM, waits for a clean exit and checks that no QEMU of this daemon
outlived it, then removes the directories.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]


def bin_dir() -> Path:
    """``$AGENTVM_BIN_DIR`` (ctest sets it), else ``$AGENTVM_BUILD_DIR/bin``, else build/bin."""
    if os.environ.get("AGENTVM_BIN_DIR"):
        return Path(os.environ["AGENTVM_BIN_DIR"])
    return Path(os.environ.get("AGENTVM_BUILD_DIR") or REPO / "build") / "bin"


def image_dir() -> str:
    """``$AGENTVM_TEST_IMAGE_DIR``, else /var/lib/agentvm/images; the tiny image must be there."""
    directory = os.environ.get("AGENTVM_TEST_IMAGE_DIR") or "/var/lib/agentvm/images"
    if not (Path(directory) / "tiny" / "image.json").is_file():
        raise RuntimeError(f"the tiny image is missing from {directory}: "
                           f"run scripts/build-image tiny --out {directory}")
    return directory


def processes_with_arg(needle: str) -> list[str]:
    """Command lines (other than ours) that contain ``needle``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path("/proc", entry, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append(f"{entry}: {cmdline}")
    return found


class Daemon:
    def __init__(self, extra_args: list[str]) -> None:
        # Short: the socket path must stay under 108 bytes. The prefix is one
        # scripts/test looks for when it checks for leaked QEMUs.
        self.root = Path(tempfile.mkdtemp(prefix="avmpy-"))
        self.socket = str(self.root / "agentvm.sock")
        self.run_dir = str(self.root / "run")
        self.log_path = self.root / "agentvmd.log"
        agentvmd = bin_dir() / "agentvmd"
        if not agentvmd.is_file():
            raise RuntimeError(f"no agentvmd at {agentvmd}: build it (scripts/build --target agentvmd)")
        self.args = [str(agentvmd), "--socket", self.socket, "--state-dir", str(self.root / "state"),
                     "--run-dir", self.run_dir, "--image-dir", image_dir(), "--accel", "tcg",
                     "--log-level", "debug", "--default-network", "isolated", *extra_args]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.socket) and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if not os.path.exists(self.socket):
            self.stop()
            raise RuntimeError(f"agentvmd did not create {self.socket}; its log:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def qemus(self) -> list[str]:
        """The QEMU processes of this daemon's VMs (ready pool VMs included)."""
        return [p for p in processes_with_arg(self.run_dir + "/") if "qemu-system" in p]

    def stop(self) -> None:
        """Stops agentvmd; raises if it did not exit cleanly or left a QEMU behind."""
        problems = []
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                problems.append("agentvmd did not exit within 60 s of SIGTERM")
        if self.process.returncode != 0:
            problems.append(f"agentvmd exited with {self.process.returncode}")
        leaked = self.qemus()
        for line in leaked:
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
        if leaked:
            problems.append("QEMUs outlived agentvmd:\n" + "\n".join(leaked))
        log = self.log()
        shutil.rmtree(self.root, ignore_errors=True)
        if problems:
            raise RuntimeError("; ".join(problems) + "\nagentvmd's log (end):\n" + log[-8000:])
