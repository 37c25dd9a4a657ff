"""The asyncio client: :class:`AsyncClient`, :class:`AsyncVm`, :class:`AsyncExecStream`.

The same methods as the synchronous client (agentvm.client), as coroutines,
on a non-blocking unix socket driven by the loop's ``sock_*`` calls, with a
small HTTP/1.1 reader of its own: one connection per call, a body read by
Content-Length, chunked encoding or to the connection's end. Many calls,
execs included, may run at once on one ``AsyncClient``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import socket as socketlib
import time
from collections import deque
from collections.abc import AsyncIterator, Generator, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any

from agentvm import _protocol as proto
from agentvm.client import DEFAULT_TIMEOUT, UNSET, BootMode, _Unset, exec_read_timeout
from agentvm.errors import AgentvmError, ClientTimeout, ConnectionLost, DaemonUnreachable, NotFound, ProtocolError
from agentvm.models import ExecResult, OutputChunk, PoolInfo, SnapshotInfo, VmInfo

_READ_SIZE = 64 * 1024
_MAX_HEADER = 64 * 1024


class _Truncated(Exception):
    """The connection ended in the middle of something."""


class _SocketReader:
    """A buffered reader on a non-blocking socket, through the loop's sock_* calls.

    Lighter than asyncio streams (no transport or protocol objects): with
    one short-lived connection per call, that is a good part of what the
    client costs per request.
    """

    def __init__(self, sock: socketlib.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self._loop = loop
        self._buffer = bytearray()

    async def _fill(self) -> bool:
        data = await self._loop.sock_recv(self.sock, _READ_SIZE)
        self._buffer += data
        return bool(data)

    async def read_until(self, separator: bytes, limit: int) -> bytes:
        start = 0
        while (found := self._buffer.find(separator, start)) < 0:
            if len(self._buffer) > limit:
                raise ProtocolError(f"no {separator!r} within {limit} bytes", code="protocol")
            start = max(0, len(self._buffer) - len(separator) + 1)
            if not await self._fill():
                raise _Truncated(f"the connection ended before {separator!r}")
        end = found + len(separator)
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    async def read_some(self, limit: int) -> bytes:
        """Up to ``limit`` bytes as soon as there are any; ``b""`` at the connection's end."""
        if not self._buffer and not await self._fill():
            return b""
        data = bytes(self._buffer[:limit])
        del self._buffer[:limit]
        return data

    async def read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not await self._fill():
                raise _Truncated(f"the connection ended {size - len(self._buffer)} bytes early")
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def close(self) -> None:
        self.sock.close()


class _Response:
    """One HTTP response on its own connection; the body is read piece by piece."""

    def __init__(
        self, reader: _SocketReader, status: int, headers: dict[str, str], read_timeout: float | None, what: str
    ) -> None:
        self.status = status
        self.headers = headers
        self._reader = reader
        self._read_timeout = read_timeout
        self._what = what
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._remaining: int | None = None  # of the body, or of the current chunk
        if status == 204 or status == 304:
            self._remaining = 0
        elif not self._chunked and length is not None:
            try:
                self._remaining = int(length)
            except ValueError as e:
                raise ProtocolError(f"{what}: bad Content-Length {length!r}", code="protocol") from e
        self._done = self._remaining == 0

    async def read_some(self) -> bytes:
        """The next piece of the body as soon as there is one; ``b""`` at its end."""
        if self._done:
            return b""
        try:
            async with asyncio.timeout(self._read_timeout):
                return await self._read_some()
        except AgentvmError:
            raise
        except TimeoutError as e:
            raise ClientTimeout(
                f"{self._what}: no data from agentvmd within {self._read_timeout} s", code="client_timeout"
            ) from e
        except (_Truncated, OSError) as e:
            raise ConnectionLost(f"{self._what}: the connection to agentvmd broke: {e}", code="disconnected",
                                 status=self.status) from e

    async def read_all(self) -> bytes:
        parts = []
        while data := await self.read_some():
            parts.append(data)
        return b"".join(parts)

    def close(self) -> None:
        self._reader.close()

    async def _read_some(self) -> bytes:
        if not self._chunked:
            if self._remaining is None:  # until the connection ends (HTTP/1.0 style)
                data = await self._reader.read_some(_READ_SIZE)
                self._done = not data
                return data
            data = await self._reader.read_some(min(self._remaining, _READ_SIZE))
            if not data:
                raise _Truncated(f"the body ended {self._remaining} bytes early")
            self._remaining -= len(data)
            self._done = self._remaining == 0
            return data
        while not self._remaining:
            if self._remaining == 0:
                await self._reader.read_exactly(2)  # the CRLF after a chunk
            line = await self._reader.read_until(b"\n", 4096)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as e:
                raise ProtocolError(f"{self._what}: bad chunk size {line!r}", code="protocol") from e
            if size == 0:
                while (await self._reader.read_until(b"\n", _MAX_HEADER)).strip():  # trailers
                    pass
                self._done = True
                return b""
            self._remaining = size
        data = await self._reader.read_some(min(self._remaining, _READ_SIZE))
        if not data:
            raise _Truncated(f"the connection ended inside a chunk, {self._remaining} bytes early")
        self._remaining -= len(data)
        return data


class AsyncClient:
    """The asyncio twin of :class:`agentvm.Client`; same arguments, same methods, awaited."""

    def __init__(self, socket: str | os.PathLike[str] | None = None, *, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self.socket = proto.resolve_socket(socket)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"AsyncClient(socket={self.socket!r}, timeout={self.timeout!r})"

    async def create(
        self,
        *,
        image: str | None = None,
        cpus: int | None = None,
        memory_mib: int | None = None,
        network: proto.NetworkArg = None,
        boot: BootMode | None = None,
    ) -> AsyncVm:
        request = proto.create_request(image=image, cpus=cpus, memory_mib=memory_mib, network=network, boot=boot)
        return AsyncVm(self, VmInfo.from_json(proto.parse_json(await self._call(request))))

    @contextlib.asynccontextmanager
    async def vm(
        self,
        *,
        image: str | None = None,
        cpus: int | None = None,
        memory_mib: int | None = None,
        network: proto.NetworkArg = None,
        boot: BootMode | None = None,
    ) -> AsyncIterator[AsyncVm]:
        """``async with client.vm() as vm:`` -- released when the block ends, however it ends."""
        vm = await self.create(image=image, cpus=cpus, memory_mib=memory_mib, network=network, boot=boot)
        try:
            yield vm
        except BaseException as error:
            try:
                # Shielded: a cancelled block still gives its VM back.
                await asyncio.shield(vm.release())
            except NotFound:
                pass
            except Exception as release_error:
                error.add_note(f"releasing {vm.id} afterwards failed too: {release_error!r}")
            raise
        with contextlib.suppress(NotFound):
            await vm.release()

    async def get(self, vm_id: str) -> AsyncVm:
        return AsyncVm(self, await self._info(vm_id))

    async def list(self) -> builtins.list[AsyncVm]:
        body = await self._call(proto.Request("GET", "/v1/vms"))
        return [AsyncVm(self, info) for info in VmInfo.list_from_json(proto.parse_json(body))]

    async def pools(self) -> builtins.list[PoolInfo]:
        return PoolInfo.list_from_json(proto.parse_json(await self._call(proto.Request("GET", "/v1/pools"))))

    async def _info(self, vm_id: str) -> VmInfo:
        return VmInfo.from_json(proto.parse_json(await self._call(proto.Request("GET", proto.vm_target(vm_id)))))

    async def _call(self, request: proto.Request) -> bytes:
        response = await self._open(request, self.timeout)
        try:
            body = await response.read_all()
        finally:
            response.close()
        proto.check_status(response.status, body)
        return body

    async def _open(self, request: proto.Request, read_timeout: float | None) -> _Response:
        what = f"{request.method} {request.target}"
        loop = asyncio.get_running_loop()
        sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(self.timeout):
                await loop.sock_connect(sock, self.socket)
        except TimeoutError as e:
            sock.close()
            raise ClientTimeout(f"cannot connect to agentvmd at {self.socket}: timed out", code="client_timeout") from e
        except OSError as e:
            sock.close()
            raise DaemonUnreachable(
                f"cannot connect to agentvmd at {self.socket}: {e.strerror or e}", code="unreachable"
            ) from e
        except BaseException:
            sock.close()
            raise
        reader = _SocketReader(sock, loop)
        try:
            body = request.body or b""
            head = f"{request.method} {request.target} HTTP/1.1\r\nHost: agentvmd\r\n"
            if request.content_type:
                head += f"Content-Type: {request.content_type}\r\n"
            if body or request.method in ("POST", "PUT"):
                head += f"Content-Length: {len(body)}\r\n"
            try:
                async with asyncio.timeout(self.timeout):
                    await loop.sock_sendall(sock, head.encode("ascii") + b"\r\n" + body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused before the body was read (413): read the answer
            async with asyncio.timeout(read_timeout):
                status, headers = await _read_head(reader, what)
            return _Response(reader, status, headers, read_timeout, what)
        except TimeoutError as e:
            reader.close()
            raise ClientTimeout(f"{what}: no answer from agentvmd within {read_timeout} s", code="client_timeout") from e
        except (_Truncated, OSError) as e:
            reader.close()
            raise ConnectionLost(f"{what}: the connection to agentvmd broke: {e!r}", code="disconnected") from e
        except BaseException:
            reader.close()
            raise


async def _read_head(reader: _SocketReader, what: str) -> tuple[int, dict[str, str]]:
    while True:
        head = await reader.read_until(b"\r\n\r\n", _MAX_HEADER)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ProtocolError(f"{what}: not an HTTP response: {lines[0][:100]!r}", code="protocol")
        status = int(parts[1])
        if 100 <= status < 200:
            continue  # 100 Continue: the real answer follows
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        return status, headers


class AsyncVm:
    """The asyncio twin of :class:`agentvm.Vm`."""

    def __init__(self, client: AsyncClient, info: VmInfo) -> None:
        self.client = client
        self.id = info.id
        self.last_info = info

    def __repr__(self) -> str:
        return f"AsyncVm({self.id!r}, state={self.last_info.state!r})"

    async def info(self) -> VmInfo:
        self.last_info = await self.client._info(self.id)
        return self.last_info

    async def exec(
        self,
        argv: str | Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        user: str | None = None,
        stdin: str | bytes | None = None,
        check: bool = False,
        client_timeout: float | None | _Unset = UNSET,
    ) -> ExecResult:
        """See :meth:`agentvm.Vm.exec`."""
        stdout = bytearray()
        stderr = bytearray()
        async with self.exec_stream(
            argv, timeout=timeout, env=env, cwd=cwd, user=user, stdin=stdin, client_timeout=client_timeout
        ) as stream:
            async for chunk in stream:
                (stdout if chunk.stream == "stdout" else stderr).extend(chunk.data)
        result = replace(stream.result, stdout=bytes(stdout), stderr=bytes(stderr))
        return result.check() if check else result

    def exec_stream(
        self,
        argv: str | Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        user: str | None = None,
        stdin: str | bytes | None = None,
        client_timeout: float | None | _Unset = UNSET,
    ) -> AsyncExecStream:
        """A command's output as it comes::

            async with vm.exec_stream(["make", "test"], timeout=600) as stream:
                async for chunk in stream:
                    print(chunk.stream, chunk.text, end="")
            print(stream.result.status)

        The request is sent on entering the ``async with`` (or on ``await``
        of the stream, or its first ``async for``); see
        :meth:`agentvm.Vm.exec_stream` for the rest.
        """
        request = proto.exec_request(self.id, argv, timeout=timeout, env=env, cwd=cwd, user=user, stdin=stdin)
        return AsyncExecStream(self.client, request, exec_read_timeout(timeout, client_timeout))

    async def write_file(self, path: str, data: bytes | str, *, mode: int | None = None) -> None:
        await self.client._call(proto.put_file_request(self.id, path, data, mode))

    async def read_file(self, path: str) -> bytes:
        return await self.client._call(proto.Request("GET", proto.file_target(self.id, path)))

    async def snapshot(self, name: str) -> SnapshotInfo:
        body = await self.client._call(proto.save_snapshot_request(self.id, name))
        return SnapshotInfo.from_json(proto.parse_json(body))

    async def restore(self, name: str) -> None:
        await self.client._call(proto.Request("POST", proto.snapshot_target(self.id, name, "restore")))

    async def delete_snapshot(self, name: str) -> None:
        await self.client._call(proto.Request("DELETE", proto.snapshot_target(self.id, name)))

    async def snapshots(self) -> list[SnapshotInfo]:
        body = await self.client._call(proto.Request("GET", proto.vm_target(self.id, "snapshots")))
        return SnapshotInfo.list_from_json(proto.parse_json(body))

    async def stop(self) -> VmInfo:
        body = await self.client._call(proto.Request("POST", proto.vm_target(self.id, "stop")))
        self.last_info = VmInfo.from_json(proto.parse_json(body))
        return self.last_info

    async def remove(self, *, force: bool = False) -> None:
        await self.client._call(proto.Request("DELETE", proto.remove_target(self.id, force)))

    async def release(self) -> None:
        await self.client._call(proto.Request("POST", proto.vm_target(self.id, "release")))

    async def console(self, max_bytes: int | None = None) -> str:
        body = await self.client._call(proto.Request("GET", proto.console_target(self.id, max_bytes)))
        return body.decode("utf-8", errors="replace")


class AsyncExecStream:
    """The output of a running command; see :meth:`AsyncVm.exec_stream`."""

    def __init__(self, client: AsyncClient, request: proto.Request, read_timeout: float | None) -> None:
        self._client = client
        self._request = request
        self._read_timeout = read_timeout
        self._response: _Response | None = None
        self._decoder: proto.ExecDecoder | None = None
        self._ready: deque[OutputChunk] = deque()
        self._result: ExecResult | None = None
        self._closed = False

    @property
    def result(self) -> ExecResult:
        if self._result is None:
            raise RuntimeError("the command's output has not been read to its end yet")
        return self._result

    @property
    def done(self) -> bool:
        return self._result is not None

    async def start(self) -> None:
        """Sends the request and waits for the daemon's answer (the command's first output)."""
        if self._decoder is not None:
            return
        if self._closed:
            raise RuntimeError("the exec stream is closed")
        decoder = proto.ExecDecoder(time.monotonic())
        self._closed = True  # a start that fails leaves the stream closed, not empty
        response = await self._client._open(self._request, self._read_timeout)
        if response.status != 200:
            try:
                body = await response.read_all()
            except (ConnectionLost, ClientTimeout):
                body = b""
            finally:
                response.close()
            raise proto.error_for(response.status, body)
        self._closed = False
        self._decoder = decoder
        self._response = response

    def __await__(self) -> Generator[Any, None, AsyncExecStream]:
        return self._started().__await__()

    async def _started(self) -> AsyncExecStream:
        await self.start()
        return self

    async def __aenter__(self) -> AsyncExecStream:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __aiter__(self) -> AsyncExecStream:
        return self

    async def __anext__(self) -> OutputChunk:
        await self.start()
        assert self._decoder is not None
        while not self._ready:
            if self._result is not None or self._response is None:
                raise StopAsyncIteration
            try:
                data = await self._response.read_some()
                if not data:
                    self._decoder.finish()
                self._ready.extend(self._decoder.feed(data))
            except BaseException:
                self.close()
                raise
            if self._decoder.exit is not None:
                self._result = self._decoder.result(finished=time.monotonic())
                self.close()
        return self._ready.popleft()

    async def wait(self) -> ExecResult:
        """Reads (and drops) the rest of the output; returns how the command ended."""
        async for _ in self:
            pass
        return self.result

    def close(self) -> None:
        """Stops reading; the command runs on in the VM until it ends or times out."""
        self._closed = True
        if self._response is not None:
            self._response.close()
            self._response = None
