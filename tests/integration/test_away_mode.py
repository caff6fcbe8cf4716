"""Away / hospital mode and silences, set through the API and obeyed by the alerts' mute
chain: one source of truth (`home_modes`, `silences`), against a real PostgreSQL with the
demo region (e01 lives in h01, village v1; worker-v1 looks after v1, worker-v2 after v2)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from alerts import store
from alerts.model import Category, Raised, Severity, Signal
from alerts.mutes import Muted, default_mutes
from devstack.postgres import EmbeddedPostgres
from devstack.seed import DEMO_PASSWORD
from ingest.migrate import plan
from tests.conftest import ExternalPostgres
from tests.integration.helpers import Pool, assert_error, login, scalar

pytestmark = pytest.mark.integration

AWAY = "/api/v1/elders/e01/away"


def wellbeing(home: str, at: datetime, kind: str = "inactivity") -> Signal:
    """A wellbeing signal (what away mode is for)."""
    return Signal(home, kind, Category.WELLBEING, Severity.WARNING, at, f"{kind} detected")


def technical(home: str, kind: str, at: datetime) -> Signal:
    """A technical signal (low battery, a silent device)."""
    return Signal(home, kind, Category.TECHNICAL, Severity.WARNING, at, f"{kind} detected")


def sos(home: str, at: datetime) -> Signal:
    """An SOS press: an emergency, never muted."""
    return Signal(
        home_id=home,
        kind="sos",
        category=Category.EMERGENCY,
        severity=Severity.CRITICAL,
        event_at=at,
        summary="SOS button pressed",
        device_id=f"{home}-sos",
        boot=1,
        seq=1,
    )


async def raise_(pool: Pool, signal: Signal, now: datetime) -> Muted | Raised:
    """What `SignalWriter.store_once` does with a signal: the default mute chain first (a
    muted signal is recorded in suppressed_signals), then the alert store."""
    chain = default_mutes()
    async with pool.connection() as conn:
        muted = await chain.check(conn, signal, now)
        if muted is not None:
            await chain.record(conn, signal, muted)
            await conn.commit()
            return muted
        await conn.commit()
        return await store.raise_signal(conn, signal, now, timedelta(minutes=5))


async def suppressed(db_url: str) -> list[str]:
    """`home:kind:stage` of every suppressed signal, oldest first."""
    found = await scalar(
        db_url,
        "SELECT string_agg(home_id || ':' || kind || ':' || muted_by, ',' ORDER BY id)"
        " FROM suppressed_signals",
    )
    return [] if found is None else str(found).split(",")


async def open_alerts(db_url: str, home: str) -> list[str]:
    """Kinds of the home's unresolved alerts, sorted."""
    found = await scalar(
        db_url,
        "SELECT string_agg(kind, ',' ORDER BY kind) FROM alerts"
        " WHERE home_id = %s AND status <> 'resolved'",
        home,
    )
    return [] if found is None else str(found).split(",")


async def home_mode(db_url: str, home: str) -> Any:
    """The home's `home_modes` row as (mode, since, until, reason, set_by username)."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute(
            "SELECT m.mode, m.since, m.until, m.reason, u.username FROM home_modes m"
            " LEFT JOIN users u ON u.id = m.set_by WHERE m.home_id = %s",
            (home,),
        )
        return await cur.fetchone()


def iso(at: datetime) -> str:
    """A time as the API takes it."""
    return at.isoformat()


async def test_staff_away_mutes_wellbeing_of_that_home_only_never_an_sos(
    client: httpx.AsyncClient, pool: Pool, db_url: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    headers = await login(client, "worker-v1")
    put = await client.put(
        AWAY,
        json={"away_from": iso(now - timedelta(hours=1)), "reason": "visiting her daughter"},
        headers=headers,
    )
    assert put.status_code == 200, put.text
    body = put.json()
    assert body["away_now"] is True
    assert body["away_mode"] == "away"
    assert body["away_reason"] == "visiting her daughter"
    assert body["away_until"] is None
    assert datetime.fromisoformat(body["away_from"]) == now - timedelta(hours=1)
    assert await home_mode(db_url, "h01") == (
        "away",
        now - timedelta(hours=1),
        None,
        "visiting her daughter",
        "worker-v1",
    )

    muted = await raise_(pool, wellbeing("h01", now), now)
    assert muted == Muted("away_mode", "home in away mode: visiting her daughter")
    assert await suppressed(db_url) == ["h01:inactivity:away_mode"]
    assert await open_alerts(db_url, "h01") == []
    # Another home of the same village is not away: its signal opens an alert.
    other = await raise_(pool, wellbeing("h05", now), now)
    assert isinstance(other, Raised)
    assert other.created
    # An emergency is never muted.
    pressed = await raise_(pool, sos("h01", now), now)
    assert isinstance(pressed, Raised)
    assert pressed.created
    assert await open_alerts(db_url, "h01") == ["sos"]
    assert await suppressed(db_url) == ["h01:inactivity:away_mode"]

    # Reading the file again tells the same (the one source of truth).
    again = await client.get("/api/v1/elders/e01", headers=headers)
    assert again.json()["away_now"] is True
    assert again.json()["away_mode"] == "away"
    # Care visits are not due while away: e01 is not listed as below the target.
    compliance = await client.get("/api/v1/visits/compliance", headers=headers)
    below = {e["elder_id"] for v in compliance.json()["villages"] for e in v["below"]}
    assert "e01" not in below
    assert "e05" in below  # same village, no visits, not away


async def test_delete_away_lets_the_same_signal_open_an_alert(
    client: httpx.AsyncClient, pool: Pool, db_url: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    headers = await login(client, "worker-v1")
    put = await client.put(
        AWAY,
        json={"mode": "hospital", "away_from": iso(now - timedelta(days=1)), "reason": "hip"},
        headers=headers,
    )
    assert put.json()["away_mode"] == "hospital"
    muted = await raise_(pool, wellbeing("h01", now), now)
    assert muted == Muted("away_mode", "home in hospital mode: hip")

    deleted = await client.delete(AWAY, headers=headers)
    assert deleted.status_code == 200, deleted.text
    body = deleted.json()
    assert body["away_now"] is False
    assert (body["away_mode"], body["away_from"], body["away_until"]) == (None, None, None)
    assert body["away_reason"] == ""
    assert await home_mode(db_url, "h01") is None

    raised = await raise_(pool, wellbeing("h01", now), now)
    assert isinstance(raised, Raised)
    assert raised.created
    assert await open_alerts(db_url, "h01") == ["inactivity"]
    assert await suppressed(db_url) == ["h01:inactivity:away_mode"]  # only the first one
    compliance = await client.get("/api/v1/visits/compliance", headers=headers)
    below = {e["elder_id"] for v in compliance.json()["villages"] for e in v["below"]}
    assert "e01" in below


async def test_past_and_future_windows_mute_only_inside_them(
    client: httpx.AsyncClient, pool: Pool, db_url: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    headers = await login(client, "worker-v1")

    # A window that already ended is kept as written but mutes nothing.
    ended = await client.put(
        AWAY,
        json={
            "away_from": iso(now - timedelta(days=3)),
            "away_until": iso(now - timedelta(days=1)),
        },
        headers=headers,
    )
    assert ended.status_code == 200, ended.text
    assert ended.json()["away_now"] is False
    assert ended.json()["away_mode"] == "away"
    first = await raise_(pool, wellbeing("h01", now), now)
    assert isinstance(first, Raised)
    assert first.created

    # A window still to come replaces it: not away now, away inside it, back at its end.
    starts, ends = now + timedelta(days=1), now + timedelta(days=2)
    future = await client.put(
        AWAY,
        json={"away_from": iso(starts), "away_until": iso(ends), "reason": "holiday"},
        headers=headers,
    )
    assert future.status_code == 200, future.text
    assert future.json()["away_now"] is False
    assert await home_mode(db_url, "h01") == ("away", starts, ends, "holiday", "worker-v1")
    second = timedelta(seconds=1)
    probes = [
        (now, False),
        (starts - second, False),
        (starts, True),  # [away_from, away_until): from its first second...
        (starts + timedelta(hours=12), True),
        (ends - second, True),
        (ends, False),  # ... to just before its end
    ]
    for at, muted in probes:
        result = await raise_(pool, wellbeing("h01", at), at)
        if muted:
            assert result == Muted("away_mode", "home in away mode: holiday"), at
        else:
            assert isinstance(result, Raised), at
    assert await suppressed(db_url) == ["h01:inactivity:away_mode"] * 3
    assert await open_alerts(db_url, "h01") == ["inactivity"]  # the first one, repeated


@pytest.mark.parametrize(
    ("user", "status", "code"),
    [
        ("family-h01", 403, "forbidden"),  # reads the file, may not change it
        ("operator", 403, "forbidden"),
        ("worker-v2", 404, "not_found"),  # staff of another village
        ("town-t2", 404, "not_found"),  # staff of another town
    ],
)
async def test_who_may_not_set_away(
    user: str, status: int, code: str, client: httpx.AsyncClient, pool: Pool, db_url: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    staff = await login(client, "worker-v1")
    await client.put(AWAY, json={"away_from": iso(now), "reason": "by v1"}, headers=staff)
    before = await home_mode(db_url, "h01")
    assert before is not None

    headers = await login(client, user)
    body = {"away_from": iso(now - timedelta(hours=1)), "mode": "hospital", "reason": "x"}
    assert_error(await client.put(AWAY, json=body, headers=headers), status, code)
    assert_error(await client.delete(AWAY, headers=headers), status, code)
    assert await home_mode(db_url, "h01") == before  # neither changed nor removed
    if user == "family-h01":  # the family still sees it on the file
        seen = await client.get("/api/v1/elders/e01", headers=headers)
        assert seen.json()["away_reason"] == "by v1"


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"away_from": "2026-01-01T08:00:00"}, "body", "time zone"),
        (
            {"away_from": "2026-01-01T08:00:00Z", "away_until": "2026-01-02T08:00:00"},
            "body",
            "time zone",
        ),
        (
            {"away_from": "2026-01-02T00:00:00Z", "away_until": "2026-01-01T00:00:00Z"},
            "body",
            "away_until must be after away_from",
        ),
        (
            {"away_from": "2026-01-02T00:00:00Z", "away_until": "2026-01-02T00:00:00Z"},
            "body",
            "away_until must be after away_from",
        ),
        ({"away_from": "2026-01-01T08:00:00Z", "mode": "holiday"}, "body.mode", "'away'"),
        ({"reason": "no start"}, "body.away_from", "required"),
        ({"away_from": "2026-01-01T08:00:00Z", "reason": "x" * 201}, "body.reason", "200"),
    ],
)
async def test_invalid_away_bodies_are_422(
    body: dict[str, Any],
    field: str,
    says: str,
    client: httpx.AsyncClient,
    db_url: str,
) -> None:
    headers = await login(client, "worker-v1")
    error = assert_error(await client.put(AWAY, json=body, headers=headers), 422, "invalid_request")
    assert any(d["field"] == field and says in d["message"] for d in error["details"]), error
    assert await home_mode(db_url, "h01") is None


async def test_the_elder_page_shows_the_mode(client: httpx.AsyncClient) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    signed = await client.post("/login", data={"username": "worker-v1", "password": DEMO_PASSWORD})
    assert signed.status_code == 303
    page = await client.get("/console/elders/e01")
    assert "At home (not away)" in page.text
    await client.put(AWAY, json={"away_from": iso(now), "mode": "hospital", "reason": "hip"})
    page = await client.get("/console/elders/e01")
    assert "In hospital (hip)" in page.text
    assert "until further notice" in page.text
    await client.put("/api/v1/me/locale", json={"locale": "zh"})
    page = await client.get("/console/elders/e01")
    assert "住院 (hip)" in page.text
    assert "结束时间未定" in page.text


async def test_a_silence_from_the_api_mutes_its_kinds_only(
    client: httpx.AsyncClient, pool: Pool, db_url: str
) -> None:
    headers = await login(client, "worker-v1")
    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    created = await client.post(
        "/api/v1/silences",
        json={
            "home_id": "h01",
            "kinds": ["low_battery"],
            "ends_at": iso(ends),
            "reason": "replacing batteries",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    silence_id = created.json()["id"]
    assert await scalar(
        db_url, "SELECT u.username FROM silences s JOIN users u ON u.id = s.created_by"
    ) == ("worker-v1")

    now = datetime.now(UTC)
    muted = await raise_(pool, technical("h01", "low_battery", now), now)
    assert muted == Muted(
        "silence", f"silence #{silence_id} until {ends.isoformat()}: replacing batteries"
    )
    for signal in (
        technical("h01", "device_silent", now),  # another kind of the same home
        technical("h05", "low_battery", now),  # the same kind of another home
        wellbeing("h01", now),
        sos("h01", now),
    ):
        raised = await raise_(pool, signal, now)
        assert isinstance(raised, Raised), signal
        assert raised.created
    after = ends + timedelta(seconds=1)
    assert isinstance(await raise_(pool, technical("h01", "low_battery", after), after), Raised)
    assert await suppressed(db_url) == ["h01:low_battery:silence"]


async def test_who_may_not_silence_and_invalid_silences(
    client: httpx.AsyncClient, db_url: str
) -> None:
    ends = iso(datetime.now(UTC) + timedelta(hours=1))
    good = {"home_id": "h01", "ends_at": ends, "reason": "works"}
    family = await login(client, "family-h01")
    resp = await client.post("/api/v1/silences", json=good, headers=family)
    assert_error(resp, 403, "forbidden")
    other = await login(client, "worker-v2")
    resp = await client.post("/api/v1/silences", json=good, headers=other)
    assert_error(resp, 404, "not_found")
    staff = await login(client, "worker-v1")
    for body in (
        {"home_id": "h01", "ends_at": ends},  # no reason
        {"home_id": "h01", "ends_at": ends, "reason": ""},
        {"home_id": "h01", "ends_at": "2030-01-01T00:00:00", "reason": "naive"},
        {"home_id": "h01", "ends_at": iso(datetime.now(UTC) - timedelta(hours=1)), "reason": "p"},
        {"ends_at": ends, "reason": "no target"},
    ):
        resp = await client.post("/api/v1/silences", json=body, headers=staff)
        assert_error(resp, 422, "invalid_request")
    assert await scalar(db_url, "SELECT count(*) FROM silences") == 0


async def test_migration_moves_current_and_future_away_windows_to_home_modes(
    pg_server: EmbeddedPostgres | ExternalPostgres,
) -> None:
    """0012 on a database at 0011 whose elders have away windows of every sort."""
    name = f"away_migration_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    url = urlunsplit(urlsplit(pg_server.url)._replace(path=f"/{name}"))
    steps = {m.version: m for m in plan(timescale=False)}
    now = datetime.now(UTC).replace(microsecond=0)
    day = timedelta(days=1)
    try:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for version in sorted(v for v in steps if v < 12):
                await conn.execute(steps[version].sql.encode())
            await conn.execute(
                "INSERT INTO regions (id, name, tier, parent_id) VALUES"
                " ('d', 'D', 'district', NULL), ('t', 'T', 'town', 'd'), ('v', 'V', 'village', 't')"
            )
            # elder: (away_from, away_until, reason, the home's mode before, if any)
            elders: dict[str, tuple[Any, ...]] = {
                "current": (now - day, None, "hospital stay", None),
                "future": (now + day, now + 2 * day, "holiday", None),
                "ended": (now - 3 * day, now - day, "old trip", None),
                "never": (None, None, "", None),
                "kept": (now - day, None, "from elders", ("hospital", now - 2 * day, None)),
                "stale": (now - day, None, "replaces", ("hospital", now - 3 * day, now - day)),
            }
            for elder, (since, until, reason, mode) in elders.items():
                await conn.execute(
                    "INSERT INTO homes (id, village_id) VALUES (%s, 'v')", (f"h-{elder}",)
                )
                await conn.execute(
                    "INSERT INTO elders (id, home_id, full_name, away_from, away_until,"
                    " away_reason) VALUES (%s, %s, %s, %s, %s, %s)",
                    (elder, f"h-{elder}", elder, since, until, reason),
                )
                if mode is not None:
                    await conn.execute(
                        "INSERT INTO home_modes (home_id, mode, since, until, reason)"
                        " VALUES (%s, %s, %s, %s, 'set before')",
                        (f"h-{elder}", *mode),
                    )
            async with conn.transaction():
                await conn.execute(steps[12].sql.encode())

            cur = await conn.execute(
                "SELECT home_id, mode, since, until, reason FROM home_modes ORDER BY home_id"
            )
            assert await cur.fetchall() == [
                ("h-current", "away", now - day, None, "hospital stay"),
                ("h-future", "away", now + day, now + 2 * day, "holiday"),
                ("h-kept", "hospital", now - 2 * day, None, "set before"),
                ("h-stale", "away", now - day, None, "replaces"),
            ]
            cur = await conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'elders' AND column_name LIKE 'away%%'"
            )
            assert await cur.fetchall() == []
            with pytest.raises(psycopg.errors.CheckViolation):
                await conn.execute(
                    "UPDATE home_modes SET until = since WHERE home_id = 'h-current'"
                )
    finally:
        with psycopg.connect(pg_server.url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
