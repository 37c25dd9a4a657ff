"""What only the asyncio client has: concurrency, cancellation, the awaitable stream."""

from __future__ import annotations

import asyncio
import threading

import pytest

import agentvm
from tests.unit.fake_daemon import FakeDaemon, Received, Reply, vm_json


def serve_vms(fake: FakeDaemon) -> None:
    fake.json_route("POST", "/v1/vms", 201, vm_json("vm-1"))
    fake.json_route("GET", "/v1/vms/vm-1", 200, vm_json("vm-1"))
    fake.route("POST", "/v1/vms/vm-1/release", lambda _r, reply: reply.send(204))


def test_execs_on_one_client_run_concurrently(fake: FakeDaemon) -> None:
    serve_vms(fake)
    # Each exec ends only once both are running: one at a time would deadlock.
    both_running = threading.Barrier(2, timeout=5)

    def handler(request: Received, reply: Reply) -> None:
        reply.begin_stream()
        name = request.json()["argv"][-1]
        reply.event(type="stdout", data=f"{name} started\n")
        both_running.wait()
        reply.exit(0)
        reply.end_stream()

    fake.route("POST", "/v1/vms/vm-1/exec", handler)

    async def main() -> list[agentvm.ExecResult]:
        client = agentvm.AsyncClient(fake.socket_path)
        vm = await client.get("vm-1")
        return list(await asyncio.gather(vm.exec(["echo", "a"]), vm.exec(["echo", "b"])))

    first, second = asyncio.run(main())
    assert (first.stdout, second.stdout) == (b"a started\n", b"b started\n")


def test_a_cancelled_vm_block_still_releases_its_vm(fake: FakeDaemon) -> None:
    serve_vms(fake)
    entered = asyncio.Event()

    async def main() -> None:
        client = agentvm.AsyncClient(fake.socket_path)

        async def use_vm() -> None:
            async with client.vm():
                entered.set()
                await asyncio.sleep(60)

        task = asyncio.create_task(use_vm())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert len(fake.received("POST", "/v1/vms/vm-1/release")) == 1


def test_the_stream_can_be_awaited_or_iterated_directly(fake: FakeDaemon) -> None:
    serve_vms(fake)

    def handler(_request: Received, reply: Reply) -> None:
        reply.begin_stream()
        reply.event(type="stdout", data="one")
        reply.event(type="stdout", data="two")
        reply.exit(0)
        reply.end_stream()

    fake.route("POST", "/v1/vms/vm-1/exec", handler)

    async def main() -> tuple[list[bytes], list[bytes], agentvm.ExecResult]:
        vm = await agentvm.AsyncClient(fake.socket_path).get("vm-1")
        awaited = await vm.exec_stream("x")  # sent and answered here
        first = [chunk.data async for chunk in awaited]
        second = [chunk.data async for chunk in vm.exec_stream("x")]
        result = await vm.exec_stream("x").wait()
        return first, second, result

    first, second, result = asyncio.run(main())
    assert first == second == [b"one", b"two"]
    assert result.ok


def test_cancelling_a_reader_closes_its_connection(fake: FakeDaemon) -> None:
    serve_vms(fake)
    client_gone = threading.Event()

    def handler(_request: Received, reply: Reply) -> None:
        reply.begin_stream()
        reply.event(type="stdout", data="first\n")
        reply.sock.settimeout(5)
        try:
            if reply.sock.recv(1) == b"":
                client_gone.set()
        except OSError:
            pass

    fake.route("POST", "/v1/vms/vm-1/exec", handler)

    async def main() -> None:
        vm = await agentvm.AsyncClient(fake.socket_path).get("vm-1")
        got_first = asyncio.Event()

        async def read() -> None:
            async with vm.exec_stream("x") as output:
                async for _ in output:
                    got_first.set()

        task = asyncio.create_task(read())
        await got_first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert client_gone.wait(5), "the daemon never saw the cancelled reader's connection close"
