"""Drives an AsyncClient through the synchronous client's interface.

So that one test body checks both clients: every coroutine the async client
returns is run to completion on a private event loop, AsyncVm and
AsyncExecStream are wrapped the same way, and ``async with`` / ``async for``
become ``with`` / ``for``. Like the sync client, ``exec_stream`` sends its
request at once.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from agentvm import AsyncExecStream, AsyncVm, OutputChunk


class Synced:
    def __init__(self, target: Any, runner: asyncio.Runner) -> None:
        self._target = target
        self._runner = runner

    def __repr__(self) -> str:
        return f"Synced({self._target!r})"

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._wrap(attr(*args, **kwargs))

        return call

    def _wrap(self, value: Any) -> Any:
        if inspect.isawaitable(value) and not isinstance(value, AsyncExecStream):
            value = self._runner.run(_await(value))
        if isinstance(value, AsyncVm):
            return Synced(value, self._runner)
        if isinstance(value, AsyncExecStream):
            return SyncedStream(value, self._runner)
        if isinstance(value, list):
            return [self._wrap(item) for item in value]
        if hasattr(value, "__aenter__"):
            return SyncedContext(value, self)
        return value


async def _await(value: Any) -> Any:
    return await value


class SyncedContext:
    def __init__(self, manager: Any, owner: Synced) -> None:
        self._manager = manager
        self._owner = owner

    def __enter__(self) -> Any:
        return self._owner._wrap(self._owner._runner.run(self._manager.__aenter__()))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        return bool(self._owner._runner.run(self._manager.__aexit__(exc_type, exc, tb)))


class SyncedStream:
    def __init__(self, stream: AsyncExecStream, runner: asyncio.Runner) -> None:
        self._stream = stream
        self._runner = runner
        runner.run(stream.start())

    @property
    def result(self) -> Any:
        return self._stream.result

    @property
    def done(self) -> bool:
        return self._stream.done

    def __iter__(self) -> Iterator[OutputChunk]:
        while True:
            try:
                yield self._runner.run(self._stream.__anext__())
            except StopAsyncIteration:
                return

    def wait(self) -> Any:
        return self._runner.run(self._stream.wait())

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> SyncedStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
