"""`eldercare rota show` prints the deployment's time zone, labelled (issue #16: it printed
UTC while the console showed Asia/Shanghai), and `rota add` reads a time without an offset
in that zone; against a real PostgreSQL with the demo rota."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from typer.testing import CliRunner

from cli.main import app

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin"])
def test_rota_show_prints_the_deployment_zone_labelled(db_url: str, zone: str) -> None:
    tz = ZoneInfo(zone)
    now = datetime.now(UTC)
    start = (now + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=3)
    with psycopg.connect(db_url, autocommit=True) as conn:
        # The district centre is covered only until `end`: a gap from then on.
        conn.execute("DELETE FROM duty_shifts WHERE region_id = 'd1'")
        conn.execute(
            "INSERT INTO duty_shifts (user_id, region_id, starts_at, ends_at)"
            " SELECT id, 'd1', %s, %s FROM users WHERE username = 'district'",
            (now - timedelta(hours=1), end),
        )
    env = {
        "ELDERCARE_DATABASE__URL": db_url,
        "ELDERCARE_ALERTS__TIMEZONE": zone,
        "COLUMNS": "200",
    }
    runner = CliRunner()
    local_start = f"{start.astimezone(tz):%Y-%m-%d}T{start.astimezone(tz):%H:%M}"
    added = runner.invoke(
        app,
        ["rota", "add", "--user", "worker-v2", "--region", "v2", "--start", local_start,
         "--end", end.isoformat()],
        env=env,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT starts_at FROM duty_shifts d JOIN users u ON u.id = d.user_id"
            " WHERE u.username = 'worker-v2' ORDER BY d.id DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    assert row[0] == start  # the offset-less time was read in the deployment's zone

    shown = runner.invoke(app, ["rota", "show", "--hours", "24"], env=env)
    assert shown.exit_code == 0, shown.output
    out = shown.output
    offset = start.astimezone(tz).strftime("%z")
    assert f"times in {zone}, UTC{offset[:3]}:{offset[3:]}" in out
    assert f"from ({zone})" in out
    assert f"{start.astimezone(tz):%Y-%m-%d %H:%M}" in out
    assert f"{start:%Y-%m-%d %H:%M}" not in out  # not in UTC
    gap = f"{end.astimezone(tz):%Y-%m-%d %H:%M} - "
    lines = [line for line in out.splitlines() if "nobody on duty" in line and "d1" in line]
    assert len(lines) == 1, out
    assert gap in lines[0]
    assert lines[0].rstrip().endswith("h)")
    assert f" {zone} (" in lines[0]
