"""The detection feed's row format (ingest/feed.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from devices.payload import Reading
from ingest import feed


def test_a_feed_row_gives_back_the_readings_it_was_made_of() -> None:
    at = datetime(2026, 12, 7, 8, 30, 15, 250_000, tzinfo=UTC)
    readings = [
        Reading("h01", "h01-pir-bath", "pir_motion", 2, 41, at, "motion", 1.0),
        Reading("h01", "h01-temp", "temperature", 1, 7, at, "temperature", 21.75),
    ]
    assert feed.decode(feed.encode(readings)) == readings


def test_a_corrupt_row_is_refused_not_misread() -> None:
    with pytest.raises(msgspec.DecodeError):
        feed.decode(b"\x92\x01")
    with pytest.raises(msgspec.DecodeError):
        feed.decode(msgspec.msgpack.encode([["h01", "d", "pir_motion", "one", 1, 0.0, "m", 1.0]]))
