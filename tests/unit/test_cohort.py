"""Unit tests for the simulated cohort: personas, incidents and their ground truth."""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from devices import topics
from devices.catalogue import CATALOGUE, LOW_BATTERY_PERCENT, Link
from devices.payload import Limits, Reading, decode, encode
from simulators.cohort.cohort import Cohort
from simulators.cohort.truth import (
    ALERT_KINDS,
    BEHAVIOUR_INCIDENTS,
    FAULT_INCIDENTS,
    Incident,
    read_ground_truth,
)
from simulators.live import by_device

_MIN = timedelta(minutes=1)


def by_home(readings: list[Reading]) -> dict[str, list[Reading]]:
    out: dict[str, list[Reading]] = defaultdict(list)
    for r in readings:
        out[r.home_id].append(r)
    return out


def between(readings: list[Reading], start: datetime, end: datetime) -> list[Reading]:
    return [r for r in readings if start <= r.ts < end]


@pytest.fixture(scope="module")
def eventful() -> tuple[Cohort, list[Reading]]:
    """A small cohort with many incidents and faults."""
    cohort = Cohort(30, 12, seed=0, incidents_per_home_day=0.3, faults_per_home_day=0.1)
    return cohort, list(cohort.readings())


@pytest.fixture(scope="module")
def quiet() -> tuple[Cohort, list[Reading]]:
    """A cohort without incidents or faults."""
    cohort = Cohort(12, 14, seed=5, incidents_per_home_day=0, faults_per_home_day=0)
    return cohort, list(cohort.readings())


def test_deterministic_for_a_seed() -> None:
    a, b, c = (Cohort(4, 5, seed=s, incidents_per_home_day=0.3) for s in (3, 3, 4))
    first = list(itertools.islice(a.readings(), 30_000))
    assert first == list(itertools.islice(b.readings(), 30_000))
    assert first != list(itertools.islice(c.readings(), 30_000))
    assert a.ground_truth() == b.ground_truth()
    assert [h.devices for h in a.homes] == [h.devices for h in b.homes]


def test_readings_are_ordered_and_decode(eventful: tuple[Cohort, list[Reading]]) -> None:
    cohort, readings = eventful
    assert [r.ts for r in readings] == sorted(r.ts for r in readings)
    assert all(cohort.start <= r.ts < cohort.end for r in readings)
    last: dict[str, int] = {}
    for r in readings:
        assert r.seq == last.get(r.device_id, -1) + 1
        last[r.device_id] = r.seq
    registry = cohort.registry()
    assert len(registry) == sum(len(h.devices) for h in cohort.homes)
    assert {r.kind for r in readings} == {d.kind for h in cohort.homes for d in h.devices}
    for batch in by_device(readings[:: max(1, len(readings) // 20_000)]):
        topic = topics.topic(batch[0].home_id, batch[0].device_id, topics.Channel.READINGS)
        for i in range(0, len(batch), 200):
            chunk = batch[i : i + 200]
            limits = Limits(max_age=timedelta(days=30))
            assert decode(topic, encode(chunk), registry, chunk[-1].ts, limits) == chunk


def test_every_catalogue_kind_is_simulated() -> None:
    cohort = Cohort(40, 1, seed=1)
    kinds = {d.kind for h in cohort.homes for d in h.devices}
    # `climate` supersedes `temperature` in cohorts; the two switch kinds are recorded homes'
    # sensors (a cohort has a water meter and power plugs).
    assert kinds == set(CATALOGUE) - {"temperature", "flush_sensor", "appliance_switch"}


def test_persona_wake_times_follow_the_persona() -> None:
    cohort = Cohort(3, 70, seed=2, incidents_per_home_day=0, faults_per_home_day=0)
    for home in cohort.homes:
        p = home.persona
        bed = home.device("bed_mat")
        assert bed is not None
        wakes: list[float] = []
        day_of: dict[int, list[Reading]] = defaultdict(list)
        for r in cohort.home_readings(home.home_id):
            if r.device_id == bed.device_id and r.metric == "occupied":
                day_of[(r.ts - cohort.start).days].append(r)
        for day, rs in day_of.items():
            noon = cohort.start + timedelta(days=day, hours=12)
            offs = [r for r in rs if r.value == 0.0 and r.ts < noon]
            if day > 0 and offs:  # the last time the elder left the bed before noon
                last = offs[-1].ts - (cohort.start + timedelta(days=day))
                wakes.append(last.total_seconds() / 3600)
        assert len(wakes) >= 65
        lie_in = p.weekend_lie_in_min / 60
        expected_mean = p.wake_h + lie_in * 2 / 7
        expected_sd = math.sqrt((p.wake_sd_min / 60) ** 2 + lie_in**2 * (2 / 7) * (5 / 7))
        assert statistics.fmean(wakes) == pytest.approx(expected_mean, abs=0.2)
        assert statistics.stdev(wakes) == pytest.approx(expected_sd, rel=0.35)


def test_staff_visit_about_three_times_a_week_and_open_the_door() -> None:
    cohort = Cohort(4, 56, seed=8, incidents_per_home_day=0, faults_per_home_day=0)
    for home in cohort.homes:
        door = home.device("door_contact", "hall")
        assert door is not None
        opens = [
            r.ts
            for r in cohort.home_readings(home.home_id)
            if r.device_id == door.device_id and r.value == 1.0 and r.metric == "open"
        ]
        per_week = [0] * 8
        for day in range(56):
            for v in cohort.plan(home.home_id, day).visits:
                if v.who == "staff":
                    per_week[day // 7] += 1
                    start = datetime.fromtimestamp(v.start, cohort.start.tzinfo)
                    # the worker is let in through the entry door
                    assert any(abs(o - start) < timedelta(milliseconds=1) for o in opens)
        assert all(2 <= n <= 3 for n in per_week), per_week
        assert statistics.fmean(per_week) >= 2.8


def test_night_bathroom_visits_follow_the_persona() -> None:
    cohort = Cohort(3, 90, seed=4, incidents_per_home_day=0, faults_per_home_day=0)
    for home in cohort.homes:
        counts = []
        for day in range(90):
            plan = cohort.plan(home.home_id, day)
            night = [s for s in plan.segments if s.start >= plan.bed]
            counts.append(sum(1 for s in night if s.place == "bathroom"))
        mean = home.persona.night_bathroom_mean
        # Poisson with visits closer than 30 min merged: a little below the mean.
        assert statistics.fmean(counts) == pytest.approx(mean, abs=0.25 + 0.2 * mean)
        assert max(counts) >= 1


def test_incident_free_time_is_free_of_incident_like_behaviour(
    quiet: tuple[Cohort, list[Reading]],
) -> None:
    cohort, readings = quiet
    assert cohort.ground_truth() == []
    for r in readings:
        assert r.metric not in ("press", "cancel", "fall")
        if r.metric in ("smoke", "gas", "co"):
            assert r.value == 0.0
        if r.metric == "temperature":
            assert 17.0 <= r.value <= 28.5, r
        if r.metric == "heart_rate":
            assert 40 <= r.value <= 110, r
        if r.metric == "spo2":
            assert r.value >= 92, r
        if r.metric == "battery":
            assert r.value >= LOW_BATTERY_PERCENT, r
    for home_id, rs in by_home(readings).items():
        home = next(h for h in cohort.homes if h.home_id == home_id)
        door = home.device("door_contact", "hall")
        assert door is not None
        beats: dict[str, list[datetime]] = defaultdict(list)
        for r in rs:
            if r.metric == "heartbeat":
                beats[r.device_id].append(r.ts)
        for d in home.devices:  # no device is silent past its heartbeat
            gaps = [b - a for a, b in itertools.pairwise(beats[d.device_id])]
            assert max(gaps) <= timedelta(seconds=CATALOGUE[d.kind].heartbeat_s + 1)
        for day in range(cohort.days):
            plan = cohort.plan(home_id, day)
            for s in plan.segments:
                if s.place == "bathroom":
                    assert s.end - s.start < 30 * 60
            night = between(
                rs,
                datetime.fromtimestamp(plan.bed + 300, cohort.start.tzinfo),
                datetime.fromtimestamp(plan.next_wake - 300, cohort.start.tzinfo),
            )
            assert not [r for r in night if r.device_id == door.device_id and r.metric == "open"]


def test_ground_truth_is_what_the_devices_show(eventful: tuple[Cohort, list[Reading]]) -> None:
    cohort, readings = eventful
    truth = cohort.ground_truth()
    seen = {i.kind for i in truth}
    assert seen == set(BEHAVIOUR_INCIDENTS) | set(FAULT_INCIDENTS), seen
    homes = by_home(readings)
    devices = {d.device_id: d for h in cohort.homes for d in h.devices}
    for inc in truth:
        assert set(inc.expected_alerts) <= ALERT_KINDS
        assert inc.expected_alerts
        assert inc.end is not None
        assert inc.end > inc.start
        rs = homes[inc.home_id]
        during = between(rs, inc.start + _MIN, inc.end)

        def at(metric: str, value: float, when: datetime, within: float = 5.0) -> list[Reading]:
            return [
                r
                for r in rs  # noqa: B023
                if r.metric == metric
                and r.value == value
                and abs((r.ts - when).total_seconds()) <= within
            ]

        if inc.kind in ("fall", "collapse", "not_up"):
            active = [
                r
                for r in during
                if (r.value > 0 and r.metric in ("motion", "open", "flow", "press"))
                or (r.metric == "occupied" and r.value == 0 and inc.kind == "not_up")
            ]
            assert not active, (inc, active[:3])
            if "fall" in inc.expected_alerts:
                falls = at("fall", 1.0, inc.start, 5.0)
                assert {r.device_id for r in falls} == set(inc.detail["fall_devices"])
            # The helper arrives through the entry door.
            assert at("open", 1.0, inc.end, 1.0), inc
        elif inc.kind in ("gas", "co", "smoke"):
            assert at(inc.kind, 1.0, inc.start, 0.01)
            assert at(inc.kind, 0.0, inc.end, 0.01)
            assert not [r for r in during if r.metric == inc.kind and r.value == 0.0]
        elif inc.kind == "sos":
            [press] = at("press", 1.0, inc.start, 0.01)
            assert press.device_id == inc.detail["device_id"]
        elif inc.kind == "night_wandering":
            door = f"{inc.home_id}-door"
            assert [
                r for r in rs if r.device_id == door and inc.start <= r.ts < inc.start + 3 * _MIN
            ]
            inside = [r for r in between(rs, inc.start + 5 * _MIN, inc.end) if r.metric == "motion"]
            assert not [r for r in inside if r.value == 1.0]
        elif inc.kind == "out_of_bed_night":
            assert at("occupied", 0.0, inc.start, 10.0)
            bed = f"{inc.home_id}-bed"
            assert not [
                r for r in during if r.device_id == bed and r.metric == "occupied" and r.value
            ]
        elif inc.kind == "bathroom_too_long":
            bath = f"{inc.home_id}-pir-bath"
            motion = [r for r in during if r.metric == "motion" and r.value == 1.0]
            assert motion, inc
            assert all(r.device_id == bath for r in motion), inc
        elif inc.kind in ("indoor_cold", "indoor_heat"):
            temps = [r.value for r in during if r.metric == "temperature"]
            assert temps
            assert (min(temps) < 15) if inc.kind == "indoor_cold" else (max(temps) > 30)
        elif inc.kind == "vitals":
            signs = [r for r in during if r.metric in ("heart_rate", "spo2")]
            assert any(
                (r.metric == "heart_rate" and r.value > 115)
                or (r.metric == "spo2" and r.value < 90)
                for r in signs
            ), inc
        elif inc.kind == "device_silent":
            device = inc.detail["device_id"]
            assert not [r for r in between(rs, inc.start, inc.end) if r.device_id == device]
            assert [r for r in rs if r.device_id == device and r.ts < inc.start]
        elif inc.kind == "hub_offline":
            silent = [
                r
                for r in between(rs, inc.start, inc.end)
                if CATALOGUE[r.kind].link is Link.HUB or r.kind == "hub"
            ]
            assert not silent
        elif inc.kind == "low_battery":
            device = inc.detail["device_id"]
            levels = [
                (r.ts, r.value) for r in rs if r.device_id == device and r.metric == "battery"
            ]
            assert all(v >= LOW_BATTERY_PERCENT for ts, v in levels if ts < inc.start)
            assert all(v < LOW_BATTERY_PERCENT for ts, v in levels if inc.start <= ts < inc.end)
            assert devices[device].kind in CATALOGUE
            assert CATALOGUE[devices[device].kind].battery


def test_no_alarms_outside_incidents(eventful: tuple[Cohort, list[Reading]]) -> None:
    cohort, readings = eventful
    windows: dict[str, list[Incident]] = defaultdict(list)
    for inc in cohort.ground_truth():
        windows[inc.home_id].append(inc)
    for r in readings:
        alarm = r.metric in ("press", "fall") or (r.metric in ("smoke", "gas", "co") and r.value)
        if alarm:
            assert any(
                i.start <= r.ts <= i.start + timedelta(seconds=5) for i in windows[r.home_id]
            ), r


def test_ground_truth_file_round_trips(tmp_path: Path) -> None:
    cohort = Cohort(10, 10, seed=3, incidents_per_home_day=0.2)
    path = tmp_path / "truth.jsonl"
    cohort.write_ground_truth(path)
    truth = cohort.ground_truth()
    assert truth
    assert read_ground_truth(path) == truth
    assert len(path.read_text().splitlines()) == len(truth)


def test_incident_rate_is_roughly_as_asked() -> None:
    cohort = Cohort(100, 20, seed=9, incidents_per_home_day=0.05, faults_per_home_day=0)
    n = len(cohort.ground_truth())
    assert 60 <= n <= 140  # 100 expected; days next to an incident stay free


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="negative"):
        Cohort(-1, 3, seed=1)
    with pytest.raises(ValueError, match="timezone"):
        Cohort(1, 3, seed=1, start=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="prefix"):
        Cohort(1, 1, seed=1, home_prefix="Bad Prefix")
