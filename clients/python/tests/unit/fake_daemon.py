"""A scripted stand-in for agentvmd on a unix socket, for the client's unit tests.

Each request is answered by the handler routed for its method and path, which
writes the answer byte by byte as a test wants it: JSON, an NDJSON stream in
chunks with pauses, a connection dropped mid-stream, or nothing at all. The
server speaks just enough HTTP/1.1 for that (Content-Length bodies in,
keep-alive); it runs in threads of the test process.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large", 500: "Internal Server Error",
           503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    def json(self) -> Any:
        return json.loads(self.body)


class Reply:
    """The handler's side of one connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = False
        self.chunked = False

    def raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, status: int, body: bytes = b"", content_type: str | None = "application/json",
             extra_headers: dict[str, str] | None = None) -> None:
        head = f"HTTP/1.1 {status} {REASONS.get(status, 'X')}\r\nServer: fake-agentvmd\r\n"
        if content_type and status != 204:
            head += f"Content-Type: {content_type}\r\n"
        for name, value in (extra_headers or {}).items():
            head += f"{name}: {value}\r\n"
        if status != 204:
            head += f"Content-Length: {len(body)}\r\n"
        self.raw(head.encode() + b"\r\n" + body)

    def json(self, status: int, value: Any) -> None:
        self.send(status, json.dumps(value).encode() + b"\n")

    def error(self, status: int, code: str, message: str) -> None:
        self.json(status, {"error": message, "code": code})

    def begin_stream(self, status: int = 200, *, chunked: bool = True) -> None:
        """Starts an NDJSON body: chunked, or (``chunked=False``) ended by closing, as to HTTP/1.0."""
        self.chunked = chunked
        head = f"HTTP/1.1 {status} OK\r\nContent-Type: application/x-ndjson\r\n"
        head += "Transfer-Encoding: chunked\r\n" if chunked else "Connection: close\r\n"
        self.raw(head.encode() + b"\r\n")

    def chunk(self, data: bytes) -> None:
        if self.chunked:
            self.raw(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        else:
            self.raw(data)

    def event(self, **fields: Any) -> None:
        self.chunk(json.dumps(fields).encode() + b"\n")

    def exit(self, exit_code: int | None = 0, signal: int | None = None, timed_out: bool = False) -> None:
        status = 124 if timed_out else (128 + signal if signal is not None else exit_code)
        self.event(type="exit", exit_code=exit_code, signal=signal, timed_out=timed_out, status=status)

    def end_stream(self) -> None:
        if self.chunked:
            self.raw(b"0\r\n\r\n")
        else:
            self.drop()

    def drop(self) -> None:
        """Closes the connection, whatever was (not) sent: the daemon going away."""
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


Handler = Callable[[Received, Reply], None]


def vm_json(vm_id: str = "vm-1", **overrides: Any) -> dict[str, Any]:
    """A VM object as agentvmd sends it (docs/api.md)."""
    vm: dict[str, Any] = {
        "id": vm_id, "image": "tiny", "state": "running", "cpus": 1, "memory_mib": 256, "pid": 4242,
        "channel": "virtio-serial", "accel": "tcg", "reason": "", "created_at": 1732400000, "boot": "pool",
        "restore_error": "", "pool": "tiny-1c-256m-isolated",
        "network": {"mode": "isolated", "address": "", "gateway": "", "dns": "", "mac": "", "tap": "",
                    "bridge": "", "allow_tcp_ports": [], "allow_cidrs": [], "bandwidth_bytes_per_sec": None,
                    "dropped_connections": 0},
    }
    vm.update(overrides)
    return vm


@dataclass
class FakeDaemon:
    socket_path: str
    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    # Routes answered as soon as the request header is in, the body unread
    # (as agentvmd refuses a body over its limit).
    early: set[tuple[str, str]] = field(default_factory=set)
    requests: list[Received] = field(default_factory=list)
    # Set when the fake stops: handlers that wait for a test's signal wait on
    # this too, so none outlives the test.
    stopping: threading.Event = field(default_factory=threading.Event)

    def route(self, method: str, path: str, handler: Handler, *, before_body: bool = False) -> None:
        self.routes[(method, path)] = handler
        if before_body:
            self.early.add((method, path))

    def json_route(self, method: str, path: str, status: int, value: Any) -> None:
        self.route(method, path, lambda _request, reply: reply.json(status, value))

    def received(self, method: str, path: str) -> list[Received]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def start(self) -> None:
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.socket_path)
        self._listener.listen(64)
        self._threads: list[threading.Thread] = []
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._accept_thread = accept

    def stop(self) -> None:
        self.stopping.set()
        self._listener.close()
        # Unblocks accept().
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as poke:
            try:
                poke.connect(self.socket_path)
            except OSError:
                pass
        self._accept_thread.join(5)
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if self.stopping.is_set():
                conn.close()
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        reply = Reply(conn)
        try:
            while not reply.closed:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target, _version = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                key = (method, unquote(urlsplit(target).path))
                if key in self.early:
                    request = Received(method, target, headers, b"")
                    self.requests.append(request)
                    self.routes[key](request, reply)
                    reply.drop()
                    return
                while len(buffer) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                body, buffer = buffer[:length], buffer[length:]
                request = Received(method, target, headers, body)
                self.requests.append(request)
                handler = self.routes.get((method, unquote(request.path)))
                if handler is None:
                    reply.error(404, "not_found", f"no such endpoint: {request.path}")
                else:
                    handler(request, reply)
        except OSError:
            pass
        finally:
            if not reply.closed:
                conn.close()


def new_socket_dir() -> str:
    # Not pytest's tmp_path: a unix socket path must stay under 108 bytes.
    return tempfile.mkdtemp(prefix="avmpy-")


def remove_socket_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
