"""pytest fixtures for suites that run things in agentvm VMs.

Installed with the package as the ``pytest11`` entry point ``agentvm``, so
pytest loads it on its own (or load it with ``-p agentvm.pytest_plugin``)::

    def test_builds(agentvm_vm):
        agentvm_vm.write_file("/tmp/main.c", "int main(void) { return 0; }")
        assert agentvm_vm.exec("cc /tmp/main.c -o /tmp/m && /tmp/m", timeout=60).ok

Fixtures:

- ``agentvm_client`` (session): a :class:`agentvm.Client` on ``--agentvm-socket``
  (default ``$AGENTVM_SOCKET``, else ``/run/agentvm/agentvm.sock``).
- ``agentvm_vm`` (per test): a fresh VM, released after the test however it
  ended. Without other instructions it is created with the profile of the
  daemon's warm pool for ``--agentvm-image`` (or its first pool), so it is a
  hand-over from the pool, not a boot. ``@pytest.mark.agentvm(cpus=2,
  memory_mib=1024, network="isolated", boot="cold")`` on a test passes those
  arguments to the create instead.

An unreachable daemon is an error in every test that uses the fixtures, never
a skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest

from agentvm.client import Client, CreateArgs, Vm


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agentvm", "agentvm VMs for tests")
    group.addoption(
        "--agentvm-socket",
        default=None,
        help="agentvmd's API socket (default: $AGENTVM_SOCKET, else /run/agentvm/agentvm.sock)",
    )
    group.addoption(
        "--agentvm-image",
        default=None,
        help="image of the agentvm_vm fixture's VMs (default: the first warm pool's, else the daemon's default)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "agentvm(**create_args): arguments for the create of the agentvm_vm fixture's VM "
        "(image=, cpus=, memory_mib=, network=, boot=)",
    )


def create_args(client: Client, image: str | None, marker_args: dict[str, Any] | None) -> CreateArgs:
    """What the ``agentvm_vm`` fixture creates its VM with.

    A marker's arguments as given; otherwise the profile of a warm pool
    (of ``image`` if set), so that the create is a hand-over from the pool.
    """
    if marker_args is not None:
        args = cast(CreateArgs, dict(marker_args))
        if image is not None:
            args.setdefault("image", image)
        return args
    for pool in client.pools():
        if image is None or pool.image == image:
            return CreateArgs(image=pool.image, cpus=pool.cpus, memory_mib=pool.memory_mib, network=pool.network)
    return CreateArgs() if image is None else CreateArgs(image=image)


@pytest.fixture(scope="session")
def agentvm_client(pytestconfig: pytest.Config) -> Client:
    return Client(pytestconfig.getoption("agentvm_socket"))


@pytest.fixture
def agentvm_vm(agentvm_client: Client, pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> Iterator[Vm]:
    marker = request.node.get_closest_marker("agentvm")
    if marker is not None and marker.args:
        raise pytest.UsageError("@pytest.mark.agentvm takes keyword arguments only (cpus=..., memory_mib=..., ...)")
    image: str | None = pytestconfig.getoption("agentvm_image")
    args = create_args(agentvm_client, image, None if marker is None else dict(marker.kwargs))
    with agentvm_client.vm(**args) as vm:
        yield vm
