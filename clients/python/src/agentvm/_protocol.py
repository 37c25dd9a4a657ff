"""The API's wire shapes, shared by the sync and asyncio clients.

Sans I/O: this module builds requests (method, target, body) and interprets
answers (status and bytes; NDJSON exec events), so both transports send the
same bytes and read answers the same way. docs/api.md is the specification;
supervisor/api/request_validation.cc and json_codec.cc are the daemon's side.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from agentvm.errors import ApiError, ConnectionLost, ProtocolError, api_error
from agentvm.models import ExecResult, OutputChunk

DEFAULT_SOCKET = "/run/agentvm/agentvm.sock"
SOCKET_ENV = "AGENTVM_SOCKET"

# One event line holds at most one output chunk of the guest protocol (16 MiB
# frames), base64'd in the worst case; anything far longer is not agentvmd.
MAX_EVENT_LINE = 64 * 1024 * 1024

NetworkArg = str | Mapping[str, Any] | None
StdinArg = str | bytes | None


def resolve_socket(socket: str | os.PathLike[str] | None) -> str:
    """``socket``, else ``$AGENTVM_SOCKET``, else the daemon's default path (as the CLI does)."""
    if socket is not None:
        return os.fspath(socket)
    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    body: bytes | None = None
    content_type: str | None = None


def _segment(text: str) -> str:
    # Every character but unreserved ones is escaped, so "/" or ".." in a name
    # reaches the daemon's validation as itself and is refused there.
    return quote(text, safe="")


def _json_body(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def vm_target(vm_id: str, *rest: str) -> str:
    return "/v1/vms/" + "/".join([_segment(vm_id), *rest])


def create_request(
    *,
    image: str | None,
    cpus: int | None,
    memory_mib: int | None,
    network: NetworkArg,
    boot: str | None,
) -> Request:
    # Only what the caller chose: the daemon's defaults apply to the rest.
    body: dict[str, Any] = {}
    if image is not None:
        body["image"] = image
    if cpus is not None:
        body["cpus"] = cpus
    if memory_mib is not None:
        body["memory_mib"] = memory_mib
    if isinstance(network, str):
        body["network"] = {"mode": network}
    elif network is not None:
        body["network"] = dict(network)
    if boot is not None:
        body["boot"] = boot
    return Request("POST", "/v1/vms", _json_body(body), "application/json")


def command_argv(argv: str | Sequence[str]) -> list[str]:
    """A string is a shell command line (``sh -c``); a sequence is argv as is."""
    if isinstance(argv, str):
        return ["sh", "-c", argv]
    if isinstance(argv, bytes):
        raise TypeError("argv must be a str or a sequence of str, not bytes")
    args = list(argv)
    if not args:
        raise ValueError("argv must not be empty")
    for arg in args:
        if not isinstance(arg, str):
            raise TypeError(f"argv items must be str, not {type(arg).__name__}")
    return args


def exec_request(
    vm_id: str,
    argv: str | Sequence[str],
    *,
    timeout: float | None,
    env: Mapping[str, str] | None,
    cwd: str | None,
    user: str | None,
    stdin: StdinArg,
) -> Request:
    body: dict[str, Any] = {"argv": command_argv(argv)}
    if env:
        body["env"] = dict(env)
    if cwd is not None:
        body["cwd"] = cwd
    if user is not None:
        body["user"] = user
    if timeout is not None and timeout != 0:
        body["timeout_sec"] = timeout
    if isinstance(stdin, str):
        body["stdin"] = stdin
    elif stdin is not None:
        body["stdin_b64"] = base64.b64encode(stdin).decode("ascii")
    return Request("POST", vm_target(vm_id, "exec"), _json_body(body), "application/json")


def file_target(vm_id: str, path: str, mode: int | None = None) -> str:
    # "+" must be escaped: the daemon reads it as a literal plus, which is
    # what it is, but only "%2B" means that to every HTTP stack in between.
    query = "path=" + quote(path, safe="/")
    if mode is not None:
        if not 0 <= mode <= 0o7777:
            raise ValueError(f"mode must be between 0 and 0o7777, not {mode:#o}")
        query += f"&mode={mode:04o}"
    return vm_target(vm_id, "files") + "?" + query


def put_file_request(vm_id: str, path: str, data: bytes | str, mode: int | None) -> Request:
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return Request("PUT", file_target(vm_id, path, mode), payload, "application/octet-stream")


def console_target(vm_id: str, max_bytes: int | None) -> str:
    target = vm_target(vm_id, "console")
    return target if max_bytes is None else f"{target}?max_bytes={int(max_bytes)}"


def remove_target(vm_id: str, force: bool) -> str:
    return vm_target(vm_id) + ("?force=true" if force else "")


def save_snapshot_request(vm_id: str, name: str) -> Request:
    return Request("POST", vm_target(vm_id, "snapshots"), _json_body({"name": name}), "application/json")


def snapshot_target(vm_id: str, name: str, *rest: str) -> str:
    return vm_target(vm_id, "snapshots", _segment(name), *rest)


def error_for(status: int, body: bytes) -> ApiError:
    """The exception for an error answer: the body's ``error`` and ``code`` if it has them."""
    message = f"agentvmd answered HTTP {status}"
    code: str | None = None
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        message = value["error"]
        if isinstance(value.get("code"), str):
            code = value["code"]
    elif body.strip():
        message += ": " + body[:200].decode("utf-8", errors="replace").strip()
    return api_error(message, code, status)


def check_status(status: int, body: bytes) -> None:
    if not 200 <= status < 300:
        raise error_for(status, body)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as e:
        raise ProtocolError(f"agentvmd answered with malformed JSON: {e}", code="protocol") from e


class ExecDecoder:
    """Turns the bytes of an exec response body into output chunks and a result.

    Feed it the body as it arrives, in pieces of any size: an event may span
    pieces and a piece may hold several events. After the ``exit`` event,
    ``exit`` is set; an ``error`` event raises its :class:`ApiError`.
    """

    def __init__(self, started: float) -> None:
        self._started = started
        self._pending = bytearray()
        self.exit: dict[str, Any] | None = None

    def feed(self, data: bytes) -> list[OutputChunk]:
        chunks: list[OutputChunk] = []
        if self.exit is not None:
            return chunks  # nothing follows the exit event
        self._pending += data
        start = 0
        while True:
            newline = self._pending.find(b"\n", start)
            if newline < 0:
                break
            line = bytes(self._pending[start:newline])
            start = newline + 1
            if not line.strip():
                continue
            chunk = self._event(line)
            if chunk is not None:
                chunks.append(chunk)
            if self.exit is not None:
                break
        del self._pending[:start]
        if len(self._pending) > MAX_EVENT_LINE:
            raise ProtocolError("an exec event line longer than 64 MiB", code="protocol")
        return chunks

    def finish(self) -> None:
        """The body ended: an error unless the exit event was in it."""
        if self.exit is None:
            raise ConnectionLost(
                "agentvmd closed the exec stream before the command's exit event "
                "(the daemon went away, or dropped a client that read too slowly)",
                code="disconnected",
                status=200,
            )

    def result(self, stdout: bytes = b"", stderr: bytes = b"", *, finished: float) -> ExecResult:
        exit = self.exit
        if exit is None:
            raise RuntimeError("the exec has not finished")
        exit_code = exit.get("exit_code")
        signal = exit.get("signal")
        timed_out = exit.get("timed_out") is True
        status = exit.get("status")
        if not isinstance(status, int):
            status = _shell_status(exit_code, signal, timed_out)
        return ExecResult(
            exit_code=exit_code if isinstance(exit_code, int) else None,
            signal=signal if isinstance(signal, int) else None,
            timed_out=timed_out,
            stdout=stdout,
            stderr=stderr,
            duration=finished - self._started,
            status=status,
        )

    def _event(self, line: bytes) -> OutputChunk | None:
        try:
            event = json.loads(line)
        except ValueError as e:
            raise ProtocolError(f"malformed exec event {line[:200]!r}: {e}", code="protocol") from e
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "stdout" or kind == "stderr":
            data = event.get("data")
            if isinstance(data, str):
                return OutputChunk(kind, data.encode("utf-8"))
            encoded = event.get("data_b64")
            if isinstance(encoded, str):
                try:
                    return OutputChunk(kind, base64.b64decode(encoded, validate=True))
                except binascii.Error as e:
                    raise ProtocolError(f"exec event with bad data_b64: {e}", code="protocol") from e
            raise ProtocolError(f"output event without data: {line[:200]!r}", code="protocol")
        if kind == "exit":
            self.exit = event
            return None
        if kind == "error":
            message = event.get("error")
            code = event.get("code")
            raise api_error(
                message if isinstance(message, str) else "exec failed",
                code if isinstance(code, str) else None,
                200,
            )
        if isinstance(kind, str):
            return None  # a kind of event a newer daemon sends; nothing to do with it
        raise ProtocolError(f"exec event without a type: {line[:200]!r}", code="protocol")


def _shell_status(exit_code: Any, signal: Any, timed_out: bool) -> int:
    if timed_out:
        return 124
    if isinstance(signal, int):
        return 128 + signal
    return exit_code if isinstance(exit_code, int) else 255
