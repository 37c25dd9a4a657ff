"""The API's objects as frozen dataclasses (docs/api.md has every field).

Parsing is tolerant the way the C++ client's is: a field the daemon does not
send (an older daemon) gets its zero value, and fields this library does not
know (a newer daemon) are ignored but kept in ``raw``. Only what identifies
an object (a VM's ``id`` and ``state``, a pool's or snapshot's ``name``) is
required.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agentvm.errors import CommandFailed, ProtocolError

StreamName = Literal["stdout", "stderr"]


def _required_str(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"{what} without a string {key!r}: {dict(obj)!r}", code="protocol")
    return value


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = _opt_int(obj, key)
    return 0 if value is None else value


def _opt_int(obj: Mapping[str, Any], key: str) -> int | None:
    value = obj.get(key)
    # bool is an int in Python; JSON true is not a number.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} is not a JSON object: {value!r}", code="protocol")
    return value


def _list_of(value: Any, key: str) -> list[Any]:
    obj = _object(value, f"the {key} list")
    items = obj.get(key)
    if not isinstance(items, list):
        raise ProtocolError(f'expected {{"{key}": [...]}}, got {value!r}', code="protocol")
    return items


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    """How a VM reaches the network; a field that does not apply is ``""``."""

    mode: str
    address: str = ""
    gateway: str = ""
    dns: str = ""
    mac: str = ""
    tap: str = ""
    bridge: str = ""
    allow_tcp_ports: tuple[int, ...] = ()
    allow_cidrs: tuple[str, ...] = ()
    bandwidth_bytes_per_sec: int | None = None
    dropped_connections: int = 0

    @classmethod
    def from_json(cls, value: Any) -> NetworkInfo:
        obj = _object(value, "a VM's network")
        ports = obj.get("allow_tcp_ports")
        cidrs = obj.get("allow_cidrs")
        return cls(
            mode=_required_str(obj, "mode", "a VM's network"),
            address=_str(obj, "address"),
            gateway=_str(obj, "gateway"),
            dns=_str(obj, "dns"),
            mac=_str(obj, "mac"),
            tap=_str(obj, "tap"),
            bridge=_str(obj, "bridge"),
            allow_tcp_ports=tuple(p for p in ports if isinstance(p, int)) if isinstance(ports, list) else (),
            allow_cidrs=tuple(c for c in cidrs if isinstance(c, str)) if isinstance(cidrs, list) else (),
            bandwidth_bytes_per_sec=_opt_int(obj, "bandwidth_bytes_per_sec"),
            dropped_connections=_int(obj, "dropped_connections"),
        )


@dataclass(frozen=True, slots=True)
class VmInfo:
    """A VM as the daemon last described it (``GET /v1/vms/{id}``)."""

    id: str
    state: str  # creating, starting, running, stopping, stopped, failed
    image: str = ""
    cpus: int = 0
    memory_mib: int = 0
    pid: int | None = None
    channel: str = ""
    accel: str = ""
    reason: str = ""
    created_at: int = 0
    boot: str = ""  # cold, restore or pool
    restore_error: str = ""
    pool: str = ""
    network: NetworkInfo | None = None  # None: a daemon without networking
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Any) -> VmInfo:
        obj = _object(value, "a VM")
        network = obj.get("network")
        return cls(
            id=_required_str(obj, "id", "a VM"),
            state=_required_str(obj, "state", "a VM"),
            image=_str(obj, "image"),
            cpus=_int(obj, "cpus"),
            memory_mib=_int(obj, "memory_mib"),
            pid=_opt_int(obj, "pid"),
            channel=_str(obj, "channel"),
            accel=_str(obj, "accel"),
            reason=_str(obj, "reason"),
            created_at=_int(obj, "created_at"),
            boot=_str(obj, "boot"),
            restore_error=_str(obj, "restore_error"),
            pool=_str(obj, "pool"),
            network=None if network is None else NetworkInfo.from_json(network),
            raw=obj,
        )

    @classmethod
    def list_from_json(cls, value: Any) -> list[VmInfo]:
        return [cls.from_json(item) for item in _list_of(value, "vms")]


@dataclass(frozen=True, slots=True)
class PoolInfo:
    """A warm pool and what is in it now (``GET /v1/pools``)."""

    name: str
    image: str = ""
    cpus: int = 0
    memory_mib: int = 0
    network: str = ""
    min_ready: int = 0
    max_total: int = 0
    ready: int = 0
    starting: int = 0
    in_use: int = 0
    taken: int = 0
    replaced: int = 0
    failed: int = 0
    golden_ready: bool = False
    last_error: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Any) -> PoolInfo:
        obj = _object(value, "a pool")
        return cls(
            name=_required_str(obj, "name", "a pool"),
            image=_str(obj, "image"),
            cpus=_int(obj, "cpus"),
            memory_mib=_int(obj, "memory_mib"),
            network=_str(obj, "network"),
            min_ready=_int(obj, "min_ready"),
            max_total=_int(obj, "max_total"),
            ready=_int(obj, "ready"),
            starting=_int(obj, "starting"),
            in_use=_int(obj, "in_use"),
            taken=_int(obj, "taken"),
            replaced=_int(obj, "replaced"),
            failed=_int(obj, "failed"),
            golden_ready=obj.get("golden_ready") is True,
            last_error=_str(obj, "last_error"),
            raw=obj,
        )

    @classmethod
    def list_from_json(cls, value: Any) -> list[PoolInfo]:
        return [cls.from_json(item) for item in _list_of(value, "pools")]


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A named snapshot of a VM (``/v1/vms/{id}/snapshots``)."""

    name: str
    vm_state_bytes: int = 0
    created_at: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Any) -> SnapshotInfo:
        obj = _object(value, "a snapshot")
        return cls(
            name=_required_str(obj, "name", "a snapshot"),
            vm_state_bytes=_int(obj, "vm_state_bytes"),
            created_at=_int(obj, "created_at"),
            raw=obj,
        )

    @classmethod
    def list_from_json(cls, value: Any) -> list[SnapshotInfo]:
        return [cls.from_json(item) for item in _list_of(value, "snapshots")]


@dataclass(frozen=True, slots=True)
class OutputChunk:
    """Bytes a command wrote, as the guest delivered them.

    A multi-byte UTF-8 character may be split across two chunks: join the
    ``data`` of successive chunks before decoding.
    """

    stream: StreamName
    data: bytes

    @property
    def text(self) -> str:
        """``data`` decoded as UTF-8, undecodable bytes replaced."""
        return self.data.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class ExecResult:
    """How a command ended, and (from ``exec``, not ``exec_stream``) its output.

    ``status`` is the shell convention: ``exit_code``, or 128 + ``signal``, or
    124 when ``timed_out``. ``duration`` is the client's wall time in seconds
    from sending the request to reading the exit event.
    """

    exit_code: int | None
    signal: int | None
    timed_out: bool
    stdout: bytes
    stderr: bytes
    duration: float
    status: int

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")

    def check(self) -> ExecResult:
        """Returns self if the command exited 0; else raises :class:`CommandFailed`."""
        if self.ok:
            return self
        if self.timed_out:
            why = "timed out"
        elif self.signal is not None:
            why = f"was killed by signal {self.signal}"
        else:
            why = f"exited {self.exit_code}"
        tail = self.stderr[-500:].decode("utf-8", errors="replace").strip()
        raise CommandFailed(f"command {why} (status {self.status})" + (f": {tail}" if tail else ""), self)
