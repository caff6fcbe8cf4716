"""The retention settings and what they are checked against: the raw windows that are
read, and the activity definition the rollups restate."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from alerts import usual
from alerts.detect.layout import METER_METRICS, NON_ACTIVITY_METRICS, Role, classify
from devices.catalogue import CATALOGUE
from ingest import retention, rollups
from ingest.service import IngestSettings


def test_the_defaults_keep_raw_readings_180_days_and_rollups_5_years() -> None:
    s = IngestSettings()
    assert (s.retention_days, s.rollup_retention_days) == (180, 1825)
    assert s.retention() == retention.Policy(180, 1825, late_days=7)


@pytest.mark.parametrize("days", [1, 7, retention.MIN_RETENTION_DAYS - 1])
def test_a_raw_retention_shorter_than_the_raw_windows_is_refused(days: int) -> None:
    with pytest.raises(ValidationError, match="retention_days must be at least 18"):
        IngestSettings(retention_days=days)


def test_the_raw_retention_must_outlast_the_oldest_reading_accepted() -> None:
    with pytest.raises(ValidationError, match="at least 33"):
        IngestSettings(max_age_days=30, retention_days=32)
    assert IngestSettings(max_age_days=30, retention_days=33).retention_days == 33


def test_rollups_are_kept_at_least_as_long_as_raw_readings() -> None:
    with pytest.raises(ValidationError, match="rollup_retention_days must be at least"):
        IngestSettings(retention_days=90, rollup_retention_days=60)
    assert IngestSettings(retention_days=18, rollup_retention_days=18).retention_days == 18


def test_none_keeps_for_ever() -> None:
    s = IngestSettings(retention_days=None, rollup_retention_days=None)
    assert s.retention() == retention.Policy(None, None, late_days=7)


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Pacific/Kiritimati", "Pacific/Pago_Pago"])
def test_the_shortest_retention_keeps_the_usual_days_raw(zone: str) -> None:
    """`alerts.usual.compare` for yesterday (the morning's daily summary) reads from 18:00
    the evening before the first of the `USUAL_DAYS` previous days: all of it is still raw
    with the shortest retention, at any time of day and in any zone."""
    tz = ZoneInfo(zone)
    start_of_test = datetime(2025, 3, 1, tzinfo=UTC)
    for minutes in range(0, 48 * 60, 17):
        now = start_of_test + timedelta(minutes=minutes)
        yesterday = now.astimezone(tz).date() - timedelta(days=1)
        first = yesterday - timedelta(days=usual.USUAL_DAYS)
        reads_from = datetime.combine(first - timedelta(days=1), usual.NIGHT_FROM, tzinfo=tz)
        assert reads_from >= retention.cutoff(now, retention.MIN_RETENTION_DAYS), now


def test_the_cutoff_is_a_utc_midnight() -> None:
    now = datetime(2025, 3, 10, 23, 59, tzinfo=UTC)
    assert retention.cutoff(now, 20) == datetime(2025, 2, 18, tzinfo=UTC)
    assert retention.cutoff(now, 20).time() == time()


def test_the_rollups_activity_is_the_detectors_activity() -> None:
    """ingest.rollups restates alerts.detect.layout.is_activity (ingest sits below alerts),
    and the TimescaleDB migration restates ingest.rollups: all three agree."""
    assert set(rollups.EXCLUDED_METRICS) == NON_ACTIVITY_METRICS | METER_METRICS
    for kind in rollups.ACTIVITY_KINDS:
        assert classify(kind).role is not Role.PASSIVE, kind
    for kind in CATALOGUE:
        assert (classify(kind).role is not Role.PASSIVE) == (kind in rollups.ACTIVITY_KINDS)
    sql = (resources.files("ingest.migrations") / "0018_retention.timescale.sql").read_text(
        encoding="utf-8"
    )
    kinds = re.findall(r"d\.kind IN \(([^)]*)\)", sql)
    metrics = re.findall(r"r\.metric NOT IN \(([^)]*)\)", sql)
    assert len(kinds) == 3
    for found in kinds:
        assert set(re.findall(r"'([a-z_]+)'", found)) == set(rollups.ACTIVITY_KINDS)
    housekeeping = [
        m for m in metrics if set(re.findall(r"'([a-z_]+)'", m)) == {"heartbeat", "battery"}
    ]
    assert len(housekeeping) == 1
    for found in metrics:
        names = set(re.findall(r"'([a-z_]+)'", found))
        assert names in (set(rollups.EXCLUDED_METRICS), set(rollups.HOUSEKEEPING))
