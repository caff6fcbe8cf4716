"""The administration API against a real PostgreSQL with the demo region (d1; towns t1, t2;
villages v1, v2 in t1 and v3, v4 in t2): created (201), changed (200), refused with the
field named (422), outside the caller's region (403), and the audit row of each change."""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.helpers import assert_error, login

pytestmark = pytest.mark.integration


def audit_rows(db_url: str, entity: str, entity_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT actor, action, before, after FROM admin_audit"
            " WHERE entity = %s AND entity_id = %s ORDER BY id",
            (entity, entity_id),
        ).fetchall()


def fields(response: httpx.Response) -> set[str]:
    error = assert_error(response, 422, "invalid_request")
    return {d["field"] for d in error["details"]}


async def test_regions(client: httpx.AsyncClient, db_url: str) -> None:
    district = await login(client, "district")
    town = await login(client, "town-t1")
    worker = await login(client, "worker-v1")
    operator = await login(client, "operator")
    family = await login(client, "family-h01")

    r = await client.post(
        "/api/v1/admin/regions",
        json={"id": "t9", "name": "North Town", "tier": "town", "parent_id": "d1"},
        headers=district,
    )
    assert r.status_code == 201, r.text
    assert r.json() == {"id": "t9", "name": "North Town", "tier": "town", "parent_id": "d1"}
    [(actor, action, before, after)] = audit_rows(db_url, "region", "t9")
    assert (actor, action, before, after["name"]) == ("district", "create", None, "North Town")

    # The town's staff add a village to their town, not to another one.
    r = await client.post(
        "/api/v1/admin/regions",
        json={"id": "v9", "name": "Reed Village", "tier": "village", "parent_id": "t1"},
        headers=town,
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/admin/regions",
        json={"id": "v10", "name": "X", "tier": "village", "parent_id": "t2"},
        headers=town,
    )
    assert_error(r, 403, "forbidden")
    for who in (worker, family):
        r = await client.post(
            "/api/v1/admin/regions",
            json={"id": "v11", "name": "X", "tier": "village", "parent_id": "t1"},
            headers=who,
        )
        assert_error(r, 403, "forbidden")
    # Field problems name the field.
    r = await client.post(
        "/api/v1/admin/regions",
        json={"id": "v12", "name": "X", "tier": "village", "parent_id": "d1"},
        headers=district,
    )
    assert fields(r) == {"body.parent_id"}
    r = await client.post(
        "/api/v1/admin/regions",
        json={"id": "Bad Id", "name": "", "tier": "hamlet"},
        headers=district,
    )
    assert fields(r) == {"body.id", "body.name", "body.tier"}
    # A district: only operators (and the command line).
    r = await client.post(
        "/api/v1/admin/regions", json={"id": "d2", "name": "Hill District", "tier": "district"},
        headers=district,
    )  # fmt: skip
    assert_error(r, 403, "forbidden")
    r = await client.post(
        "/api/v1/admin/regions", json={"id": "d2", "name": "Hill District", "tier": "district"},
        headers=operator,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/admin/regions", json={"id": "d2", "name": "Again", "tier": "district"},
        headers=operator,
    )  # fmt: skip
    assert_error(r, 409, "conflict")

    r = await client.patch("/api/v1/admin/regions/v9", json={"name": "Reed"}, headers=town)
    assert r.status_code == 200
    assert r.json()["name"] == "Reed"
    r = await client.patch("/api/v1/admin/regions/v3", json={"name": "Mine"}, headers=town)
    assert_error(r, 403, "forbidden")
    # Close: only when empty.
    r = await client.delete("/api/v1/admin/regions/v1", headers=district)
    error = assert_error(r, 409, "conflict")
    assert "homes" in error["message"]
    assert "accounts" in error["message"]
    r = await client.delete("/api/v1/admin/regions/v9", headers=town)
    assert r.status_code == 200, r.text
    assert [a for _, a, _, _ in audit_rows(db_url, "region", "v9")] == [
        "create",
        "rename",
        "close",
    ]
    r = await client.get("/api/v1/regions/v9", headers=district)
    assert r.status_code == 404


NEW_ELDER: dict[str, Any] = {
    "home": {"village_id": "v1", "address": "8 Willow Lane", "lat": 30.27, "lon": 120.15},
    "full_name": "Sun Meilan",
    "born": "1941-05-02",
    "sex": "female",
    "phone": "138 0013 8000",
    "language": "zh",
    "conditions": ["hypertension"],
    "thresholds": {"temperature_min_c": 18, "heart_rate_high": 110},
    "contacts": [{"name": "Sun Wei", "relation": "son", "phone": "13900001111", "holds_key": True}],
    "external_id": "V1-0042",
}


async def test_elders(client: httpx.AsyncClient, db_url: str) -> None:
    town = await login(client, "town-t1")
    worker = await login(client, "worker-v1")
    worker2 = await login(client, "worker-v2")

    r = await client.post("/api/v1/admin/elders", json=NEW_ELDER, headers=town)
    assert r.status_code == 201, r.text
    elder = r.json()
    assert elder["village_id"] == "v1"
    assert elder["phone"] == "+8613800138000"
    assert elder["thresholds"] == {"temperature_min_c": 18.0, "heart_rate_high": 110.0}
    assert elder["contacts"][0]["phone"] == "+8613900001111"
    assert elder["contacts"][0]["holds_key"] is True
    with psycopg.connect(db_url) as conn:
        tz, lat = conn.execute(
            "SELECT timezone, lat FROM homes WHERE id = %s", (elder["home_id"],)
        ).fetchone() or (None, None)
    assert (tz, lat) == ("Asia/Shanghai", 30.27)
    assert [a for _, a, _, _ in audit_rows(db_url, "home", elder["home_id"])] == ["create"]
    [(_, _, _, after)] = audit_rows(db_url, "elder", elder["id"])
    assert after["full_name"] == "Sun Meilan"

    # Every bad field named at once.
    bad = {
        **NEW_ELDER,
        "external_id": "V1-0043",
        "born": "2999-01-01",
        "phone": "call me",
        "thresholds": {"temperature_min_c": 18, "pulse_max": 3},
        "contacts": [{"name": "", "phone": "12"}],
        "home": {"village_id": "v1", "address": "1 Lane", "lat": 95},
    }
    assert fields(await client.post("/api/v1/admin/elders", json=bad, headers=town)) == {
        "body.born",
        "body.phone",
        "body.thresholds.pulse_max",
        "body.contacts.0.name",
        "body.contacts.0.phone",
        "body.home.lat",
    }
    r = await client.post(
        "/api/v1/admin/elders",
        json={**NEW_ELDER, "external_id": "x", "thresholds": {"heart_rate_low": 90,
                                                              "heart_rate_high": 80}},
        headers=town,
    )  # fmt: skip
    assert fields(r) == {"body.thresholds"}
    # Outside the town: 403; a village worker does not enrol.
    other = {**NEW_ELDER, "external_id": "x2", "home": {"village_id": "v3", "address": "x"}}
    assert_error(await client.post("/api/v1/admin/elders", json=other, headers=town), 403,
                 "forbidden")  # fmt: skip
    r = await client.post(
        "/api/v1/admin/elders", json={**NEW_ELDER, "external_id": "x3"}, headers=worker
    )
    assert_error(r, 403, "forbidden")
    # An existing home that already has an elder: 409.
    r = await client.post(
        "/api/v1/admin/elders",
        json={"home_id": "h01", "full_name": "Someone Else"},
        headers=town,
    )
    assert_error(r, 409, "conflict")

    # The village worker keeps the file of their village up to date.
    r = await client.patch(
        f"/api/v1/admin/elders/{elder['id']}",
        json={"notes": "Key under the flower pot", "thresholds": {"spo2_low": 88}},
        headers=worker,
    )
    assert r.status_code == 200, r.text
    assert r.json()["thresholds"] == {"spo2_low": 88.0}
    r = await client.patch(
        f"/api/v1/admin/elders/{elder['id']}", json={"notes": "x"}, headers=worker2
    )
    assert_error(r, 403, "forbidden")
    r = await client.patch("/api/v1/admin/elders/e01", json={"sex": "other"}, headers=worker)
    assert fields(r) == {"body.sex"}
    r = await client.post(
        f"/api/v1/admin/elders/{elder['id']}/contacts",
        json={"name": "Neighbour Li", "relation": "neighbour", "phone": "0571-88880000"},
        headers=worker,
    )
    assert r.status_code == 201, r.text
    assert r.json()["phone"] == "+8657188880000"
    contact_id = r.json()["id"]
    r = await client.delete(
        f"/api/v1/admin/elders/{elder['id']}/contacts/{contact_id}", headers=worker
    )
    assert r.status_code == 200
    actions = [a for _, a, _, _ in audit_rows(db_url, "contact", str(contact_id))]
    assert actions == ["create", "delete"]
    _, action, before, after = audit_rows(db_url, "elder", elder["id"])[-1]
    assert action == "update"
    assert before["notes"] == ""
    assert after["notes"] == "Key under the flower pot"

    # Closing: the worker may not; the town may, once.
    close = {"reason": "moved to her daughter's"}
    r = await client.post("/api/v1/admin/elders/e01/close", json=close, headers=worker)
    assert_error(r, 403, "forbidden")
    r = await client.post("/api/v1/admin/elders/e01/close", json={"reason": " "}, headers=town)
    assert fields(r) == {"body.reason"}
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO device_credentials (device_id, username, password_hash)"
            " VALUES ('h01-sos', 'h01-sos', 'x')"
        )
    r = await client.post("/api/v1/admin/elders/e01/close", json=close, headers=town)
    assert r.status_code == 200, r.text
    assert r.json()["closed_reason"] == "moved to her daughter's"
    with psycopg.connect(db_url) as conn:
        mode = conn.execute("SELECT mode, until FROM home_modes WHERE home_id = 'h01'").fetchone()
        revoked = conn.execute(
            "SELECT revoked_at IS NOT NULL FROM device_credentials WHERE device_id = 'h01-sos'"
        ).fetchone()
        kept = conn.execute("SELECT count(*) FROM elders WHERE id = 'e01'").fetchone()
        active = conn.execute(
            "SELECT count(*) FROM devices WHERE home_id = 'h01' AND retired_at IS NULL"
        ).fetchone()
        events = conn.execute(
            "SELECT count(*) FROM device_events WHERE action = 'retire' AND device_id LIKE 'h01-%'"
        ).fetchone()
    assert mode == ("away", None)
    assert revoked == (True,)
    assert kept == (1,)
    assert active == (0,)
    assert events is not None
    assert events[0] >= 1
    _, action, _, after = audit_rows(db_url, "elder", "e01")[-1]
    assert action == "close"
    assert "h01-sos" in after["retired_devices"]
    r = await client.post("/api/v1/admin/elders/e01/close", json=close, headers=town)
    assert_error(r, 409, "conflict")
    listed = await client.get("/api/v1/admin/elders?village=v1", headers=worker)
    assert listed.status_code == 200
    closed = {e["id"]: e["closed_at"] is not None for e in listed.json()["items"]}
    assert closed["e01"] is True
    assert closed[elder["id"]] is False
    r = await client.get("/api/v1/admin/elders?village=v3", headers=worker)
    assert_error(r, 403, "forbidden")


async def test_homes(client: httpx.AsyncClient, db_url: str) -> None:
    operator = await login(client, "operator")
    town2 = await login(client, "town-t2")
    r = await client.post(
        "/api/v1/admin/homes",
        json={"id": "h-new", "village_id": "v3", "address": "3 Lotus Road",
              "timezone": "Asia/Urumqi"},
        headers=operator,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["timezone"] == "Asia/Urumqi"
    r = await client.post(
        "/api/v1/admin/homes",
        json={"village_id": "t2", "address": "x", "timezone": "Mars/Base", "lon": 1},
        headers=town2,
    )
    assert fields(r) == {"body.timezone", "body.lon"}  # both lat and lon, or neither
    r = await client.post(
        "/api/v1/admin/homes", json={"village_id": "t2", "address": "x"}, headers=town2
    )
    assert fields(r) == {"body.village_id"}
    r = await client.patch(
        "/api/v1/admin/homes/h-new", json={"lat": 41.1, "lon": 80.2}, headers=town2
    )
    assert r.status_code == 200
    assert (r.json()["lat"], r.json()["lon"]) == (41.1, 80.2)
    r = await client.patch("/api/v1/admin/homes/h01", json={"address": "x"}, headers=town2)
    assert_error(r, 403, "forbidden")
    # The operator changes places, never people.
    r = await client.post("/api/v1/admin/elders", json=NEW_ELDER, headers=operator)
    assert_error(r, 403, "forbidden")
    assert [a for _, a, _, _ in audit_rows(db_url, "home", "h-new")] == ["create", "update"]


async def test_staff_accounts(client: httpx.AsyncClient, db_url: str) -> None:
    district = await login(client, "district")
    town = await login(client, "town-t1")
    body = {
        "username": "worker-li",
        "display_name": "Li Na",
        "role": "village_worker",
        "region_id": "v2",
        "phone": "13700001234",
        "locale": "zh",
    }
    r = await client.post("/api/v1/admin/staff", json=body, headers=town)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["account"]["channels"] == ["sms", "console"]
    assert created["account"]["password_set"] is False
    assert created["invitation"]["url"].startswith("http://127.0.0.1:8000/invite/")
    r = await client.post("/api/v1/admin/staff", json=body, headers=district)
    assert fields(r) == {"body.username"}
    r = await client.post(
        "/api/v1/admin/staff", json={**body, "username": "x-1", "region_id": "t1"}, headers=town
    )
    assert fields(r) == {"body.region_id"}
    r = await client.post(
        "/api/v1/admin/staff", json={**body, "username": "x-2", "region_id": "v3"}, headers=town
    )
    assert_error(r, 403, "forbidden")
    r = await client.post(
        "/api/v1/admin/staff",
        json={**body, "username": "x-3", "role": "operator", "region_id": None},
        headers=district,
    )
    assert_error(r, 403, "forbidden")
    r = await client.post(
        "/api/v1/admin/staff", json={**body, "username": "x-4", "phone": "", "channels": ["sms"]},
        headers=town,
    )  # fmt: skip
    assert fields(r) == {"body.channels"}

    # The link sets the password once; then the worker signs in.
    token = created["invitation"]["token"]
    r = await client.get(f"/api/v1/invitations/{token}")
    assert r.status_code == 200
    assert r.json()["username"] == "worker-li"
    r = await client.post(f"/api/v1/invitations/{token}/accept", json={"password": "short"})
    assert fields(r) == {"body.password"}
    r = await client.post(
        f"/api/v1/invitations/{token}/accept", json={"password": "willow-tree-42"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["role"] == "village_worker"
    r = await client.post(
        "/api/v1/auth/login", json={"username": "worker-li", "password": "willow-tree-42"}
    )
    assert r.status_code == 200
    client.cookies.clear()

    r = await client.patch(
        "/api/v1/admin/staff/worker-li", json={"phone": "+86 137 0000 9999"}, headers=town
    )
    assert r.status_code == 200
    with psycopg.connect(db_url) as conn:
        sms = conn.execute(
            "SELECT c.target FROM contact_channels c JOIN users u ON u.id = c.user_id"
            " WHERE u.username = 'worker-li' AND c.channel = 'sms'"
        ).fetchone()
    assert sms == ("+8613700009999",)
    listed = await client.get("/api/v1/admin/staff", headers=town)
    names = {a["username"] for a in listed.json()["items"]}
    assert {"worker-li", "worker-v1", "town-t1"} <= names
    assert not names & {"worker-v3", "town-t2", "district", "family-h01"}

    r = await client.post("/api/v1/admin/accounts/worker-li/close", headers=town)
    assert r.status_code == 200, r.text
    r = await client.post(
        "/api/v1/auth/login", json={"username": "worker-li", "password": "willow-tree-42"}
    )
    assert r.status_code == 401
    with psycopg.connect(db_url) as conn:
        uid = conn.execute("SELECT id FROM users WHERE username = 'worker-li'").fetchone()
        assert uid is not None
        text = json.dumps(
            conn.execute(
                "SELECT json_agg(a) FROM admin_audit a WHERE entity = 'user' AND entity_id = %s",
                (str(uid[0]),),
            ).fetchone()
        )
    assert "$argon2" not in text
    assert "no-password" not in text
    assert token not in text
    actions = [a for _, a, _, _ in audit_rows(db_url, "user", str(uid[0]))]
    assert actions == ["create", "update", "close"]
