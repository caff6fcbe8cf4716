"""An elder leaving the service, all the way: the file closed (gateway.admin.elders), then,
once that is committed, the broker's password file and ACL rewritten from the registry and
the broker reloaded, so the home's devices (retired by the close) cannot log in any more."""

from __future__ import annotations

from gateway.admin.common import Actor, Conn
from gateway.admin.elders import ElderClose, ElderOut, close_elder
from ingest import device_lifecycle
from ingest.broker_files import BrokerSettings


async def close_and_lock_out(
    conn: Conn, actor: Actor, elder_id: str, body: ElderClose, broker: BrokerSettings | None
) -> ElderOut:
    """Close the elder's file and commit; then, when this service writes the broker's files,
    rewrite and reload them (`ingest.broker_files.BrokerReloadError` if the reload fails:
    the elder stays closed, the files are written)."""
    closed = await close_elder(conn, actor, elder_id, body)
    await conn.commit()
    if broker is not None and broker.manages_files:
        await device_lifecycle.sync_broker(conn, broker)
    return closed
