"""Loops that wait with a timeout end when cancelled, even when what they wait for happens at
the same moment. Python 3.11's `asyncio.wait_for` returns the result in that case and the
cancellation is lost: the dispatcher's loop, woken as the service stopped, ran on for ever
(two benchmark processes never stopped after SIGTERM)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any, cast

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from alerts.config import AlertMetrics, AlertSettings
from alerts.notify.dispatch import Dispatcher


class _DownPool:
    """A pool whose database is gone (what the stuck dispatchers met once their benchmark
    had ended), counting how often it is asked."""

    def __init__(self) -> None:
        self.asked = 0

    def connection(self, *args: Any, **kwargs: Any) -> Any:
        self.asked += 1
        raise psycopg.OperationalError("database gone")


async def _cancelled_as_it_wakes(task: asyncio.Task[None], wake: Any) -> None:
    """Cancel `task` in the same turn of the loop that what it waits for happens."""
    wake()
    task.cancel()
    for _ in range(20):  # a few turns of the loop, well past the race
        await asyncio.sleep(0.01)
        if task.done():
            break


async def test_the_dispatcher_stops_when_cancelled_as_it_is_woken() -> None:
    pool = _DownPool()
    d = Dispatcher(
        AlertSettings(poll_s=10.0),
        cast(AsyncConnectionPool[Any], pool),
        {},
        AlertMetrics(CollectorRegistry()),
        "http://console.test/console",
    )
    task = asyncio.create_task(d.run())
    await asyncio.sleep(0.01)  # waiting for work: woken, or its next poll in 10 s
    await _cancelled_as_it_wakes(task, d.wake)
    assert task.done()
    assert task.cancelled()
    assert pool.asked == 0  # no step after the cancellation (was: a step, then on for ever)


async def test_wait_for_in_this_python_can_lose_a_cancellation() -> None:
    """Why the loops use `asyncio.timeout`: this is what `asyncio.wait_for` does here (the
    test states the hazard; on Python 3.12+, whose wait_for is built on timeout, it passes
    the other way, and says so)."""
    event = asyncio.Event()
    rounds = 0

    async def loop_with_wait_for() -> None:
        nonlocal rounds
        while rounds < 1000:
            rounds += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), 10.0)
            event.clear()
            await asyncio.sleep(0.001)

    task = asyncio.create_task(loop_with_wait_for())
    await asyncio.sleep(0.01)
    await _cancelled_as_it_wakes(task, event.set)
    if sys.version_info >= (3, 12):
        assert task.cancelled()
    else:
        assert not task.done(), "Python 3.11's wait_for kept this loop running"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
