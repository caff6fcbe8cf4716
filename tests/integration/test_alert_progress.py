"""Between acknowledging and resolving: "on my way" and "arrived", through the API, on a real
PostgreSQL with the demo region."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.helpers import Pool, assert_error, login, raise_sos

pytestmark = pytest.mark.integration


async def test_on_my_way_then_arrived_are_recorded_once_and_shown(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    alert_id = await raise_sos(pool, "h01")
    family = await login(client, "family-h01")
    refused = await client.post(f"/api/v1/alerts/{alert_id}/en-route", headers=family)
    assert_error(refused, 403, "forbidden")

    worker = await login(client, "worker-v1")
    going = await client.post(f"/api/v1/alerts/{alert_id}/en-route", headers=worker)
    assert going.status_code == 200, going.text
    body = going.json()
    # Who is on the way has taken the alert: an open alert is acknowledged first.
    assert body["status"] == "acknowledged"
    assert body["acknowledged_by"] == "Village worker v1"
    assert body["en_route_by"] == "Village worker v1"
    assert body["en_route_at"] is not None
    assert body["arrived_at"] is None
    first = body["en_route_at"]

    town = await login(client, "town-t1")
    again = await client.post(f"/api/v1/alerts/{alert_id}/en-route", headers=town)
    assert again.status_code == 200
    assert again.json()["en_route_at"] == first
    assert again.json()["en_route_by"] == "Village worker v1"

    there = await client.post(f"/api/v1/alerts/{alert_id}/arrived", headers=worker)
    assert there.status_code == 200
    assert there.json()["arrived_by"] == "Village worker v1"

    seen = (await client.get(f"/api/v1/alerts/{alert_id}", headers=family)).json()
    assert seen["en_route_at"] == first
    assert seen["arrived_at"] is not None
    actions = [e["action"] for e in seen["events"]]
    assert actions.count("acknowledged") == 1
    assert actions.count("en_route") == 1
    assert actions.count("arrived") == 1
    assert actions.index("acknowledged") < actions.index("en_route") < actions.index("arrived")

    done = await client.post(
        f"/api/v1/alerts/{alert_id}/resolve", json={"outcome": "visited_fine"}, headers=worker
    )
    assert done.status_code == 200
    late = await client.post(f"/api/v1/alerts/{alert_id}/arrived", headers=worker)
    assert_error(late, 409, "resolved")
    missing = await client.post("/api/v1/alerts/999999/arrived", headers=worker)
    assert_error(missing, 404, "not_found")


async def test_escalation_state_names_who_was_told_and_what_comes_next(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    alert_id = await raise_sos(pool, "h01")
    other = await raise_sos(pool, "h03")  # another village: not the worker's to see
    async with pool.connection() as conn:
        # The first delivery to the worker failed once, then went through.
        await conn.execute(
            "UPDATE notifications n SET status = 'sent', sent_at = now(), attempts = 2,"
            " last_error = 'HTTP 503' FROM users u"
            " WHERE u.id = n.user_id AND u.username = 'worker-v1' AND n.alert_id = %s",
            (alert_id,),
        )
    worker = await login(client, "worker-v1")
    response = await client.get(f"/api/v1/alerts/escalation?ids={alert_id},{other}", headers=worker)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [e["alert_id"] for e in items] == [alert_id]
    state = items[0]
    assert state["round"] == 0
    assert "village" in state["tiers"]
    mine = [t for t in state["told"] if t["name"] == "Village worker v1"]
    assert mine
    assert {t["status"] for t in mine} == {"sent"}
    assert mine[0]["attempts"] == 2
    assert mine[0]["tier"] == "village"
    # A critical alert reaches the town tier at 5 minutes unless someone takes it.
    assert state["next_at"] is not None
    assert state["next_tiers"] == ["town"]

    await client.post(f"/api/v1/alerts/{alert_id}/ack", headers=worker)
    after = (await client.get(f"/api/v1/alerts/escalation?ids={alert_id}", headers=worker)).json()
    assert after["items"][0]["next_at"] is None

    family = await login(client, "family-h01")
    refused = await client.get(f"/api/v1/alerts/escalation?ids={alert_id}", headers=family)
    assert_error(refused, 403, "forbidden")
    bad = await client.get("/api/v1/alerts/escalation?ids=1,x", headers=worker)
    assert_error(bad, 422, "invalid_request")
