"""The Python client against a real agentvmd: real QEMU (TCG), the tiny image,
a warm pool of 2, so every VM here is a restored clone handed over by the pool
(or, when the pool is momentarily empty, restored for the create)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import agentvm
from agentvm import AsyncClient, Client, CreateArgs
from agentvm.pytest_plugin import create_args
from tests.vm.conftest import MIN_READY, wait_for_full_pool
from tests.vm.daemon import Daemon

PACKAGE = Path(__file__).resolve().parents[2]

# The command waits for a file the test writes only after it has seen the
# first line: if output were held back until the command ended, the two
# would wait for each other until the guest timeout.
HANDSHAKE = "echo first; i=0; while [ ! -e /tmp/go ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; echo second"


def pool_profile(client: Client) -> CreateArgs:
    return create_args(client, "tiny", None)


def qemu_of(daemon: Daemon, vm_id: str) -> list[str]:
    return [p for p in daemon.qemus() if f" -name guest={vm_id} " in p]


def test_create_exec_files_snapshots_and_release(daemon: Daemon, client: Client) -> None:
    with client.vm(**pool_profile(client)) as vm:
        assert vm.last_info.state == "running"
        assert vm.last_info.boot in ("pool", "restore"), vm.last_info
        assert qemu_of(daemon, vm.id), "no QEMU for the VM"

        result = vm.exec(["sh", "-c", "echo out; echo err >&2; exit 7"])
        assert (result.stdout, result.stderr, result.exit_code, result.status) == (b"out\n", b"err\n", 7, 7)
        assert vm.exec("echo $GREETING from $(pwd)", env={"GREETING": "hi"}, cwd="/tmp").stdout == b"hi from /tmp\n"
        assert vm.exec(["cat"], stdin=b"\x00\xff in\n").stdout == b"\x00\xff in\n"

        payload = bytes(range(256)) * 64
        vm.write_file("/root/data bin+1", payload, mode=0o600)
        assert vm.read_file("/root/data bin+1") == payload
        assert vm.exec(["stat", "-c", "%a %s", "/root/data bin+1"]).stdout == b"600 16384\n"
        with pytest.raises(agentvm.NotFound):
            vm.read_file("/root/missing")

        vm.write_file("/root/state", "before\n")
        snap = vm.snapshot("before")
        assert snap.name == "before" and snap.vm_state_bytes > 0
        vm.write_file("/root/state", "after\n")
        vm.restore("before")
        assert vm.read_file("/root/state") == b"before\n"
        assert [s.name for s in vm.snapshots()] == ["before"]
        with pytest.raises(agentvm.Conflict):
            vm.snapshot("before")
        vm.delete_snapshot("before")
        assert vm.snapshots() == []

        assert vm.info().state == "running"
        assert "agentvm-guest" in vm.console()  # a clone's console starts at its restore
        vm_id = vm.id
    with pytest.raises(agentvm.NotFound):
        client.get(vm_id)
    assert not qemu_of(daemon, vm_id), "the released VM's QEMU is still running"


def test_streaming_delivers_output_before_the_command_ends(client: Client) -> None:
    with client.vm(**pool_profile(client)) as vm:
        started = time.monotonic()
        lines = []
        with vm.exec_stream(HANDSHAKE, timeout=30) as output:
            for chunk in output:
                lines.append(chunk.data)
                if chunk.data == b"first\n":
                    assert not output.done
                    vm.write_file("/tmp/go", "")
        assert b"".join(lines) == b"first\nsecond\n"
        assert output.result.status == 0 and not output.result.timed_out
        assert time.monotonic() - started < 15


def test_a_guest_timeout_is_reported_as_timed_out(client: Client) -> None:
    with client.vm(**pool_profile(client)) as vm:
        result = vm.exec("echo started; sleep 60", timeout=1)
        assert (result.timed_out, result.status, result.stdout) == (True, 124, b"started\n")
        assert result.duration < 15
        # The VM is fine afterwards.
        assert vm.exec("echo still here").stdout == b"still here\n"


def test_the_async_client(daemon: Daemon) -> None:
    async def main() -> None:
        client = AsyncClient(daemon.socket, timeout=120)
        async with client.vm(**pool_profile(Client(daemon.socket))) as vm:
            a, b = await asyncio.gather(vm.exec("sleep 0.5; echo a"), vm.exec("sleep 0.5; echo b"))
            assert (a.stdout, b.stdout) == (b"a\n", b"b\n")
            lines = []
            async with vm.exec_stream(HANDSHAKE, timeout=30) as output:
                async for chunk in output:
                    lines.append(chunk.data)
                    if chunk.data == b"first\n":
                        await vm.write_file("/tmp/go", "")
            assert b"".join(lines) == b"first\nsecond\n"
            timed_out = await vm.exec("sleep 60", timeout=1)
            assert timed_out.timed_out and timed_out.status == 124
            await vm.write_file("/tmp/x", b"async")
            assert await vm.read_file("/tmp/x") == b"async"
            vm_id = vm.id
        assert [v.id for v in await client.list()] == []
        with pytest.raises(agentvm.NotFound):
            await client.get(vm_id)

    asyncio.run(main())


def test_twenty_pooled_vm_blocks_leave_nothing_behind(daemon: Daemon, client: Client) -> None:
    profile = pool_profile(client)
    boots = []
    ids = []
    started = time.monotonic()
    for i in range(20):
        with client.vm(**profile) as vm:
            assert vm.exec(["echo", str(i)]).stdout == f"{i}\n".encode()
            boots.append(vm.last_info.boot)
            ids.append(vm.id)
    elapsed = time.monotonic() - started
    print(f"20 blocks in {elapsed:.1f} s; boots: {boots.count('pool')} from the pool, "
          f"{boots.count('restore')} restored")
    assert len(set(ids)) == 20
    assert "cold" not in boots
    assert boots.count("pool") > 0
    assert client.list() == []
    for vm_id in ids:
        assert not qemu_of(daemon, vm_id), f"{vm_id}'s QEMU outlived its release"
    # What is left is the pool refilled: its ready VMs, nothing else.
    pool = wait_for_full_pool(client, 60)
    assert (pool.ready, pool.starting, pool.in_use) == (MIN_READY, 0, 0), pool
    assert len(daemon.qemus()) == MIN_READY, daemon.qemus()


def test_the_pytest_plugin_on_an_example_suite(daemon: Daemon, client: Client) -> None:
    suite = PACKAGE / "examples" / "pytest_suite"
    env = dict(os.environ, PYTHONPATH=f"{PACKAGE / 'src'}", PYTHONDONTWRITEBYTECODE="1")
    env.pop("AGENTVM_SOCKET", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-p", "agentvm.pytest_plugin",
         "--rootdir", str(suite), "--agentvm-socket", daemon.socket, "--agentvm-image", "tiny", str(suite)],
        env=env, capture_output=True, text=True, timeout=300)
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
    assert client.list() == []
