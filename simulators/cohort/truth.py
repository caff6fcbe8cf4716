"""Ground truth of a cohort: the alert vocabulary, the incident and fault kinds, and one
`Incident` per line of the JSON-lines ground-truth file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from simulators.cohort.timeline import utc

ALERT_KINDS = frozenset(
    {
        "sos",
        "fall",
        "smoke",
        "gas",
        "co",
        "inactivity",
        "not_up",
        "bathroom_too_long",
        "out_of_bed_night",
        "night_wandering",
        "no_utility_use",
        "low_activity",
        "indoor_cold",
        "indoor_heat",
        "vitals",
        "device_silent",
        "low_battery",
        "hub_offline",
    }
)
"""The alert kinds a detector may raise; `Incident.expected_alerts` uses only these."""

BEHAVIOUR_INCIDENTS = (
    "fall",
    "collapse",
    "not_up",
    "bathroom_too_long",
    "out_of_bed_night",
    "night_wandering",
    "gas",
    "co",
    "smoke",
    "indoor_cold",
    "indoor_heat",
    "sos",
    "vitals",
)
FAULT_INCIDENTS = ("device_silent", "hub_offline", "low_battery")


@dataclass(frozen=True, slots=True)
class Incident:
    """One line of ground truth: what happened in which home, from when until when."""

    home_id: str
    kind: str
    start: datetime
    end: datetime | None
    expected_alerts: tuple[str, ...]
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON-lines record."""
        return {
            "home_id": self.home_id,
            "kind": self.kind,
            "start": self.start.isoformat(),
            "end": self.end.isoformat() if self.end is not None else None,
            "expected_alerts": list(self.expected_alerts),
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Incident:
        """Parse one JSON-lines record."""
        end = doc.get("end")
        return cls(
            home_id=str(doc["home_id"]),
            kind=str(doc["kind"]),
            start=datetime.fromisoformat(doc["start"]),
            end=datetime.fromisoformat(end) if end else None,
            expected_alerts=tuple(doc["expected_alerts"]),
            detail=dict(doc.get("detail") or {}),
        )


def read_ground_truth(path: Path) -> list[Incident]:
    """Load a ground-truth JSON-lines file."""
    with path.open() as f:
        return [Incident.from_json(json.loads(line)) for line in f if line.strip()]


def incident_record(
    home_id: str,
    kind: str,
    start: float,
    end: float | None,
    expected: tuple[str, ...],
    **detail: Any,
) -> Incident:
    """One line of ground truth from Unix seconds; `detail["acceptable"]` defaults to none.

    Both `expected` and the acceptable kinds must be `ALERT_KINDS`."""
    assert set(expected) <= ALERT_KINDS, expected
    detail.setdefault("acceptable", [])
    assert set(detail["acceptable"]) <= ALERT_KINDS
    return Incident(
        home_id=home_id,
        kind=kind,
        start=utc(round(start, 3)),  # readings carry milliseconds, so does the truth
        end=utc(round(end, 3)) if end is not None else None,
        expected_alerts=expected,
        detail=detail,
    )
