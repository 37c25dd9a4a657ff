from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from agentvm import Client, PoolInfo
from tests.vm.daemon import Daemon

MIN_READY = 2
# Pool VMs are restored clones: the first needs the golden snapshot, one cold
# boot (3-8 s under TCG) then a save; each clone then about 0.5 s.
POOL_ARGS = ["--pool", f"image=tiny,network=isolated,min_ready={MIN_READY},max_total=4"]


def wait_for_full_pool(client: Client, limit: float) -> PoolInfo:
    deadline = time.monotonic() + limit
    while True:
        [pool] = client.pools()
        if (pool.ready == pool.min_ready and pool.starting == 0) or time.monotonic() > deadline:
            return pool
        time.sleep(0.1)


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    """One agentvmd with a warm pool of isolated tiny VMs for the whole tier."""
    started = Daemon(POOL_ARGS)
    try:
        pool = wait_for_full_pool(Client(started.socket), 180)
        assert pool.ready == MIN_READY and pool.golden_ready, f"the pool never filled: {pool}\n{started.log()[-4000:]}"
        yield started
    finally:
        started.stop()


@pytest.fixture
def client(daemon: Daemon) -> Client:
    return Client(daemon.socket, timeout=120)
