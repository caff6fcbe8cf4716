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
