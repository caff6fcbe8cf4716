"""The demo seed on a rerun of `eldercare up` (issue #16): a new port moves the demo inbox,
and every staff and family contact must follow it, not keep the old address beside it."""

from __future__ import annotations

import psycopg

from devstack.seed import seed_demo


async def _webhooks(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> dict[int, list[str]]:
    cur = await conn.execute(
        "SELECT user_id, target FROM contact_channels WHERE channel = 'webhook' ORDER BY 1, 2"
    )
    out: dict[int, list[str]] = {}
    for user_id, target in await cur.fetchall():
        out.setdefault(int(str(user_id)), []).append(str(target))
    return out


async def test_rerun_on_another_port_points_every_webhook_at_the_new_inbox(db_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await seed_demo(conn, homes=8, webhook_url="http://127.0.0.1:8000/demo/webhook")
        first = await _webhooks(conn)
        await seed_demo(conn, homes=8, webhook_url="http://127.0.0.1:8123/demo/webhook")
        second = await _webhooks(conn)
        await seed_demo(conn, homes=8, webhook_url="http://127.0.0.1:8123/demo/webhook")
        third = await _webhooks(conn)

    assert first, "the seed gives the demo users a webhook contact"
    assert set(second) == set(first)
    for user_id, targets in second.items():
        assert len(targets) == 1, (user_id, targets)
        assert targets[0].startswith("http://127.0.0.1:8123/demo/webhook/"), targets
    assert third == second  # the same port again changes nothing
