"""agentvm: drive agentvmd (VMs for untrusted programs) from Python.

::

    import agentvm

    client = agentvm.Client()                     # $AGENTVM_SOCKET or /run/agentvm/agentvm.sock
    with client.vm(image="tiny") as vm:           # from a warm pool when one matches
        result = vm.exec("python3 agent.py", timeout=60)
        print(result.status, result.stdout_text)
    # released: the VM is gone, its pool refilled

The asyncio twin is :class:`AsyncClient`. Errors are :class:`AgentvmError`
subclasses (agentvm.errors). The API itself: docs/api.md in the agentvm tree.
"""

from agentvm.aio import AsyncClient, AsyncExecStream, AsyncVm
from agentvm.client import Client, CreateArgs, ExecStream, Vm
from agentvm.errors import (
    AgentvmError,
    ApiError,
    ClientTimeout,
    CommandFailed,
    Conflict,
    ConnectionFailed,
    ConnectionLost,
    DaemonUnreachable,
    InvalidArgument,
    NotFound,
    ProtocolError,
    ServerError,
    Timeout,
    TooLarge,
    Unavailable,
)
from agentvm.models import ExecResult, NetworkInfo, OutputChunk, PoolInfo, SnapshotInfo, VmInfo

__version__ = "0.1.0"

__all__ = [
    "AgentvmError",
    "ApiError",
    "AsyncClient",
    "AsyncExecStream",
    "AsyncVm",
    "Client",
    "ClientTimeout",
    "CommandFailed",
    "CreateArgs",
    "Conflict",
    "ConnectionFailed",
    "ConnectionLost",
    "DaemonUnreachable",
    "ExecResult",
    "ExecStream",
    "InvalidArgument",
    "NetworkInfo",
    "NotFound",
    "OutputChunk",
    "PoolInfo",
    "ProtocolError",
    "ServerError",
    "SnapshotInfo",
    "Timeout",
    "TooLarge",
    "Unavailable",
    "Vm",
    "VmInfo",
]
