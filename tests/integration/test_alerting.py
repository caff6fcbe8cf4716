"""Escalation, acknowledgement, fallback, restart, two instances, mutes, self-cancel and KPIs,
against real PostgreSQL and real SMTP / HTTP receivers, on an injected clock."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import psycopg
import pytest
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from alerts import kpi, store
from alerts.config import AlertMetrics, AlertSettings
from alerts.escalate import recipients
from alerts.escalate.routing import ALL_CHANNELS, Routing
from alerts.model import Category, Outcome, Severity, Signal
from alerts.mutes import add_silence, default_mutes, set_home_mode
from alerts.notify.channels import Channel, EmailChannel, SmtpConfig, WebhookChannel
from alerts.notify.dispatch import Dispatcher
from tests.conftest import HttpReceiver, SmtpServer
from tests.integration.helpers import scalar


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def to(self, offset_s: float, t0: datetime) -> None:
        self.now = t0 + timedelta(seconds=offset_s)


def start_time() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def sos(home: str, at: datetime, seq: int = 1) -> Signal:
    return Signal(
        home_id=home,
        kind="sos",
        category=Category.EMERGENCY,
        severity=Severity.CRITICAL,
        event_at=at,
        summary="SOS button pressed",
        device_id=f"{home}-sos",
        boot=1,
        seq=seq,
    )


def signal(home: str, kind: str, category: Category, at: datetime) -> Signal:
    return Signal(home, kind, category, Severity.WARNING, at, f"{kind} detected")


def make_dispatcher(
    pool: AsyncConnectionPool[Any],
    smtp: SmtpServer,
    clock: Clock,
    http: httpx.AsyncClient,
    **overrides: Any,
) -> Dispatcher:
    settings = AlertSettings(retry_base_s=5, max_attempts=3, late_after_s=3600, **overrides)
    channels: dict[str, Channel] = {
        "email": EmailChannel(SmtpConfig(smtp.host, smtp.port, "alerts@test")),
        "webhook": WebhookChannel(http, b"test-secret"),
    }
    return Dispatcher(
        settings,
        pool,
        channels,
        AlertMetrics(CollectorRegistry()),
        "http://console.test/console",
        clock=clock,
    )


async def raise_(pool: AsyncConnectionPool[Any], d: Dispatcher, sig: Signal, now: datetime) -> Any:
    """What the alert service does with a signal: mutes first, then the store."""
    chain = default_mutes()
    async with pool.connection() as conn:
        muted = await chain.check(conn, sig, now)
        if muted is not None:
            await chain.record(conn, sig, muted)
            return muted
        return await store.raise_signal(conn, sig, now, d.routing)


def rcpts(smtp: SmtpServer, start: int = 0) -> list[str]:
    return sorted(r.split("@")[0] for m in smtp.messages[start:] for r in m.rcpt_tos)


async def user_id(db_url: str, name: str) -> int:
    return int(await scalar(db_url, "SELECT id FROM users WHERE username = %s", name))


async def events(db_url: str, alert_id: int, action: str) -> list[Any]:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute(
            "SELECT detail FROM alert_events WHERE alert_id = %s AND action = %s ORDER BY id",
            (alert_id, action),
        )
        return [r[0] for r in await cur.fetchall()]


async def test_escalation_step_by_step_and_ack_stops_it(
    pool: AsyncConnectionPool[Any], db_url: str, smtp_server: SmtpServer
) -> None:
    t0 = start_time()
    clock = Clock(t0)
    async with httpx.AsyncClient() as http:
        d = make_dispatcher(pool, smtp_server, clock, http)
        raised = await raise_(pool, d, sos("h01", t0), t0)
        alert_id = raised.alert_id
        assert await d.step() == 2
        assert rcpts(smtp_server) == ["family-h01", "worker-v1"]

        clock.to(299, t0)
        assert await d.step() == 0
        clock.to(300, t0)  # 5 min: the town joins; the staff reached so far are reminded
        assert await d.step() == 2  # (the family was told once: test_family_told_once.py)
        assert rcpts(smtp_server, 2) == ["town-t1", "worker-v1"]
        clock.to(600, t0)  # 10 min: the district centre joins
        assert await d.step() == 3
        assert rcpts(smtp_server, 4) == ["district", "town-t1", "worker-v1"]
        escalated = await events(db_url, alert_id, "escalated")
        assert [e["tiers"] for e in escalated] == [["town"], ["district"]]
        clock.to(900, t0)  # repeats every 5 min
        assert await d.step() == 3

        # The town staff member takes it: the chain stops, the others are told who owns it.
        async with pool.connection() as conn:
            assert await store.acknowledge(conn, alert_id, await user_id(db_url, "town-t1"), "api")
            assert not await store.acknowledge(
                conn, alert_id, await user_id(db_url, "district"), "api"
            )
        before = len(smtp_server.messages)
        assert await d.step() == 3
        told = smtp_server.messages[before:]
        assert sorted(r.split("@")[0] for m in told for r in m.rcpt_tos) == [
            "district",
            "family-h01",
            "worker-v1",
        ]
        assert all(m.subject.startswith("Acknowledged by Town staff t1") for m in told)
        for offset in (1200, 1500, 3600):
            clock.to(offset, t0)
            assert await d.step() == 0
        assert len(smtp_server.messages) == before + 3
    # "Help is on the way" queued for the device that raised it.
    assert (
        await scalar(
            db_url, "SELECT device_id || ':' || (command->>'command') FROM device_commands"
        )
        == "h01-sos:help_on_the_way"
    )
    assert await scalar(db_url, "SELECT count(*) FROM alert_timers") == 0


async def test_ack_links_are_in_staff_mail_only(
    pool: AsyncConnectionPool[Any], smtp_server: SmtpServer
) -> None:
    t0 = start_time()
    async with httpx.AsyncClient() as http:
        d = make_dispatcher(pool, smtp_server, Clock(t0), http)
        await raise_(pool, d, sos("h01", t0), t0)
        await d.step()
    by = {m.rcpt_tos[0].split("@")[0]: m.text for m in smtp_server.messages}
    assert "http://console.test/ack/" in by["worker-v1"]
    assert "/ack/" not in by["family-h01"]


async def test_failing_channel_falls_back_and_retries_with_backoff(
    pool: AsyncConnectionPool[Any],
    db_url: str,
    smtp_server: SmtpServer,
    http_receiver: HttpReceiver,
) -> None:
    http_receiver.status = 500
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO contact_channels (user_id, channel, target, position)"
            " SELECT id, 'webhook', %s, 0 FROM users WHERE username = 'worker-v1'",
            (http_receiver.url + "/worker-v1",),
        )
        await conn.commit()
    t0 = start_time()
    clock = Clock(t0)
    async with httpx.AsyncClient() as http:
        d = make_dispatcher(pool, smtp_server, clock, http)
        raised = await raise_(pool, d, sos("h01", t0), t0)
        await d.step()  # webhook to the worker fails; the family's mail goes
        assert len(http_receiver.requests) == 1
        assert rcpts(smtp_server) == ["family-h01"]
        await d.step()  # the fallback (the worker's e-mail) is due at once
        assert rcpts(smtp_server) == ["family-h01", "worker-v1"]
        # Retry n comes after retry_base_s * 2**(n-1), less up to a quarter at random.
        clock.to(3.7, t0)
        await d.step()
        assert len(http_receiver.requests) == 1
        clock.to(5, t0)  # first retry within 3.75-5 s
        await d.step()
        assert len(http_receiver.requests) == 2
        clock.to(12.4, t0)
        await d.step()
        assert len(http_receiver.requests) == 2
        clock.to(15, t0)  # second retry 7.5-10 s after the first; then it gives up
        await d.step()
        assert len(http_receiver.requests) == 3
        clock.to(100, t0)
        await d.step()
        assert len(http_receiver.requests) == 3
    assert (
        await scalar(
            db_url,
            "SELECT count(*) FROM notification_attempts a JOIN notifications n"
            " ON n.id = a.notification_id WHERE n.channel = 'webhook' AND NOT a.ok",
        )
        == 3
    )
    assert (
        await scalar(db_url, "SELECT status FROM notifications WHERE channel = 'webhook'")
        == "failed"
    )
    fallback = await events(db_url, raised.alert_id, "fallback")
    assert [(f["from"], f["to"]) for f in fallback] == [("webhook", "email")]


async def test_recipient_without_channel_is_skipped_and_next_tier_called(
    pool: AsyncConnectionPool[Any], db_url: str, smtp_server: SmtpServer
) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "DELETE FROM contact_channels WHERE user_id IN"
            " (SELECT id FROM users WHERE username = 'worker-v1')"
        )
        await conn.commit()
    t0 = start_time()
    async with httpx.AsyncClient() as http:
        d = make_dispatcher(pool, smtp_server, Clock(t0), http)
        raised = await raise_(pool, d, sos("h01", t0), t0)
        await d.step()
    # Nobody of the village reachable: the town is called at once, not after 5 minutes.
    assert rcpts(smtp_server) == ["family-h01", "town-t1"]
    skipped = await events(db_url, raised.alert_id, "recipient_skipped")
    assert [s["user_id"] for s in skipped] == [await user_id(db_url, "worker-v1")]
    assert len(await events(db_url, raised.alert_id, "no_staff_reachable")) == 1


async def test_restart_mid_escalation_continues_on_time(
    db_url: str, smtp_server: SmtpServer
) -> None:
    t0 = start_time()
    clock = Clock(t0)
    async with httpx.AsyncClient() as http:
        async with AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as first:
            d1 = make_dispatcher(first, smtp_server, clock, http)
            await raise_(first, d1, sos("h01", t0), t0)
            await d1.step()
        assert rcpts(smtp_server) == ["family-h01", "worker-v1"]
        # The first instance is gone; a new one starts with nothing in memory.
        async with AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as second:
            d2 = make_dispatcher(second, smtp_server, clock, http)
            clock.to(299, t0)
            assert await d2.step() == 0
            clock.to(300, t0)
            assert await d2.step() == 2  # worker and town (the family was told once)
    assert "town-t1" in rcpts(smtp_server, 2)


async def test_two_instances_run_each_step_exactly_once(
    db_url: str, smtp_server: SmtpServer
) -> None:
    t0 = start_time()
    clock = Clock(t0)
    homes = [f"h{i:02d}" for i in range(1, 9)]
    async with (
        httpx.AsyncClient() as http,
        AsyncConnectionPool(db_url, min_size=2, max_size=4, open=False) as pa,
        AsyncConnectionPool(db_url, min_size=2, max_size=4, open=False) as pb,
    ):
        a = make_dispatcher(pa, smtp_server, clock, http)
        b = make_dispatcher(pb, smtp_server, clock, http)
        for home in homes:
            await raise_(pa, a, sos(home, t0), t0)
        for offset in (0, 300, 600):
            clock.to(offset, t0)
            for _ in range(3):
                await asyncio.gather(a.step(), b.step(), a.step(), b.step())
    # Per home: round 0 -> worker + family; 300 s -> worker + town; 600 s -> + district.
    assert len(smtp_server.messages) == len(homes) * (2 + 2 + 3)
    assert (
        await scalar(db_url, "SELECT count(*) FROM alert_events WHERE action = 'round_planned'")
        == len(homes) * 3
    )
    assert await scalar(db_url, "SELECT count(*) FROM notification_attempts") == len(homes) * 7
    assert await scalar(db_url, "SELECT count(*) FROM notifications WHERE status <> 'sent'") == 0


async def test_mutes_mute_exactly_what_they_should(
    pool: AsyncConnectionPool[Any], db_url: str, smtp_server: SmtpServer
) -> None:
    t0 = start_time()
    clock = Clock(t0)
    wellbeing, technical, environment = Category.WELLBEING, Category.TECHNICAL, Category.ENVIRONMENT
    async with httpx.AsyncClient() as http:
        d = make_dispatcher(pool, smtp_server, clock, http)
        async with pool.connection() as conn:
            await set_home_mode(conn, "h02", "hospital", since=t0, reason="hip operation")
            await add_silence(
                conn,
                starts_at=t0,
                ends_at=t0 + timedelta(hours=1),
                reason="replacing batteries",
                home_id="h03",
                kinds=["low_battery"],
            )
            await conn.commit()
        # Away/hospital mode: wellbeing muted; emergency and environment are not.
        muted = await raise_(pool, d, signal("h02", "inactivity", wellbeing, t0), t0)
        assert muted.stage == "away_mode"
        assert await raise_(pool, d, signal("h02", "too_cold", environment, t0), t0)
        assert (await raise_(pool, d, sos("h02", t0), t0)).created
        # Silence: only the silenced kind of that home, only until it ends.
        assert (await raise_(pool, d, signal("h03", "low_battery", technical, t0), t0)).stage == (
            "silence"
        )
        assert (await raise_(pool, d, signal("h03", "device_silent", technical, t0), t0)).created
        assert (await raise_(pool, d, signal("h07", "low_battery", technical, t0), t0)).created
        later = t0 + timedelta(hours=1, seconds=1)
        assert (
            await raise_(pool, d, signal("h03", "low_battery", technical, later), later)
        ).created
        # Inhibition: an open hub-offline alert inhibits wellbeing of that home only.
        hub = await raise_(pool, d, signal("h04", "hub_offline", technical, t0), t0)
        assert (await raise_(pool, d, signal("h04", "inactivity", wellbeing, t0), t0)).stage == (
            "inhibition"
        )
        assert (await raise_(pool, d, signal("h05", "inactivity", wellbeing, t0), t0)).created
        assert (await raise_(pool, d, sos("h04", t0), t0)).created
        async with pool.connection() as conn:
            await store.resolve(conn, hub.alert_id, None, Outcome.OTHER, "hub back")
        assert (await raise_(pool, d, signal("h04", "inactivity", wellbeing, t0), t0)).created
    kept = await scalar(
        db_url,
        "SELECT string_agg(home_id || ':' || muted_by, ',' ORDER BY id) FROM suppressed_signals",
    )
    assert kept == "h02:away_mode,h03:silence,h04:inhibition"


async def test_self_cancel_within_window_is_recorded_not_deleted(
    pool: AsyncConnectionPool[Any], db_url: str, smtp_server: SmtpServer
) -> None:
    t0 = start_time()
    clock = Clock(t0)
    async with httpx.AsyncClient() as http:
        d = make_dispatcher(pool, smtp_server, clock, http)
        first = await raise_(pool, d, sos("h01", t0), t0)
        await d.step()
        async with pool.connection() as conn:
            cancelled = await store.self_cancel(
                conn, "h01", "h01-sos", t0 + timedelta(seconds=20), timedelta(seconds=30)
            )
        assert cancelled == (first.alert_id, True)
        clock.to(20, t0)
        await d.step()  # those already told hear it was cancelled
        assert all("Cancelled by the elder" in m.subject for m in smtp_server.messages[2:])
        assert len(smtp_server.messages) == 4
        second = await raise_(pool, d, sos("h01", t0 + timedelta(seconds=60), 2), t0)
        async with pool.connection() as conn:
            late = await store.self_cancel(
                conn, "h01", "h01-sos", t0 + timedelta(seconds=100), timedelta(seconds=30)
            )
        assert late == (second.alert_id, False)
    assert (
        await scalar(
            db_url, "SELECT status || '/' || outcome FROM alerts WHERE id = %s", first.alert_id
        )
        == "resolved/cancelled_by_elder"
    )
    assert await scalar(db_url, "SELECT status FROM alerts WHERE id = %s", second.alert_id) == (
        "open"
    )
    assert len(await events(db_url, second.alert_id, "cancel_too_late")) == 1


async def test_cleared_by_data_and_kpis(
    pool: AsyncConnectionPool[Any], db_url: str, smtp_server: SmtpServer
) -> None:
    t0 = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
    worker = await user_id(db_url, "worker-v1")
    async with httpx.AsyncClient() as http:
        d = make_dispatcher(pool, smtp_server, Clock(t0), http)
        ids = []
        # Five SOS alerts in v1/v2 acknowledged after 30, 50, 90, 200, 400 s.
        for i, (home, ack_s) in enumerate(
            [("h01", 30), ("h05", 50), ("h01", 90), ("h02", 200), ("h06", 400)]
        ):
            at = t0 + timedelta(hours=i)
            raised = await raise_(pool, d, sos(home, at, i), at)
            ids.append(raised.alert_id)
            async with pool.connection() as conn:
                await store.acknowledge(
                    conn, raised.alert_id, worker, "api", at + timedelta(seconds=ack_s)
                )
                outcome = Outcome.FALSE_ALARM if i < 2 else Outcome.VISITED_FINE
                await store.resolve(
                    conn, raised.alert_id, worker, outcome, "", at + timedelta(seconds=ack_s + 600)
                )
        inactive = await raise_(pool, d, signal("h03", "inactivity", Category.WELLBEING, t0), t0)
        async with pool.connection() as conn:
            cleared = await store.clear_by_data(conn, "h03", "inactivity", "moved again", t0)
            rows = await kpi.report(conn, "2026-11")
            v1 = await kpi.report(conn, "2026-11", "v1")
            october = await kpi.report(conn, "2026-10")
    assert cleared == inactive.alert_id
    assert (
        await scalar(
            db_url, "SELECT outcome || ':' || resolution_note FROM alerts WHERE id = %s", cleared
        )
        == "cleared_by_data:moved again"
    )
    by = {(r.grouping, r.key): r for r in rows}
    sos_row = by[("kind", "sos")]
    assert sos_row.alerts == 5
    assert sos_row.acknowledged == 5
    assert sos_row.ack_p50_s == pytest.approx(90)
    assert sos_row.ack_p90_s == pytest.approx(320)  # interpolated between 200 and 400
    assert sos_row.acked_within_60s == pytest.approx(2 / 5)
    assert sos_row.acked_within_180s == pytest.approx(3 / 5)
    assert sos_row.false_alarm_share == pytest.approx(2 / 5)
    assert sos_row.resolve_p50_s == pytest.approx(690)
    total = by[("total", "all")]
    assert total.alerts == 6
    assert total.acked_within_60s == pytest.approx(2 / 6)
    assert by[("village", "v1")].alerts == 3  # h01 twice and h05 (homes cycle v1..v4)
    assert {r.key for r in v1 if r.grouping == "village"} == {"v1"}
    assert [(r.grouping, r.alerts, r.ack_p50_s) for r in october] == [("total", 0, None)]


async def test_rota_gaps_and_edits(pool: AsyncConnectionPool[Any], db_url: str) -> None:
    from alerts.escalate import rota

    now = start_time()
    async with pool.connection() as conn:
        assert await rota.coverage_gaps(conn, now, now + timedelta(hours=24)) == []
        # The town t2's only shift ends in 2 hours: 22 uncovered hours are warned about.
        await conn.execute(
            "UPDATE duty_shifts SET ends_at = %s WHERE region_id = 't2'",
            (now + timedelta(hours=2),),
        )
        gaps = await rota.coverage_gaps(conn, now, now + timedelta(hours=24))
        assert [(g.region_id, g.tier, round(g.hours)) for g in gaps] == [("t2", "town", 22)]
        with pytest.raises(rota.RotaError, match="town_staff"):
            await rota.add_shift(conn, "worker-v1", "t2", now, now + timedelta(hours=8))
        shift = await rota.add_shift(
            conn, "town-t2", "t2", now + timedelta(hours=2), now + timedelta(hours=30)
        )
        assert await rota.coverage_gaps(conn, now, now + timedelta(hours=24)) == []
        ahead = await rota.list_shifts(conn, now, now + timedelta(hours=24), "t2")
        assert [(s.username, s.id == shift) for s in ahead] == [
            ("town-t2", False),
            ("town-t2", True),
        ]
        duty = await recipients.on_duty(conn, "h03", now + timedelta(hours=3))
        assert [name for _, name in duty["town"]] == ["Town staff t2"]
        assert set(duty) == {"village", "town", "district", "operator"}
        assert await rota.remove_shift(conn, shift)
        assert not await rota.remove_shift(conn, shift)


async def test_contacts_read_with_the_alert_reach_the_same_people_as_the_round_query(
    pool: AsyncConnectionPool[Any], db_url: str
) -> None:
    """An emergency's first round is planned from contacts asked in the alert's own batch
    (channels joined in): the same recipients, tiers and skips as the round's own queries."""
    worker = await user_id(db_url, "worker-v1")
    async with pool.connection() as conn:
        # A second channel placed before the first, and a town member with no channel left.
        await conn.execute(
            "INSERT INTO contact_channels (user_id, channel, target, position)"
            " VALUES (%s, 'webhook', 'http://127.0.0.1:9/first', -5)",
            (worker,),
        )
        await conn.execute(
            "DELETE FROM contact_channels WHERE user_id IN"
            " (SELECT id FROM users WHERE username = 'town-t1')"
        )
        await conn.commit()
        now = start_time()
        all_tiers = ("village", "family", "town", "district", "operator")
        read = {}
        for home in ("h01", "h02"):
            async with conn.pipeline():
                contacts = read[home] = await recipients.read_contacts(
                    await recipients.send_contacts_query(conn, home, now)
                )
            for usable in (frozenset({"email", "webhook"}), frozenset({"email"})):
                for k in range(1, len(all_tiers) + 1):
                    tiers = all_tiers[:k]
                    asked = await recipients.recipients(conn, 0, tiers, now, usable, home)
                    given = await recipients.recipients(conn, 0, tiers, now, usable, home, contacts)
                    assert given == asked, (home, tiers, usable)
        await conn.rollback()
    found, _, skipped = await recipients.recipients(
        conn, 0, all_tiers, now, frozenset({"email", "webhook"}), "h01", read["h01"]
    )
    first = {r.user_id: (r.channel, r.target) for r in found}
    assert first[worker] == ("webhook", "http://127.0.0.1:9/first")
    assert await user_id(db_url, "town-t1") in skipped


def _round_trips(trace: str) -> int:
    """Waits for the server in a libpq trace: each turn from sending (F) to receiving (B)."""
    turns, last = 0, ""
    for line in trace.splitlines():
        parts = line.split("\t")
        if len(parts) > 1:
            if parts[1] == "B" and last == "F":
                turns += 1
            last = parts[1]
    return turns


async def test_an_emergency_with_a_reserved_id_is_stored_in_two_round_trips(
    db_url: str, tmp_path: Any
) -> None:
    """The fast path's store: BEGIN with one batch (policy, contacts, alert with evidence),
    then the round and audit rows with pg_notify and COMMIT. Every extra wait on a busy
    database is latency before the console sees the alert (docs/performance.md)."""
    now = start_time()
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        ids = await store.reserve_alert_ids(conn, 2)
        await conn.commit()
        counts = []
        for home, alert_id in (("h01", ids[0]), ("h02", None)):
            path = tmp_path / f"trace-{home}.txt"
            with path.open("w") as out:
                conn.pgconn.trace(out.fileno())
                raised = await store.raise_signal(
                    conn, sos(home, now), now, Routing(ALL_CHANNELS), alert_id
                )
                conn.pgconn.untrace()
            assert raised.created
            counts.append(_round_trips(path.read_text()))
    # With a reserved id the contacts come with the alert's batch; without, the round asks
    # for them (and for the channels) after the alert's answer.
    assert counts == [2, 4]


async def test_a_failed_raise_rolls_back_and_leaves_the_connection_as_it_was(
    db_url: str,
) -> None:
    now = start_time()
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        assert not conn.autocommit
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            await store.raise_signal(
                conn, sos("no-such-home", now), now, Routing(ALL_CHANNELS), 10_000
            )
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert not conn.autocommit
        # Usable at once, and nothing of the failed raise was kept.
        raised = await store.raise_signal(conn, sos("h01", now), now, Routing(ALL_CHANNELS))
        assert raised.created
    assert await scalar(db_url, "SELECT count(*) FROM alerts") == 1
    assert await scalar(db_url, "SELECT count(*) FROM alerts WHERE id = 10000") == 0


async def test_a_cancelled_raise_leaves_a_usable_connection_and_no_half_alert(
    db_url: str,
) -> None:
    now = start_time()
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        for delay in (0.0, 0.001, 0.003, 0.01):
            task = asyncio.create_task(
                store.raise_signal(conn, sos("h01", now), now, Routing(ALL_CHANNELS))
            )
            await asyncio.sleep(delay)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                await conn.rollback()
            assert not conn.autocommit
            # Either the whole alert was stored or none of it.
            cur = await conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE policy IS NOT NULL) FROM alerts"
            )
            total, with_policy = await cur.fetchone() or (0, 0)
            assert total == with_policy
            await conn.rollback()
            await conn.execute("DELETE FROM alerts")
            await conn.commit()


class _Slow:
    """A channel that takes 50 ms per send and notes how many sends were in flight at once."""

    name = "slow"

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.targets: list[str] = []

    async def send(self, target: str, notice: Any) -> None:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.05)
            self.targets.append(target)
        finally:
            self.in_flight -= 1


async def test_dispatcher_sends_a_turn_a_few_at_a_time(
    pool: AsyncConnectionPool[Any], db_url: str
) -> None:
    """With the urgent path in the same process, a turn's sends all at once held up an
    emergency behind them; a step now sends in batches of `send_concurrency`, and sends all."""
    t0 = start_time()
    slow = _Slow()
    d = Dispatcher(
        AlertSettings(send_concurrency=3),
        pool,
        {"email": cast(Channel, slow), "webhook": cast(Channel, slow)},
        AlertMetrics(CollectorRegistry()),
        "http://console.test/console",
        clock=Clock(t0),
    )
    for home in ("h01", "h02", "h03", "h04", "h05", "h06"):
        await raise_(pool, d, sos(home, t0), t0)
    due = int(await scalar(db_url, "SELECT count(*) FROM notifications WHERE status = 'pending'"))
    assert due >= 8
    assert await d.step() == due
    assert len(slow.targets) == due
    assert slow.most == 3
    assert await scalar(db_url, "SELECT count(*) FROM notifications WHERE status = 'sent'") == due
