"""The exceptions the client raises.

Every one is an :class:`AgentvmError` with ``message``, ``code`` and
``status``. Errors the daemon reported are :class:`ApiError` subclasses, one
per error ``code`` of the API (docs/api.md, "Errors"); failures to talk to the
daemon at all are :class:`ConnectionFailed` (also a builtin
``ConnectionError``) or :class:`ClientTimeout` (also a builtin
``TimeoutError``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentvm.models import ExecResult


class AgentvmError(Exception):
    """Base of every error this library raises.

    ``code`` is the API's error code (``not_found``, ``conflict``, ...) or, for
    errors found on the client side, one of ``unreachable``, ``disconnected``,
    ``client_timeout``, ``protocol``, ``command_failed``. ``status`` is the
    HTTP status of the daemon's answer, ``None`` when there was none.
    """

    def __init__(self, message: str, *, code: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, status={self.status!r})"


class ApiError(AgentvmError):
    """The daemon answered with an error.

    An exec that fails after its output began streaming reports the error as
    the stream's last event: ``status`` is then that response's 200.
    """


class InvalidArgument(ApiError):
    """400 (and 405): the request was malformed; nothing happened."""


class NotFound(ApiError):
    """404: no such VM, image, file, snapshot or endpoint."""


class Conflict(ApiError):
    """409: a valid request in the wrong state (e.g. exec in a stopped VM)."""


class TooLarge(ApiError):
    """413 or 431: a body or header over the daemon's limit."""


class ServerError(ApiError):
    """500: a bug or a host failure in agentvmd."""


class Unavailable(ApiError):
    """503: QEMU or the guest agent went away."""


class Timeout(ApiError, TimeoutError):
    """504: the guest agent did not answer agentvmd in time.

    Not raised for a command that outlived its exec ``timeout``: that is an
    ordinary result with ``timed_out`` set.
    """


class ConnectionFailed(AgentvmError, ConnectionError):
    """The daemon could not be reached, or the connection broke."""


class DaemonUnreachable(ConnectionFailed):
    """Nothing accepted a connection on the socket (no daemon, wrong path, no permission)."""


class ConnectionLost(ConnectionFailed):
    """The daemon closed the connection before its answer was complete."""


class ClientTimeout(AgentvmError, TimeoutError):
    """The client's own socket timeout passed while waiting for the daemon."""


class ProtocolError(AgentvmError):
    """The daemon's answer was not what the API specifies."""


class CommandFailed(AgentvmError):
    """Raised by ``exec(..., check=True)`` and ``ExecResult.check()`` for a non-zero status."""

    def __init__(self, message: str, result: ExecResult) -> None:
        super().__init__(message, code="command_failed")
        self.result = result


_BY_CODE: dict[str, type[ApiError]] = {
    "invalid_argument": InvalidArgument,
    "not_found": NotFound,
    "conflict": Conflict,
    "too_large": TooLarge,
    "internal": ServerError,
    "unavailable": Unavailable,
    "timeout": Timeout,
}

_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidArgument,
    404: NotFound,
    405: InvalidArgument,
    409: Conflict,
    413: TooLarge,
    431: TooLarge,
    500: ServerError,
    503: Unavailable,
    504: Timeout,
}


def api_error(message: str, code: str | None, status: int) -> ApiError:
    """The exception for an error the daemon reported: by its ``code``, else by HTTP status."""
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else ApiError
    if not code:
        code = next((name for name, known in _BY_CODE.items() if known is cls), "unknown")
    return cls(message, code=code, status=status)
