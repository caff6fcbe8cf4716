"""The demo region: 1 district, 2 towns, 4 villages, 20 homes with an elder, devices, staff
on duty around the clock, and family accounts. Idempotent: seeding twice changes nothing."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from argon2 import PasswordHasher

DEMO_PASSWORD = "demo-password"  # noqa: S105 - the demo's published login, not a secret
DEVICE_KINDS = (
    ("sos", "sos_button", "living room"),
    ("pir-living", "pir_motion", "living room"),
    ("pir-kitchen", "pir_motion", "kitchen"),
    ("pir-bath", "pir_motion", "bathroom"),
    ("door-entry", "door_contact", "hall"),
    ("bed", "bed_mat", "bedroom"),
    ("temp", "temperature", "living room"),
)
_FIRST = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu"]
_GIVEN = [
    "Guiying",
    "Xiulan",
    "Jianguo",
    "Shufen",
    "Guozhen",
    "Yulan",
    "Deming",
    "Fengying",
    "Baoshan",
    "Cuihua",
]


@dataclass(slots=True, frozen=True)
class DemoLogin:
    """A login printed for the demo."""

    username: str
    role: str
    scope: str


async def seed_demo(
    conn: psycopg.AsyncConnection[Any],
    *,
    homes: int = 20,
    webhook_url: str | None = None,
    email_domain: str = "example.org",
    now: datetime | None = None,
) -> list[DemoLogin]:
    """Create the demo region if it is not there yet; returns the demo logins."""
    now = now or datetime.now(UTC)
    cur = await conn.execute("SELECT count(*) FROM regions WHERE id = 'd1'")
    row = await cur.fetchone()
    logins: list[DemoLogin] = []
    hasher = PasswordHasher()
    pw = hasher.hash(DEMO_PASSWORD)
    rng = random.Random(7)
    villages = ["v1", "v2", "v3", "v4"]
    already = bool(row and row[0])
    async with conn.transaction():
        if not already:
            await conn.execute(
                "INSERT INTO regions (id, name, tier, parent_id) VALUES"
                " ('d1', 'Riverside District', 'district', NULL),"
                " ('t1', 'East Town', 'town', 'd1'), ('t2', 'West Town', 'town', 'd1'),"
                " ('v1', 'Willow Village', 'village', 't1'),"
                " ('v2', 'Pine Village', 'village', 't1'),"
                " ('v3', 'Lotus Village', 'village', 't2'),"
                " ('v4', 'Bamboo Village', 'village', 't2')"
            )

        async def user(name: str, display: str, role: str, region: str | None) -> int:
            cur = await conn.execute(
                "INSERT INTO users (username, password_hash, display_name, role, region_id)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (username) DO UPDATE"
                " SET username = EXCLUDED.username RETURNING id",
                (name, pw, display, role, region),
            )
            r = await cur.fetchone()
            assert r is not None
            uid = int(r[0])
            await conn.execute(
                "INSERT INTO contact_channels (user_id, channel, target, position)"
                " VALUES (%s, 'email', %s, 1) ON CONFLICT DO NOTHING",
                (uid, f"{name}@{email_domain}"),
            )
            if webhook_url:
                # The demo inbox's address changes with the port of `eldercare up`: a rerun
                # on another port points the contact at it instead of adding a second one
                # that nobody listens on.
                target = f"{webhook_url.rstrip('/')}/{name}"
                await conn.execute(
                    "DELETE FROM contact_channels"
                    " WHERE user_id = %s AND channel = 'webhook' AND target <> %s",
                    (uid, target),
                )
                await conn.execute(
                    "INSERT INTO contact_channels (user_id, channel, target, position)"
                    " VALUES (%s, 'webhook', %s, 0) ON CONFLICT DO NOTHING",
                    (uid, target),
                )
            return uid

        async def on_duty(uid: int, region: str) -> None:
            # On duty around the clock for the demo: one long shift from yesterday.
            if not already:
                await conn.execute(
                    "INSERT INTO duty_shifts (user_id, region_id, starts_at, ends_at)"
                    " VALUES (%s, %s, %s, %s)",
                    (uid, region, now - timedelta(days=1), now + timedelta(days=365)),
                )

        await on_duty(await user("district", "District 24h centre", "district_staff", "d1"), "d1")
        logins.append(DemoLogin("district", "district_staff", "Riverside District"))
        for t in ("t1", "t2"):
            await on_duty(await user(f"town-{t}", f"Town staff {t}", "town_staff", t), t)
        logins.append(DemoLogin("town-t1", "town_staff", "East Town"))
        await on_duty(await user("operator", "Operator", "operator", None), "d1")
        logins.append(DemoLogin("operator", "operator", "devices and service"))
        for v in villages:
            uid = await user(f"worker-{v}", f"Village worker {v}", "village_worker", v)
            if not already:
                # On duty around the clock for the demo: one long shift from yesterday.
                await conn.execute(
                    "INSERT INTO duty_shifts (user_id, region_id, starts_at, ends_at)"
                    " VALUES (%s, %s, %s, %s)",
                    (uid, v, now - timedelta(days=1), now + timedelta(days=365)),
                )
        logins.append(DemoLogin("worker-v1", "village_worker", "Willow Village"))
        for i in range(1, homes + 1):
            home = f"h{i:02d}"
            village = villages[(i - 1) % len(villages)]
            name = f"{rng.choice(_FIRST)} {rng.choice(_GIVEN)}"
            await conn.execute(
                "INSERT INTO homes (id, village_id, address, timezone) VALUES (%s, %s, %s,"
                " 'Asia/Shanghai') ON CONFLICT DO NOTHING",
                (home, village, f"{i} Main Street"),
            )
            await conn.execute(
                "INSERT INTO elders (id, home_id, full_name, born) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (f"e{i:02d}", home, name, datetime(1935 + i, 1 + i % 12, 1).date()),
            )
            for suffix, kind, room in DEVICE_KINDS:
                await conn.execute(
                    "INSERT INTO devices (id, home_id, kind, room) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (f"{home}-{suffix}", home, kind, room),
                )
            fid = await user(f"family-{home}", f"Family of {name}", "family", None)
            await conn.execute(
                "INSERT INTO family_links (user_id, elder_id, relation, first_contact)"
                " VALUES (%s, %s, 'child', true) ON CONFLICT DO NOTHING",
                (fid, f"e{i:02d}"),
            )
            await _file_details(conn, f"e{i:02d}", fid, i)
        logins.append(DemoLogin("family-h01", "family", "elder of home h01"))
        # Staff phones: what a family sees once a worker owns their elder's alert.
        await conn.execute(
            "UPDATE users SET phone = '+86 136 ' || lpad(id::text, 8, '0')"
            " WHERE phone = '' AND role <> 'family'"
        )
    return logins


async def _file_details(
    conn: psycopg.AsyncConnection[Any], elder_id: str, family: int, i: int
) -> None:
    """What a worker needs in the elder's file: phones, a neighbour who holds a key, notes."""
    await conn.execute(
        "UPDATE elders SET phone = %s, conditions = %s, notes = %s WHERE id = %s AND phone = ''",
        (
            f"+86 139 0000 {i:04d}",
            ["hypertension", "uses a walking frame"] if i % 2 else ["diabetes (type 2)"],
            "Hard of hearing: knock loudly and call. Dog in the yard is friendly.",
            elder_id,
        ),
    )
    await conn.execute(
        "UPDATE users SET phone = %s WHERE id = %s AND phone = ''",
        (f"+86 138 0000 {i:04d}", family),
    )
    # The demo elders consented (on the paper form) to monitoring and to sharing with their
    # family: without it their health data is refused (docs/operations.md, Personal
    # information).
    await conn.execute(
        "INSERT INTO elder_consents (elder_id, purpose, given_by, method, reference, given_at)"
        " SELECT %s, p, 'elder', 'paper_form', %s, now() - interval '30 days'"
        " FROM unnest(ARRAY['monitoring', 'share_family']) p WHERE NOT EXISTS (SELECT 1"
        " FROM elder_consents c WHERE c.elder_id = %s AND c.purpose = p)",
        (elder_id, f"demo form {elder_id}", elder_id),
    )
    await conn.execute(
        "INSERT INTO elder_contacts (elder_id, name, relation, phone, position, holds_key)"
        " SELECT %s, %s, 'neighbour', %s, 0, true"
        " WHERE NOT EXISTS (SELECT 1 FROM elder_contacts WHERE elder_id = %s)",
        (elder_id, f"Neighbour of {elder_id}", f"+86 137 0000 {i:04d}", elder_id),
    )
