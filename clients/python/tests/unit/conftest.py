from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentvm import AsyncClient, Client
from tests.unit.fake_daemon import FakeDaemon, new_socket_dir, remove_socket_dir
from tests.unit.synced import Synced

@pytest.fixture
def fake() -> Iterator[FakeDaemon]:
    directory = new_socket_dir()
    daemon = FakeDaemon(os.path.join(directory, "agentvm.sock"))
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
        remove_socket_dir(directory)


MakeClient = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def make_client(request: pytest.FixtureRequest, fake: FakeDaemon) -> Iterator[MakeClient]:
    """Makes a client on the fake daemon: the sync one, or the async one driven through Synced."""
    if request.param == "sync":
        yield lambda **kwargs: Client(kwargs.pop("socket", fake.socket_path), **kwargs)
        return
    with asyncio.Runner() as runner:
        yield lambda **kwargs: Synced(AsyncClient(kwargs.pop("socket", fake.socket_path), **kwargs), runner)


@pytest.fixture
def client(make_client: MakeClient) -> Any:
    return make_client()
