"""The family is told when an emergency opens, when someone takes it and when it ends, not
at every repeat of the escalation (staff still are), on a real PostgreSQL and SMTP receiver
with an injected clock."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from alerts import store
from alerts.model import Outcome
from tests.conftest import SmtpServer
from tests.integration.test_alerting import (
    Clock,
    make_dispatcher,
    raise_,
    rcpts,
    sos,
    start_time,
    user_id,
)

pytestmark = pytest.mark.integration


async def notices(db_url: str, username: str) -> list[tuple[str, int, str]]:
    """(notice, round, status) of every notification to `username`, in order."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute(
            "SELECT n.notice, n.round, n.status FROM notifications n"
            " JOIN users u ON u.id = n.user_id WHERE u.username = %s ORDER BY n.id",
            (username,),
        )
        return [(str(a), int(b), str(c)) for a, b, c in await cur.fetchall()]


async def test_an_sos_over_several_rounds_tells_the_family_once_then_the_ack(
    pool: AsyncConnectionPool[Any], db_url: str, smtp_server: SmtpServer
) -> None:
    t0 = start_time()
    clock = Clock(t0)
    async with httpx.AsyncClient() as http:
        d = make_dispatcher(pool, smtp_server, clock, http)
        alert_id = (await raise_(pool, d, sos("h01", t0), t0)).alert_id
        assert await d.step() == 2
        assert rcpts(smtp_server) == ["family-h01", "worker-v1"]
        sent = 2
        # Five more rounds (town at 5 min, district at 10, repeats every 5): staff only.
        for offset, staff in ((300, 2), (600, 3), (900, 3), (1200, 3), (1500, 3)):
            clock.to(offset, t0)
            assert await d.step() == staff
            assert "family-h01" not in rcpts(smtp_server, sent)
            assert "worker-v1" in rcpts(smtp_server, sent)
            sent += staff
        async with pool.connection() as conn:
            assert await store.acknowledge(
                conn, alert_id, await user_id(db_url, "worker-v1"), "api"
            )
        assert await d.step() == 3  # family, town, district hear who owns it
        family_mail = [m for m in smtp_server.messages if "family-h01@" in " ".join(m.rcpt_tos)]
        assert len(family_mail) == 2
        assert family_mail[1].subject.startswith("Acknowledged by Village worker v1")
    assert await notices(db_url, "family-h01") == [
        ("alert", 0, "sent"),
        ("acknowledged", 0, "sent"),
    ]
    rounds = await notices(db_url, "worker-v1")
    assert [r for r in rounds if r[0] == "alert"] == [("alert", n, "sent") for n in range(6)]


async def test_an_alert_resolved_while_open_tells_the_family_it_is_over(
    pool: AsyncConnectionPool[Any], db_url: str, smtp_server: SmtpServer
) -> None:
    t0 = start_time()
    clock = Clock(t0)
    async with httpx.AsyncClient() as http:
        d = make_dispatcher(pool, smtp_server, clock, http)
        alert_id = (await raise_(pool, d, sos("h01", t0), t0)).alert_id
        assert await d.step() == 2
        clock.to(300, t0)
        assert await d.step() == 2  # worker and town; not the family again
        async with pool.connection() as conn:
            assert await store.resolve(
                conn, alert_id, await user_id(db_url, "town-t1"), Outcome.FALSE_ALARM
            )
        await d.step()
    assert await notices(db_url, "family-h01") == [("alert", 0, "sent"), ("resolved", 0, "sent")]


async def test_an_alert_resolved_after_it_was_taken_tells_the_family_how_it_ended(
    pool: AsyncConnectionPool[Any], db_url: str, smtp_server: SmtpServer
) -> None:
    t0 = start_time()
    clock = Clock(t0)
    async with httpx.AsyncClient() as http:
        d = make_dispatcher(pool, smtp_server, clock, http)
        alert_id = (await raise_(pool, d, sos("h01", t0), t0)).alert_id
        assert await d.step() == 2
        worker = await user_id(db_url, "worker-v1")
        async with pool.connection() as conn:
            assert await store.acknowledge(conn, alert_id, worker, "api", t0)
        assert await d.step() == 1  # the family hears who owns it
        async with pool.connection() as conn:
            assert await store.resolve(conn, alert_id, worker, Outcome.VISITED_FINE, at=t0)
        assert await d.step() == 1  # and how it ended
    assert await notices(db_url, "family-h01") == [
        ("alert", 0, "sent"),
        ("acknowledged", 0, "sent"),
        ("resolved", 0, "sent"),
    ]
    # Who resolved it is not told what they did.
    assert [n[0] for n in await notices(db_url, "worker-v1")] == ["alert"]
