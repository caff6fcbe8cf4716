"""The authorisation matrix: every role against every endpoint, on objects of home h01
(village v1, town t1) and on every list, against a real PostgreSQL with the demo region.

Expected answers come from this file's own description of the demo region (which village
each home is in, which region each user has), not from the code under test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.helpers import Pool, assert_error, login, raise_sos

pytestmark = pytest.mark.integration

HOMES = [f"h{i:02d}" for i in range(1, 9)]
VILLAGE_OF = {h: f"v{(i % 4) + 1}" for i, h in enumerate(HOMES)}
TOWN_OF = {"v1": "t1", "v2": "t1", "v3": "t2", "v4": "t2"}
REGION_OF_USER = {
    "district": "d1",
    "town-t1": "t1",
    "town-t2": "t2",
    "worker-v1": "v1",
    "worker-v2": "v2",
}
USERS = (*REGION_OF_USER, "family-h01", "family-h02", "operator")


def region_ids(user: str) -> set[str]:
    """Regions a staff user's region contains (itself included)."""
    region = REGION_OF_USER[user]
    villages = {v for v in TOWN_OF if region in (v, TOWN_OF[v], "d1")}
    towns = {TOWN_OF[v] for v in villages}
    if region.startswith("v"):
        return {region}
    if region.startswith("t"):
        return {region} | villages
    return {"d1"} | towns | villages


def visible_homes(user: str) -> set[str]:
    """Homes `user` looks after (the operator: every home, for devices only)."""
    if user == "operator":
        return set(HOMES)
    if user.startswith("family-"):
        return {user.removeprefix("family-")}
    regions = region_ids(user)
    return {h for h in HOMES if VILLAGE_OF[h] in regions}


def elder_of(home: str) -> str:
    return "e" + home.removeprefix("h")


SEES_H01 = {u for u in USERS if u != "operator" and "h01" in visible_homes(u)}
STAFF = set(REGION_OF_USER)


def expected(user: str, area: str) -> set[int]:
    """The statuses `user` may get from an endpoint of `area` on h01's objects."""
    sees = user in SEES_H01
    if area == "health":
        return {403} if user == "operator" else {200} if sees else {404}
    if area in ("care", "edit"):
        return {403} if user not in STAFF else {200, 201} if sees else {404}
    if area in ("homes", "devices"):
        return {200} if sees or user == "operator" else {404}
    if area == "regions":
        if user.startswith("family-"):
            return {403}
        return {200} if sees or user == "operator" else {404}
    if area == "alert_read":
        return {200} if sees else {404}
    if area == "alert_write":
        return {403} if user not in STAFF else {200, 409} if sees else {404}
    raise AssertionError(area)


# (method, path, json body, area, counts as a read of e01's health data)
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, str, bool]] = [
    ("GET", "/api/v1/regions/v1", None, "regions", False),
    ("GET", "/api/v1/homes/h01", None, "homes", False),
    ("GET", "/api/v1/devices/h01-sos", None, "devices", False),
    ("GET", "/api/v1/elders/e01", None, "health", True),
    ("GET", "/api/v1/elders/e01/readings", None, "health", True),
    ("GET", "/api/v1/elders/e01/readings?bucket_s=3600", None, "health", True),
    ("GET", "/api/v1/elders/e01/status", None, "health", True),
    ("GET", "/api/v1/elders/e01/timeline.svg", None, "health", True),
    ("GET", "/api/v1/elders/e01/days/2026-01-01", None, "health", True),
    ("GET", "/api/v1/elders/e01/alerts", None, "health", True),
    ("GET", "/api/v1/elders/e01/visits", None, "health", True),
    ("GET", "/api/v1/elders/e01/audit", None, "edit", False),
    ("PATCH", "/api/v1/elders/e01", {"notes": "uses a walking frame"}, "edit", True),
    (
        "PUT",
        "/api/v1/elders/e01/away",
        {"away_from": "2026-01-01T00:00:00Z", "away_until": "2026-01-02T00:00:00Z"},
        "edit",
        True,
    ),
    ("DELETE", "/api/v1/elders/e01/away", None, "edit", True),
    ("POST", "/api/v1/elders/e01/visits", {"note": "tea and a chat"}, "care", False),
    ("GET", "/api/v1/alerts/{alert}", None, "alert_read", False),
    ("POST", "/api/v1/alerts/{alert}/ack", None, "alert_write", False),
    ("POST", "/api/v1/alerts/{alert}/resolve", {"outcome": "false_alarm"}, "alert_write", False),
]


async def _elder_name(pool: Pool, elder: str) -> str:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT full_name FROM elders WHERE id = %s", (elder,))
        row = await cur.fetchone()
    assert row is not None
    return str(row[0])


async def _audit_count(pool: Pool, user: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM health_reads r JOIN users u ON u.id = r.user_id"
            " WHERE u.username = %s AND r.elder_id = 'e01'",
            (user,),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("user", USERS)
async def test_every_endpoint_on_h01_objects(
    user: str, client: httpx.AsyncClient, pool: Pool
) -> None:
    alert_id = await raise_sos(pool, "h01")
    name = await _elder_name(pool, "e01")
    headers = await login(client, user)
    reads = 0
    for method, path, body, area, health_read in ENDPOINTS:
        url = path.format(alert=alert_id)
        response = await client.request(method, url, json=body, headers=headers)
        allowed = expected(user, area)
        assert response.status_code in allowed, f"{user} {method} {url}: {response.text}"
        if response.status_code >= 400:
            code = {403: "forbidden", 404: "not_found", 409: "not_open"}[response.status_code]
            assert_error(response, response.status_code, code)
            assert name not in response.text
        elif health_read:
            reads += 1
        if user == "operator":
            assert name not in response.text, f"operator saw the elder's name at {url}"
    # Every successful read of e01's health data left one audit row; refusals left none.
    assert await _audit_count(pool, user) == reads
    assert (reads > 0) == (user in SEES_H01)


@pytest.mark.parametrize("user", USERS)
async def test_every_list_holds_exactly_the_callers_objects(
    user: str, client: httpx.AsyncClient, pool: Pool
) -> None:
    now = datetime.now(UTC)
    for home in HOMES:
        await raise_sos(pool, home)
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO care_visits (elder_id, user_id, visited_at, source)"
            " SELECT e.id, NULL, %s, 'console' FROM elders e",
            (now - timedelta(hours=1),),
        )
    headers = await login(client, user)
    mine = visible_homes(user)

    async def get(url: str) -> httpx.Response:
        return await client.get(url, headers=headers)

    homes = await get("/api/v1/homes?limit=500")
    assert homes.status_code == 200
    assert {h["id"] for h in homes.json()["items"]} == mine
    assert homes.json()["total"] == len(mine)

    devices = await get("/api/v1/devices?limit=500")
    assert devices.status_code == 200
    assert {d["home_id"] for d in devices.json()["items"]} == mine

    alerts = await get("/api/v1/alerts?limit=500")
    assert alerts.status_code == 200
    sos_homes = set() if user == "operator" else mine  # the operator sees technical only
    assert {a["home_id"] for a in alerts.json()["items"]} == sos_homes

    elders = await get("/api/v1/elders?limit=500")
    regions = await get("/api/v1/regions")
    visits = await get("/api/v1/visits?limit=500")
    compliance = await get("/api/v1/visits/compliance?all_elders=true")
    rota = await get("/api/v1/rota")
    if user == "operator":
        assert_error(elders, 403, "forbidden")
        assert regions.status_code == 200
        assert {"d1", "t1", "t2", "v1", "v2", "v3", "v4"} == _flatten(regions.json()["items"])
    else:
        assert elders.status_code == 200
        assert {e["elder_id"] for e in elders.json()["items"]} == {elder_of(h) for h in mine}
    if user.startswith("family-"):
        assert_error(regions, 403, "forbidden")
    if user in STAFF:
        assert _flatten(regions.json()["items"]) == region_ids(user)
        assert {v["elder_id"] for v in visits.json()["items"]} == {elder_of(h) for h in mine}
        listed = {e["elder_id"] for v in compliance.json()["villages"] for e in v["below"]}
        assert listed == {elder_of(h) for h in mine}
        assert rota.status_code == 200
        regions_up = region_ids(user) | _ancestors(REGION_OF_USER[user])
        shifts = {s["region_id"] for s in rota.json()["items"]}
        assert shifts
        assert shifts <= regions_up
    else:
        for refused in (visits, compliance, rota):
            assert_error(refused, 403, "forbidden")


def _flatten(nodes: list[dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for n in nodes:
        out.add(n["id"])
        out |= _flatten(n["children"])
    return out


def _ancestors(region: str) -> set[str]:
    if region.startswith("v"):
        return {TOWN_OF[region], "d1"}
    if region.startswith("t"):
        return {"d1"}
    return set()


async def test_family_cannot_reach_another_elders_objects(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    """family-h01 tries every object of e02/h02 by id, over the API and the pages."""
    alert_id = await raise_sos(pool, "h02")
    other = await _elder_name(pool, "e02")
    headers = await login(client, "family-h01")
    for method, path, body, _, _ in ENDPOINTS:
        url = path.replace("e01", "e02").replace("h01", "h02").format(alert=alert_id)
        response = await client.request(method, url, json=body, headers=headers)
        assert response.status_code in (403, 404), f"{method} {url}: {response.text}"
        assert other not in response.text
    await client.post("/login", data={"username": "family-h01", "password": "demo-password"})
    for page in ("/family/e02", "/console/elders/e02"):
        response = await client.get(page)
        assert response.status_code == 404
        assert other not in response.text
    async with await psycopg.AsyncConnection.connect(str(pool.conninfo)) as conn:
        cur = await conn.execute("SELECT count(*) FROM health_reads WHERE elder_id = 'e02'")
        row = await cur.fetchone()
    assert row is not None
    assert row[0] == 0
