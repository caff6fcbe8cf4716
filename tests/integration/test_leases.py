"""Leases on a real PostgreSQL (alerts/lease.py): one holder at a time, taken over within
about 1.3 TTL when the holder stops renewing, given up at once on release, the work stopped
the moment a renewal finds the lease gone, and the fence refusing a former holder's write."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import psycopg
import pytest

from alerts.lease import LeaseLost, Leases, LeaseSettings, Term
from tests.integration.helpers import eventually, scalar

pytestmark = pytest.mark.integration

TTL = 1.2


def _book(db_url: str, holder: str) -> Leases:
    return Leases(db_url, holder, LeaseSettings(ttl_s=TTL))


async def test_one_holder_then_the_other_once_the_first_stops_renewing(db_url: str) -> None:
    a, b = _book(db_url, "a"), _book(db_url, "b")
    try:
        term_a = await a.take("job")
        assert term_a is not None
        assert term_a.epoch == 1
        assert await b.take("job") is None
        # Renewed past its first TTL, it is still a's.
        for _ in range(4):
            await asyncio.sleep(TTL / 3)
            assert await a.renew(term_a, TTL / 3)
            assert await b.take("job") is None
        # a dies: no renewal, no release. b gets it once the TTL has run out, not before.
        died = time.monotonic()
        term_b = None
        while term_b is None:
            term_b = await b.take("job")
            await asyncio.sleep(0.05)
        waited = time.monotonic() - died
        assert TTL * 0.8 <= waited <= TTL + 0.5, waited
        assert term_b.epoch == 2
        assert term_b.previous == "a"
        # a, back from a pause, finds it gone: its renewal fails, its fenced write too.
        assert not await a.renew(term_a, TTL / 3)
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            with pytest.raises(LeaseLost):
                async with conn.transaction():
                    await term_a.fence(conn)
            async with conn.transaction():
                await term_b.fence(conn)  # b's passes
        # Released, it is free at once.
        await b.release(term_b)
        term_a2 = await a.take("job")
        assert term_a2 is not None
        assert term_a2.epoch == 3
    finally:
        await a.close()
        await b.close()


async def test_hold_runs_the_work_on_one_instance_and_hands_it_over(db_url: str) -> None:
    """Two `hold` loops on one lease: the work runs on one only; cancelling that loop (the
    process stopping) releases the lease and the other runs the work within a third of a
    TTL; taking the row away from the holder stops its work at its next renewal."""
    running: dict[str, int] = {"a": 0, "b": 0}
    overlap: list[float] = []

    def work_of(name: str) -> Any:
        async def work(term: Term) -> None:
            running[name] += 1
            try:
                while True:
                    if running["a"] and running["b"]:
                        overlap.append(time.monotonic())
                    await asyncio.sleep(0.01)
            finally:
                running[name] -= 1

        return work

    a, b = _book(db_url, "a"), _book(db_url, "b")
    settled_a, settled_b = asyncio.Event(), asyncio.Event()
    task_a = asyncio.create_task(a.hold("job", work_of("a"), settled_a))
    await settled_a.wait()
    task_b = asyncio.create_task(b.hold("job", work_of("b"), settled_b))
    await settled_b.wait()
    try:
        assert running == {"a": 1, "b": 0}
        await asyncio.sleep(2 * TTL)  # renewed all along
        assert running == {"a": 1, "b": 0}
        stopped = time.monotonic()
        task_a.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task_a
        await eventually(lambda: _true(running["b"] == 1), timeout=2 * TTL, what="b's work")
        assert time.monotonic() - stopped < TTL / 3 + 0.5  # released: at b's next try
        # Someone else takes the row (as if b had been paused past its TTL): b's next renewal
        # finds it gone and its work stops.
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            await conn.execute(
                "UPDATE leases SET token = gen_random_uuid(), epoch = epoch + 1 WHERE name = 'job'"
            )
        taken = time.monotonic()
        await eventually(lambda: _true(running["b"] == 0), timeout=TTL, what="b's work stopped")
        assert time.monotonic() - taken <= TTL / 3 + 0.3
        assert not overlap, "the work ran on both at once"
        assert await scalar(db_url, "SELECT epoch FROM leases WHERE name = 'job'") >= 3
    finally:
        for task in (task_a, task_b):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await a.close()
        await b.close()


async def _true(value: bool) -> bool:
    return value
