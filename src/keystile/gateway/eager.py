"""Eager request handling (what Python 3.12's eager tasks do, for 3.11).

The server runs each request's pipeline synchronously from the protocol callback; with cached credentials and
a pooled upstream connection it never suspends and costs no task. Code about to do real I/O first awaits
`in_task()`: outside a task it suspends once, and the server hands the rest of the pipeline to a task, so
libraries that need a current task (anyio cancel scopes in httpx, `asyncio.timeout`) run inside one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["in_task", "resume_in_task", "run_eagerly"]


class _Switch:
    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        if asyncio.current_task() is not None:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        loop.call_soon(fut.set_result, None)
        yield from fut.__await__()


def in_task() -> _Switch:
    """Awaitable: continue inside a task (no-op when already in one)."""
    return _Switch()


class _Resumed:
    """Drive a coroutine that already ran up to its first suspension, following asyncio's Task protocol."""

    __slots__ = ("blocked_on", "coro")

    def __init__(self, coro: Coroutine[Any, Any, None], blocked_on: Any) -> None:
        self.coro = coro
        self.blocked_on = blocked_on

    def __await__(self) -> Generator[Any, None, None]:
        blocked_on = self.blocked_on
        while True:
            try:
                yield blocked_on
            except BaseException as exc:  # cancellation goes to the coroutine, which decides
                try:
                    blocked_on = self.coro.throw(exc)
                except StopIteration:
                    return
                continue
            try:
                blocked_on = self.coro.send(None)
            except StopIteration:
                return


async def _resume(coro: Coroutine[Any, Any, None], blocked_on: Any) -> None:
    await _Resumed(coro, blocked_on)


def resume_in_task(coro: Coroutine[Any, Any, None], blocked_on: Any) -> asyncio.Task[None]:
    """A task that carries on with `coro`, which suspended on `blocked_on` outside any task."""
    return asyncio.get_running_loop().create_task(_resume(coro, blocked_on))


def run_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run `coro` now; None when it finished without suspending, else the task that finishes it."""
    try:
        blocked_on = coro.send(None)
    except StopIteration:
        return None
    return resume_in_task(coro, blocked_on)
