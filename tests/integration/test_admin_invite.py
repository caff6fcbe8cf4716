"""Family invitations on a real PostgreSQL with the demo region: a link for one elder, used
once to choose a username and password; the family member then sees that elder only. An
expired, used or forged link is refused."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from tests.integration.helpers import assert_error, login

pytestmark = pytest.mark.integration

INVITE: dict[str, Any] = {
    "elder_id": "e02",
    "display_name": "Chen Hong",
    "relation": "daughter",
    "phone": "139 0000 7777",
    "email": "hong@example.org",
    "locale": "zh",
    "holds_key": True,
}


async def test_invitation_once_then_only_that_elder(client: httpx.AsyncClient, db_url: str) -> None:
    district = await login(client, "district")
    r = await client.post("/api/v1/admin/invitations", json=INVITE, headers=district)
    assert r.status_code == 201, r.text
    invitation = r.json()
    token = invitation["token"]
    assert invitation["url"].endswith(f"/invite/{token}")
    r = await client.get(f"/api/v1/invitations/{token}")
    assert r.status_code == 200
    assert (r.json()["kind"], r.json()["relation"]) == ("family", "daughter")

    r = await client.post(
        f"/api/v1/invitations/{token}/accept",
        json={"username": "Bad Name", "password": "x"},
    )
    error = assert_error(r, 422, "invalid_request")
    assert {d["field"] for d in error["details"]} == {"body.username", "body.password"}
    r = await client.post(
        f"/api/v1/invitations/{token}/accept",
        json={"username": "chen-hong", "password": "peach-blossom-7"},
    )
    assert r.status_code == 201, r.text
    assert r.json() == {
        "user_id": r.json()["user_id"],
        "username": "chen-hong",
        "role": "family",
        "elder_id": "e02",
    }
    # Used once: a second use is refused, and the first account is untouched.
    r = await client.post(
        f"/api/v1/invitations/{token}/accept",
        json={"username": "someone-else", "password": "another-pass-1"},
    )
    assert_error(r, 410, "gone")
    assert_error(await client.get(f"/api/v1/invitations/{token}"), 410, "gone")

    r = await client.post(
        "/api/v1/auth/login", json={"username": "chen-hong", "password": "peach-blossom-7"}
    )
    assert r.status_code == 200, r.text
    client.cookies.clear()
    family = {"Authorization": f"Bearer {r.json()['token']}"}
    listed = await client.get("/api/v1/elders", headers=family)
    assert [e["elder_id"] for e in listed.json()["items"]] == ["e02"]
    assert (await client.get("/api/v1/elders/e02", headers=family)).status_code == 200
    assert_error(await client.get("/api/v1/elders/e03", headers=family), 404, "not_found")
    homes = await client.get("/api/v1/homes", headers=family)
    assert [h["id"] for h in homes.json()["items"]] == ["h02"]
    # The family member administers nothing.
    r = await client.post(
        "/api/v1/admin/invitations", json={**INVITE, "elder_id": "e02"}, headers=family
    )
    assert_error(r, 403, "forbidden")

    with psycopg.connect(db_url) as conn:
        link = conn.execute(
            "SELECT l.relation, l.first_contact, l.holds_key FROM family_links l"
            " JOIN users u ON u.id = l.user_id WHERE u.username = 'chen-hong'"
        ).fetchall()
        channels = conn.execute(
            "SELECT c.channel, c.target FROM contact_channels c JOIN users u ON u.id = c.user_id"
            " WHERE u.username = 'chen-hong' ORDER BY c.position"
        ).fetchall()
        audit = conn.execute(
            "SELECT action FROM admin_audit WHERE entity = 'invitation' AND entity_id = %s"
            " ORDER BY id",
            (str(invitation["id"]),),
        ).fetchall()
        stored = conn.execute(
            "SELECT count(*) FROM admin_audit WHERE after::text LIKE %s",
            (f"%{token.rsplit('.', 1)[1]}%",),
        ).fetchone()
    assert link == [("daughter", True, True)]
    assert channels == [("sms", "+8613900007777"), ("email", "hong@example.org")]
    assert audit == [("create",), ("accept",)]
    assert stored == (0,)  # the link is never written down


async def test_expired_and_forged_links_are_refused(client: httpx.AsyncClient, db_url: str) -> None:
    worker = await login(client, "worker-v1")
    # A village worker invites for an elder of their village, not of another.
    r = await client.post(
        "/api/v1/admin/invitations", json={**INVITE, "elder_id": "e02"}, headers=worker
    )
    assert_error(r, 403, "forbidden")
    r = await client.post(
        "/api/v1/admin/invitations",
        json={**INVITE, "elder_id": "e01", "expires_hours": 1},
        headers=worker,
    )
    assert r.status_code == 201, r.text
    token, invitation_id = r.json()["token"], r.json()["id"]
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE invitations SET created_at = now() - interval '2 hours',"
            " expires_at = now() - interval '1 second' WHERE id = %s",
            (invitation_id,),
        )
    body = {"username": "late-comer", "password": "peach-blossom-7"}
    error = assert_error(
        await client.post(f"/api/v1/invitations/{token}/accept", json=body), 410, "gone"
    )
    assert "expired" in error["message"]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert_error(await client.post(f"/api/v1/invitations/{forged}/accept", json=body), 404,
                 "not_found")  # fmt: skip
    other_id = token.replace(f"{invitation_id}.", f"{invitation_id + 1}.", 1)
    assert_error(await client.get(f"/api/v1/invitations/{other_id}"), 404, "not_found")
    assert_error(await client.get("/api/v1/invitations/garbage"), 404, "not_found")
    with psycopg.connect(db_url) as conn:
        made = conn.execute("SELECT count(*) FROM users WHERE username = 'late-comer'").fetchone()
    assert made == (0,)
