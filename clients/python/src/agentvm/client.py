"""The synchronous client: :class:`Client`, :class:`Vm` and :class:`ExecStream`.

HTTP/1.1 over the daemon's unix socket with ``http.client``; one connection
per call (a unix-socket connect costs tens of microseconds), so a ``Client``
holds no connection state and may be shared between threads.
"""

from __future__ import annotations

import builtins
import contextlib
import http.client
import os
import socket as socketlib
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Literal, TypedDict

from agentvm import _protocol as proto
from agentvm.errors import ClientTimeout, ConnectionLost, DaemonUnreachable, NotFound
from agentvm.models import ExecResult, OutputChunk, PoolInfo, SnapshotInfo, VmInfo

BootMode = Literal["auto", "restore", "cold"]


class CreateArgs(TypedDict, total=False):
    """The keyword arguments of ``create`` and ``vm``, for passing them around."""

    image: str
    cpus: int
    memory_mib: int
    network: proto.NetworkArg
    boot: BootMode


# Read at most this much per system call from an exec stream: chunks are
# handed on as soon as they arrive, never gathered into one big buffer.
_READ_SIZE = 64 * 1024


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()

DEFAULT_TIMEOUT = 300.0
# How much longer than a command's own timeout an exec waits for the daemon.
EXEC_TIMEOUT_MARGIN = 60.0


def exec_read_timeout(timeout: float | None, client_timeout: float | None | _Unset) -> float | None:
    """The socket timeout of an exec: as long as the command may run, plus a margin."""
    if not isinstance(client_timeout, _Unset):
        return client_timeout
    if timeout:
        return timeout + EXEC_TIMEOUT_MARGIN
    return None  # the command may run (and be silent) as long as it likes


# Requests up to this size go out in one send(): http.client writes the
# header and the body separately, and each write can cost a wake-up of the
# daemon (and of this process) before the request is whole.
_COALESCE_LIMIT = 1024 * 1024


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float | None) -> None:
        super().__init__("agentvmd", timeout=timeout)
        self._socket_path = socket_path
        self._pending: list[bytes] | None = None

    def send_request(self, request: proto.Request) -> None:
        headers = {"Content-Type": request.content_type} if request.content_type else {}
        if request.body is not None and len(request.body) > _COALESCE_LIMIT:
            self.request(request.method, request.target, body=request.body, headers=headers)
            return
        self._pending = []
        try:
            self.request(request.method, request.target, body=request.body, headers=headers)
        finally:
            data, self._pending = b"".join(self._pending), None
        super().send(data)

    def send(self, data: Any) -> None:
        if self._pending is not None and isinstance(data, bytes):
            self._pending.append(data)
        else:
            super().send(data)

    def connect(self) -> None:
        sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class Client:
    """A connection to agentvmd.

    ``socket``: the API socket; default ``$AGENTVM_SOCKET``, else
    ``/run/agentvm/agentvm.sock``. ``timeout``: the client-side socket
    timeout in seconds for connecting and for each wait on the daemon
    (``None``: wait forever). A create waits for the VM to boot, so keep it
    well above a boot's time. Execs wait as long as their command may run;
    see :meth:`Vm.exec`.
    """

    def __init__(self, socket: str | os.PathLike[str] | None = None, *, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self.socket = proto.resolve_socket(socket)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Client(socket={self.socket!r}, timeout={self.timeout!r})"

    # -- VMs --

    def create(
        self,
        *,
        image: str | None = None,
        cpus: int | None = None,
        memory_mib: int | None = None,
        network: proto.NetworkArg = None,
        boot: BootMode | None = None,
    ) -> Vm:
        """Creates a VM and returns once its guest agent answers (``POST /v1/vms``).

        Unset arguments take the daemon's defaults. ``network`` is a mode
        (``"nat-filtered"``, ``"isolated"``, ``"bridge"``) or the API's whole
        network object. With ``boot="auto"`` (the daemon's default) a VM comes
        from a warm pool whose profile matches, if there is one.
        """
        request = proto.create_request(image=image, cpus=cpus, memory_mib=memory_mib, network=network, boot=boot)
        return Vm(self, VmInfo.from_json(proto.parse_json(self._call(request))))

    @contextlib.contextmanager
    def vm(
        self,
        *,
        image: str | None = None,
        cpus: int | None = None,
        memory_mib: int | None = None,
        network: proto.NetworkArg = None,
        boot: BootMode | None = None,
    ) -> Iterator[Vm]:
        """``with client.vm() as vm:`` -- a VM for the block, released when it ends.

        Released (``POST /v1/vms/{id}/release``) however the block ends; a VM
        from a pool is replaced there by a fresh clone. A VM already gone is
        fine. If the block raised, a failure to release is added to its
        exception as a note rather than hiding it.
        """
        vm = self.create(image=image, cpus=cpus, memory_mib=memory_mib, network=network, boot=boot)
        try:
            yield vm
        except BaseException as error:
            try:
                vm.release()
            except NotFound:
                pass
            except Exception as release_error:
                error.add_note(f"releasing {vm.id} afterwards failed too: {release_error!r}")
            raise
        with contextlib.suppress(NotFound):
            vm.release()

    def get(self, vm_id: str) -> Vm:
        """The VM ``vm_id`` (:class:`NotFound` if there is none)."""
        return Vm(self, self._info(vm_id))

    def list(self) -> builtins.list[Vm]:
        """Every VM the daemon has handed out (ready VMs waiting in pools are not listed)."""
        body = self._call(proto.Request("GET", "/v1/vms"))
        return [Vm(self, info) for info in VmInfo.list_from_json(proto.parse_json(body))]

    def pools(self) -> builtins.list[PoolInfo]:
        """The daemon's warm pools and what is in them now."""
        return PoolInfo.list_from_json(proto.parse_json(self._call(proto.Request("GET", "/v1/pools"))))

    # -- transport --

    def _info(self, vm_id: str) -> VmInfo:
        return VmInfo.from_json(proto.parse_json(self._call(proto.Request("GET", proto.vm_target(vm_id)))))

    def _call(self, request: proto.Request) -> bytes:
        """Sends ``request`` and returns the body of a 2xx answer; raises the API's error otherwise."""
        connection, response = self._open(request, self.timeout)
        try:
            body = response.read()
        except TimeoutError as e:
            raise ClientTimeout(f"no answer from agentvmd within {self.timeout} s", code="client_timeout") from e
        except (http.client.HTTPException, OSError) as e:
            raise _lost(request, e) from e
        finally:
            connection.close()
        proto.check_status(response.status, body)
        return body

    def _open(
        self, request: proto.Request, read_timeout: float | None
    ) -> tuple[_UnixHTTPConnection, http.client.HTTPResponse]:
        connection = _UnixHTTPConnection(self.socket, self.timeout)
        try:
            connection.connect()
        except TimeoutError as e:
            raise ClientTimeout(
                f"cannot connect to agentvmd at {self.socket}: timed out", code="client_timeout"
            ) from e
        except OSError as e:
            raise DaemonUnreachable(
                f"cannot connect to agentvmd at {self.socket}: {e.strerror or e}", code="unreachable"
            ) from e
        try:
            try:
                connection.send_request(request)
            except (BrokenPipeError, ConnectionResetError):
                # The daemon may refuse a request before reading all of its
                # body (413) and close: its answer is still worth reading.
                pass
            if connection.sock is not None:
                connection.sock.settimeout(read_timeout)
            response = connection.getresponse()
        except TimeoutError as e:
            connection.close()
            raise ClientTimeout(
                f"{request.method} {request.target}: no answer from agentvmd within {read_timeout} s",
                code="client_timeout",
            ) from e
        except (http.client.HTTPException, OSError) as e:
            connection.close()
            raise _lost(request, e) from e
        return connection, response


def _lost(request: proto.Request, cause: BaseException) -> ConnectionLost:
    return ConnectionLost(
        f"{request.method} {request.target}: the connection to agentvmd broke: {cause!r}", code="disconnected"
    )


class Vm:
    """A handle on one VM. ``last_info`` is what the daemon said about it last."""

    def __init__(self, client: Client, info: VmInfo) -> None:
        self.client = client
        self.id = info.id
        self.last_info = info

    def __repr__(self) -> str:
        return f"Vm({self.id!r}, state={self.last_info.state!r})"

    def info(self) -> VmInfo:
        """The VM now (``GET /v1/vms/{id}``); also updates ``last_info``."""
        self.last_info = self.client._info(self.id)
        return self.last_info

    def exec(
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
        """Runs a command in the VM and returns how it ended, with its whole output.

        ``argv``: a list is the command as is; a string runs under ``sh -c``.
        ``timeout``: seconds after which the *guest* kills the command's whole
        process group; the result then has ``timed_out`` set and ``status``
        124 (no exception). ``stdin``: text or bytes fed to the command.
        ``user``: run as this guest user (daemons that support it).
        ``check``: raise :class:`CommandFailed` unless the status is 0.
        ``client_timeout``: the *client's* socket timeout while waiting for
        output; default ``timeout`` + 60 s, or no limit without ``timeout``.
        """
        stdout = bytearray()
        stderr = bytearray()
        with self.exec_stream(
            argv, timeout=timeout, env=env, cwd=cwd, user=user, stdin=stdin, client_timeout=client_timeout
        ) as stream:
            for chunk in stream:
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
    ) -> ExecStream:
        """Runs a command and yields its output as it comes::

            with vm.exec_stream(["make", "test"], timeout=600) as stream:
                for chunk in stream:          # OutputChunk(stream, data)
                    print(chunk.stream, chunk.text, end="")
            print(stream.result.status)

        Returns once the daemon answers, which is at the command's first
        output (or its end): an exec that cannot start raises here. Leaving
        the ``with`` block early closes the connection; the command then runs
        on in the VM until it ends or its timeout fires (its output is lost).
        """
        request = proto.exec_request(self.id, argv, timeout=timeout, env=env, cwd=cwd, user=user, stdin=stdin)
        started = time.monotonic()
        read_timeout = exec_read_timeout(timeout, client_timeout)
        connection, response = self.client._open(request, read_timeout)
        if response.status != 200:
            try:
                body = response.read()
            except (http.client.HTTPException, OSError):
                body = b""
            finally:
                connection.close()
            raise proto.error_for(response.status, body)
        return ExecStream(connection, response, started, read_timeout)

    def write_file(self, path: str, data: bytes | str, *, mode: int | None = None) -> None:
        """Writes ``data`` (str as UTF-8) to the absolute guest ``path`` with permission bits ``mode`` (default 0o644)."""
        self.client._call(proto.put_file_request(self.id, path, data, mode))

    def read_file(self, path: str) -> bytes:
        """The bytes of the guest file ``path`` (:class:`NotFound` if missing)."""
        return self.client._call(proto.Request("GET", proto.file_target(self.id, path)))

    def snapshot(self, name: str) -> SnapshotInfo:
        """Saves the running VM's memory, devices and disk as snapshot ``name``."""
        body = self.client._call(proto.save_snapshot_request(self.id, name))
        return SnapshotInfo.from_json(proto.parse_json(body))

    def restore(self, name: str) -> None:
        """Brings the VM back to snapshot ``name``."""
        self.client._call(proto.Request("POST", proto.snapshot_target(self.id, name, "restore")))

    def delete_snapshot(self, name: str) -> None:
        self.client._call(proto.Request("DELETE", proto.snapshot_target(self.id, name)))

    def snapshots(self) -> list[SnapshotInfo]:
        body = self.client._call(proto.Request("GET", proto.vm_target(self.id, "snapshots")))
        return SnapshotInfo.list_from_json(proto.parse_json(body))

    def stop(self) -> VmInfo:
        """Stops the VM gracefully (:class:`Conflict` if it is not running); it can then be removed."""
        body = self.client._call(proto.Request("POST", proto.vm_target(self.id, "stop")))
        self.last_info = VmInfo.from_json(proto.parse_json(body))
        return self.last_info

    def remove(self, *, force: bool = False) -> None:
        """Removes the VM and its disk; a running VM needs ``force=True``."""
        self.client._call(proto.Request("DELETE", proto.remove_target(self.id, force)))

    def release(self) -> None:
        """Hands the VM back in any state: killed, its disk thrown away, its pool refilled."""
        self.client._call(proto.Request("POST", proto.vm_target(self.id, "release")))

    def console(self, max_bytes: int | None = None) -> str:
        """The guest's serial console so far (the last ``max_bytes``; the daemon's default is 1 MiB)."""
        body = self.client._call(proto.Request("GET", proto.console_target(self.id, max_bytes)))
        return body.decode("utf-8", errors="replace")


class ExecStream:
    """The output of a running command, chunk by chunk; see :meth:`Vm.exec_stream`.

    Iterate it for :class:`OutputChunk` s; after the last one, ``result`` says
    how the command ended (its ``stdout`` and ``stderr`` are empty: the
    output was in the chunks).
    """

    def __init__(
        self,
        connection: _UnixHTTPConnection,
        response: http.client.HTTPResponse,
        started: float,
        read_timeout: float | None,
    ) -> None:
        self._connection: _UnixHTTPConnection | None = connection
        self._response = response
        self._decoder = proto.ExecDecoder(started)
        self._read_timeout = read_timeout
        self._result: ExecResult | None = None
        self._chunks = self._generate()

    @property
    def result(self) -> ExecResult:
        """How the command ended; only once the stream has been read to its end."""
        if self._result is None:
            raise RuntimeError("the command's output has not been read to its end yet")
        return self._result

    @property
    def done(self) -> bool:
        return self._result is not None

    def __iter__(self) -> Iterator[OutputChunk]:
        return self

    def __next__(self) -> OutputChunk:
        return next(self._chunks)

    def wait(self) -> ExecResult:
        """Reads (and drops) the rest of the output; returns how the command ended."""
        for _ in self:
            pass
        return self.result

    def close(self) -> None:
        """Stops reading; the command itself runs on in the VM until it ends or times out."""
        self._chunks.close()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> ExecStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _generate(self) -> Generator[OutputChunk, None, None]:
        try:
            while self._decoder.exit is None:
                try:
                    data = self._response.read1(_READ_SIZE)
                except TimeoutError as e:
                    raise ClientTimeout(
                        f"no output or exit from the command within {self._read_timeout} s (client_timeout)",
                        code="client_timeout",
                    ) from e
                except (http.client.HTTPException, OSError) as e:
                    raise ConnectionLost(
                        f"the exec stream from agentvmd broke: {e!r}", code="disconnected", status=200
                    ) from e
                if not data:
                    self._decoder.finish()
                    break
                yield from self._decoder.feed(data)
            self._result = self._decoder.result(finished=time.monotonic())
        finally:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
