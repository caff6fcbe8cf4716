"""`eldercare evaluate-homes` on a small recording with the resident's own annotations:
where the collapses are injected and in which context, when the untouched recording sees the
resident again, the excess of the alert over that natural gap, and what counts as a false
alarm, in which context."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from alerts.detect.dataset import CONTEXTS, UNANNOTATED, Dataset, context_at, load_dataset
from alerts.detect.detectors import default_detectors
from alerts.detect.real_homes import (
    evaluate_real_home,
    inject_collapses,
    next_sighting,
    sample_instants,
    sightings,
)
from alerts.detect.scoring import (
    Injection,
    RealHomeReport,
    episodes,
    false_alarms_by_context,
    injection_numbers,
    score,
)
from alerts.model import Category, Severity, Signal
from cli.main import app
from devices.payload import Reading

TZ = ZoneInfo("Europe/Amsterdam")
DAY0 = datetime(2008, 3, 3)  # local time (Europe/Amsterdam), a Monday; no DST change for weeks
DAYS = 12
SENSORS = {
    "1": {"name": "front door", "kind": "entry_door", "room": "hall"},
    "2": {"name": "kitchen PIR", "kind": "motion", "room": "kitchen"},
    "3": {"name": "bed", "kind": "bed", "room": "bedroom"},
}


def write_home(folder: Path, out_day: int = 8) -> None:
    """Up at 07:00 (bed mat left), the kitchen PIR every 20 min from 07:10 (on for 20 s)
    until bed at 22:00; out on day `out_day` through the front door at 11:56, back at 15:01
    (annotated 11:55-15:05, no PIR 12:00-15:00); on day 1 nothing at all between 09:00 and
    19:00 (before the annotations begin, with the night of day 2, at 22:00)."""
    events: list[tuple[datetime, str, int]] = []
    activities: list[tuple[datetime, datetime, str]] = []
    for d in range(DAYS):
        day = DAY0 + timedelta(days=d)
        events.append((day + timedelta(hours=7), "3", 0))
        t = day + timedelta(hours=7, minutes=10)
        while t < day + timedelta(hours=22):
            quiet = d == 1 and day + timedelta(hours=9) <= t < day + timedelta(hours=19)
            out = d == out_day and day + timedelta(hours=12) <= t < day + timedelta(hours=15)
            if not (quiet or out):
                events += [(t, "2", 1), (t + timedelta(seconds=20), "2", 0)]
            t += timedelta(minutes=20)
        if d == out_day:
            for at in (timedelta(hours=11, minutes=56), timedelta(hours=15, minutes=1)):
                events += [(day + at, "1", 1), (day + at + timedelta(seconds=5), "1", 0)]
            activities.append(
                (
                    day + timedelta(hours=11, minutes=55),
                    day + timedelta(hours=15, minutes=5),
                    "leave house",
                )
            )
        events.append((day + timedelta(hours=22), "3", 1))
        if d >= 2:
            activities.append(
                (day + timedelta(hours=22), day + timedelta(days=1, hours=7), "go to bed")
            )
    events.sort()
    folder.mkdir()
    (folder / "sensors.json").write_text(
        json.dumps({"timezone": "Europe/Amsterdam", "sensors": SENSORS})
    )
    (folder / "events.csv").write_text(
        "timestamp,sensor_id,value\n"
        + "".join(f"{t:%Y-%m-%dT%H:%M:%S},{s},{v}\n" for t, s, v in events)
    )
    (folder / "activities.csv").write_text(
        "start,end,activity\n"
        + "".join(f"{a:%Y-%m-%dT%H:%M:%S},{b:%Y-%m-%dT%H:%M:%S},{w}\n" for a, b, w in activities)
    )


def _dataset(tmp_path: Path, out_day: int = 8) -> Dataset:
    write_home(tmp_path / "home_x", out_day)
    return load_dataset(tmp_path / "home_x" / "events.csv", tmp_path / "home_x" / "sensors.json")


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """Day `day` of the recording at a local wall-clock time, in UTC."""
    at = DAY0 + timedelta(days=day, hours=hour, minutes=minute, seconds=second)
    return at.replace(tzinfo=TZ).astimezone(UTC)


@dataclass
class Quiet:
    """A stand-in detector with known numbers: `inactivity` once `after` has passed since the
    last reading it observed (once per silence), `since` that reading."""

    home_id: str
    after: timedelta
    last: datetime | None = None
    fired: bool = False

    def observe(self, reading: Reading) -> list[Signal]:
        self.last, self.fired = reading.ts, False
        return []

    def advance(self, now: datetime) -> list[Signal]:
        if self.last is None or self.fired or now - self.last < self.after:
            return []
        self.fired = True
        return [
            Signal(
                self.home_id, "inactivity", Category.WELLBEING, Severity.WARNING, now, "quiet",
                evidence={"since": self.last.isoformat()},
            )
        ]  # fmt: skip


def test_instants_are_drawn_in_every_context_the_annotations_tell(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    assert ds.annotated == (local(2, 22), local(12, 7))
    picked = sample_instants(ds, 20, seed=3, skip_days=3.0)
    assert len(picked) == 60
    assert picked == sorted(picked)
    assert {c: sum(ctx == c for _, ctx in picked) for c in CONTEXTS} == {
        "awake": 20,
        "asleep": 20,
        "out": 20,
    }
    for t, ctx in picked:
        assert context_at(ds, t) == ctx
        assert local(3, 7) <= t <= ds.readings[-1].ts  # after 3 days, within the annotations
        hour = t.astimezone(TZ).hour
        if ctx == "asleep":
            assert hour >= 22 or hour < 7
        elif ctx == "out":
            assert local(8, 11, 55) <= t < local(8, 15, 5)
        else:
            assert 7 <= hour < 22
            assert not local(8, 11, 55) <= t < local(8, 15, 5)
    assert sample_instants(ds, 20, seed=3, skip_days=3.0) == picked  # same seed, same
    assert sample_instants(ds, 20, seed=4, skip_days=3.0) != picked
    # --instants: that many uniform over the span, in whichever context they fall.
    uniform = sample_instants(ds, 20, seed=3, skip_days=3.0, total=30)
    assert len(uniform) == 30
    assert all(context_at(ds, t) == ctx for t, ctx in uniform)
    assert {ctx for _, ctx in uniform} >= {"awake", "asleep"}


def test_the_natural_gap_is_the_next_activity_in_the_untouched_recording(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    # Housekeeping and a passive measurement just after the instant are no sighting.
    extra = (
        Reading("home_x", "home_x-2", "pir_motion", 0, 0, local(4, 10, 7), "battery", 80.0),
        Reading("home_x", "home_x-t", "temperature", 0, 0, local(4, 10, 8), "temperature", 20.0),
    )
    ds = replace(ds, readings=tuple(sorted((*ds.readings, *extra), key=lambda r: r.ts)))
    seen = sightings(ds)
    assert len(seen) == len(ds.readings) - 2
    assert next_sighting(seen, local(4, 10, 5)) == local(4, 10, 10)  # the next PIR
    assert next_sighting(seen, local(4, 10, 10)) == local(4, 10, 10, 20)  # its release
    assert next_sighting(seen, local(5, 23)) == local(6, 7)  # out of bed in the morning
    assert next_sighting(seen, local(8, 13)) == local(8, 15, 1)  # the return, for one out
    assert next_sighting(seen, local(11, 22, 30)) is None  # nothing after the last event


def test_the_delay_and_its_excess_over_the_natural_gap_have_known_values(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    # Alerts 3 h after the last reading, on the minute grid of the replay (from 07:00:00).
    awake, out = inject_collapses(
        ds,
        lambda d: Quiet(d.home_id, timedelta(hours=3)),
        [(local(4, 10, 5), "awake"), (local(8, 13), "out")],
    )
    # Last reading 09:50:20 (the PIR released), alert at 12:51; seen again at 10:10.
    assert (awake.seen_again, awake.alert_at, awake.alert_kind) == (
        local(4, 10, 10),
        local(4, 12, 51),
        "inactivity",
    )
    assert awake.gap_s == 5 * 60
    assert awake.delay_s == 2 * 3600 + 46 * 60
    assert awake.excess_s == 2 * 3600 + 41 * 60
    assert not awake.before_seen_again
    # Out: the door closed at 11:56:05, alert at 14:57, before the return at 15:01: excess 0.
    assert (out.seen_again, out.alert_at) == (local(8, 15, 1), local(8, 14, 57))
    assert out.delay_s == 1 * 3600 + 57 * 60
    assert out.excess_s == 0.0
    assert out.before_seen_again
    # 14 h after going to bed at 22:00: 13 h after the instant, missed within 12 h (the
    # resident was up at 07:00, a natural gap of 8 h), not within 24 h; 5 h of excess.
    [night] = inject_collapses(
        ds, lambda d: Quiet(d.home_id, timedelta(hours=14)), [(local(5, 23), "asleep")]
    )
    assert (night.seen_again, night.alert_at) == (local(6, 7), local(6, 12))
    assert night.missed(timedelta(hours=12))
    assert not night.missed(timedelta(hours=24))
    assert night.excess_s == 5 * 3600
    numbers = score([RealHomeReport("home_x", 1.0, injections=[awake, out, night])], "home_x")
    assert numbers["injected"] == 3
    assert numbers["missed_12h"] == 1
    assert numbers["missed_12h_gap_le_12h"] == 1
    assert numbers["injected_gap_le_12h"] == 3
    assert numbers["gap_over_12h"] == 0
    assert numbers["missed_24h"] == 0
    assert numbers["alert_before_seen_again"] == 1
    assert numbers["excess_mean_min"] == round((161 + 0 + 300) / 3, 1)
    assert numbers["excess_median_min"] == 161.0
    assert numbers["delay_median_h"] == round((2 * 60 + 46) / 60, 2)
    assert numbers["contexts"]["asleep"]["missed_12h"] == 1
    assert numbers["contexts"]["out"]["excess_mean_min"] == 0.0
    assert numbers["contexts"]["awake"]["excess_mean_min"] == 161.0


def test_a_natural_gap_over_12_hours_is_counted_apart() -> None:
    t = datetime(2008, 3, 10, 12, tzinfo=UTC)
    long_out = Injection(t, "out", t + timedelta(hours=20), t + timedelta(hours=13), "not_back")
    never = Injection(t, "awake", t + timedelta(hours=1))
    numbers = injection_numbers([long_out, never])
    assert numbers["missed_12h"] == 2  # every instant
    assert numbers["gap_over_12h"] == 1
    assert (numbers["injected_gap_le_12h"], numbers["missed_12h_gap_le_12h"]) == (1, 1)
    assert numbers["missed_24h"] == 1
    assert numbers["alert_before_seen_again"] == 1
    assert numbers["excess_mean_min"] == 0.0
    assert numbers["delay_mean_h"] == 13.0


def test_false_alarms_are_attributed_to_the_context_where_they_began(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)

    def alert(at: datetime, since: datetime | None, technical: bool = False) -> Signal:
        return Signal(
            "home_x", "hub_offline" if technical else "inactivity",
            Category.TECHNICAL if technical else Category.WELLBEING, Severity.WARNING, at, "x",
            evidence={} if since is None else {"since": since.isoformat()},
        )  # fmt: skip

    days, counts = false_alarms_by_context(
        ds,
        [
            alert(local(5, 9), since=local(5, 3)),  # raised awake, began asleep
            alert(local(8, 16), since=local(8, 13)),  # raised back home, began out
            alert(local(4, 10), since=None),  # no since: where it was raised
            alert(local(4, 11), since=None, technical=True),  # not a false alarm
            alert(local(3, 1), since=local(2, 21)),  # began before the annotations
        ],
    )
    assert counts == {
        "awake": {"inactivity": 1},
        "asleep": {"inactivity": 1},
        "out": {"inactivity": 1},
        UNANNOTATED: {"inactivity": 1},
    }
    # Annotated from day 2 22:00 to the last event (day 11 22:00): 9 nights of 9 h, 3 h 10
    # out; before it, 2 days 15 h.
    assert days["asleep"] == pytest.approx(81 / 24)
    assert days["out"] == pytest.approx((3 + 10 / 60) / 24)
    assert days["awake"] == pytest.approx(9 - 81 / 24 - (3 + 10 / 60) / 24)
    assert days[UNANNOTATED] == pytest.approx(2 + 15 / 24)


def test_repeats_about_one_episode_count_once() -> None:
    """`not_back` at 21:00, again at the cap and 11.5 h later, of one outing (same `since`):
    one episode; another outing, another kind, another home, a technical alert: apart."""
    out = datetime(2026, 3, 2, 8, tzinfo=UTC)

    def sig(kind: str, at: datetime, since: datetime, home: str = "h1") -> Signal:
        category = Category.TECHNICAL if kind == "hub_offline" else Category.WELLBEING
        return Signal(
            home, kind, category, Severity.CRITICAL, at, "x", evidence={"since": since.isoformat()}
        )

    later = out + timedelta(days=1)
    signals = [sig("not_back", out + timedelta(hours=h), out) for h in (13, 11.5, 23)] + [
        sig("not_back", later + timedelta(hours=12), later),
        sig("inactivity", out + timedelta(hours=13), out),
        sig("not_back", out + timedelta(hours=13), out, home="h2"),
        sig("hub_offline", out + timedelta(hours=1), out),
    ]
    assert episodes(signals) == 4
    assert episodes(signals[:3]) == 1


def test_the_untouched_replay_counts_false_alarms_per_context(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    report = evaluate_real_home(ds, lambda d: Quiet(d.home_id, timedelta(hours=3)), 2, 5, 3.0)
    # Every night (9 annotated, 2 before), day 1's ten quiet hours, and the outing of day 8.
    assert report.context_false_alarms == {
        "awake": {},
        "asleep": {"inactivity": 9},
        "out": {"inactivity": 1},
        UNANNOTATED: {"inactivity": 3},
    }
    summary = report.summary()
    assert summary["false_alarms_per_day"] == round(13 / (11 + 15 / 24), 3)
    assert summary["contexts"]["asleep"]["false_alarms_per_day"] == round(9 / (11 + 15 / 24), 3)
    assert summary["contexts"]["asleep"]["false_alarms_per_context_day"] == round(9 / 3.375, 3)
    assert summary["contexts"]["awake"]["false_alarms_per_day"] == 0.0
    assert summary["injected"] == 6
    assert {c: summary["contexts"][c]["injected"] for c in CONTEXTS} == {
        "awake": 2,
        "asleep": 2,
        "out": 2,
    }


def test_the_detectors_find_every_injected_collapse_in_every_context(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, out_day=10)
    report = evaluate_real_home(ds, lambda d: default_detectors(d.layout), 3, 5, 9.0)
    summary = report.summary()
    # Day 1's ten quiet hours (before any annotation) are flagged: a false alarm of the
    # whole recording, none within the span the resident's notes cover.
    assert report.false_alarms.get("inactivity", 0) >= 1
    assert report.annotated_false_alarms == {}
    assert summary["annotated_false_alarms_per_day"] == 0.0
    assert sum(report.context_false_alarms[UNANNOTATED].values()) == report.non_technical
    assert all(summary["contexts"][c]["false_alarms"] == 0 for c in CONTEXTS)
    assert report.annotated_days == pytest.approx(9.0)
    # Three collapses in each context after day 9 07:00 (the outing on day 10): every one
    # alerted on within 12 h, after its instant; out ones as `not_back`.
    assert {c: summary["contexts"][c]["injected"] for c in CONTEXTS} == {
        "awake": 3,
        "asleep": 3,
        "out": 3,
    }
    assert all(local(9, 7) <= i.at for i in report.injections)
    assert summary["missed_12h"] == 0
    assert summary["gap_over_12h"] == 0
    assert report.detected == 9
    assert all(i.delay_s is not None and i.delay_s > 0 for i in report.injections)
    assert summary["contexts"]["out"]["alert_kinds"] == {"not_back": 3}


def test_evaluate_homes_prints_the_numbers_per_context(tmp_path: Path) -> None:
    write_home(tmp_path / "home_x", out_day=10)
    result = CliRunner().invoke(
        app,
        ["evaluate-homes", str(tmp_path / "home_x"), "--per-context", "2", "--seed", "5",
         "--skip-days", "9", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    ds = load_dataset(tmp_path / "home_x" / "events.csv", tmp_path / "home_x" / "sensors.json")
    expected = evaluate_real_home(ds, lambda d: default_detectors(d.layout), 2, 5, 9.0)
    assert out["homes"] == [expected.summary()]
    assert out["total"] == score([expected], "all")
    assert out["total"]["injected"] == 6
    assert {c: out["total"]["contexts"][c]["injected"] for c in CONTEXTS} == {
        "awake": 2,
        "asleep": 2,
        "out": 2,
    }
    assert out["total"]["contexts"]["out"]["missed_12h"] == 0
