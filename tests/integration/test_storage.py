"""The readings table on whichever storage path the database offers: TimescaleDB hypertable
when the extension is available (run with ELDERCARE_TEST_DATABASE_URL pointing at one), native
daily partitions otherwise (the embedded PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ingest import store
from ingest.migrate import storage_kind, timescale_available

pytestmark = pytest.mark.integration


async def test_readings_storage_matches_the_server(db_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        kind = await storage_kind(conn)
        assert kind == ("timescale" if await timescale_available(conn) else "native")
        if kind == "timescale":
            cur = await conn.execute(
                "SELECT count(*) FROM timescaledb_information.hypertables"
                " WHERE hypertable_name = 'readings'"
            )
            assert (await cur.fetchone()) == (1,)
            return
        today = datetime.now(UTC).date()
        cur = await conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'readings'::regclass"
        )
        parts = {str(r[0]) for r in await cur.fetchall()}
        # Partitions exist ahead of time, and maintenance makes more on demand.
        assert f"readings_{today:%Y%m%d}" in parts
        assert "readings_default" in parts
        later = today + timedelta(days=20)
        assert await store.ensure_partitions(conn, later, later) == 1
        assert await store.ensure_partitions(conn, later, later) == 0


async def test_a_reading_outside_the_partitions_is_still_stored(db_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        old = datetime(2001, 1, 1, tzinfo=UTC)
        await conn.execute(
            "INSERT INTO readings (device_id, boot, seq, ts, home_id, metric, value)"
            " VALUES ('h01-temp', 1, 1, %s, 'h01', 'temperature', 20.5)",
            (old,),
        )
        await conn.commit()
        cur = await conn.execute("SELECT value FROM readings WHERE ts = %s", (old,))
        assert (await cur.fetchone()) == (20.5,)


async def test_every_change_to_the_devices_bumps_the_registry_version(db_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        before = await store.registry_version(conn)
        assert before is not None
        devices = len(await store.load_registry(conn))
        # Read in chunks smaller than the table: nothing lost at the chunk edges.
        assert len(await store.load_registry(conn, chunk=3)) == devices > 6
        await conn.execute(
            "INSERT INTO devices (id, home_id, kind) VALUES ('h01-sos-2', 'h01', 'sos_button'),"
            " ('h01-sos-3', 'h01', 'sos_button')"
        )
        one_statement = await store.registry_version(conn)
        assert one_statement == before + 1  # per statement, not per row
        assert (await store.load_registry(conn, chunk=3)).get("h01-sos-2") is not None
        # A label is not in the registry the detectors read (migration 0022): no reload.
        await conn.execute("UPDATE devices SET label = 'by the bed' WHERE id = 'h01-sos-2'")
        assert await store.registry_version(conn) == before + 1
        await conn.execute("UPDATE devices SET room = 'bedroom' WHERE id = 'h01-sos-2'")
        assert await store.registry_version(conn) == before + 2
        await conn.execute("DELETE FROM devices WHERE id IN ('h01-sos-2', 'h01-sos-3')")
        assert await store.registry_version(conn) == before + 3
        # A statement that changes nothing still counts: a spurious reload, never a missed one.
        await conn.execute("DELETE FROM devices WHERE id = 'no-such-device'")
        assert await store.registry_version(conn) == before + 4
        # Rolled back: no change to the devices, none to the version.
        async with conn.transaction(force_rollback=True):
            await conn.execute("DELETE FROM devices WHERE id = 'h01-sos-2'")
        assert await store.registry_version(conn) == before + 4
