"""The detector state round trip (alerts.detect.state, issue #14): stopped at any instant, saved as
the alerts stage saves it (baselines, `export_state` and the device watch, through msgpack),
restored into a fresh detector set, the run goes on to raise exactly the signals (kind, home,
event time) of the run that never stopped. The integration test (tests/integration/
test_restart.py) does it with a real process killed on real Mosquitto and PostgreSQL; this one
covers many instants and contexts in-process, and `export_state` of a subset of homes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import msgspec
import pytest

from alerts.detect.detectors import DetectorSet, default_detectors
from alerts.detect.learned import LearnedDetector
from alerts.detect.learned_homes import ASLEEP, CONTEXTS, HOME, OUT, SEATED
from alerts.detect.state import encode
from alerts.detect.technical import DeviceWatch
from alerts.model import Signal
from devices.payload import Reading
from tests.unit.test_context_bounds import (
    ASLEEP_AT,
    BOUND,
    DEAD,
    DEAD_AT,
    NO_BED,
    NO_OUTING,
    OUT_EVENING,
    OUT_MORNING,
    SEATED_AT,
    UP_AND_ABOUT,
    H,
    Home,
    Plan,
    S,
    local,
)

STEP = timedelta(minutes=1)
_decode = msgspec.msgpack.Decoder().decode


def _feed(
    det: DetectorSet, readings: Iterable[Reading], tick: datetime, until: datetime
) -> tuple[list[Signal], datetime]:
    """As `run_offline`, on a tick grid that starts at `tick`: returns the signals and the
    next tick not yet run."""
    out: list[Signal] = []
    for r in readings:
        while tick <= r.ts:
            out += det.advance(tick)
            tick += STEP
        out += det.observe(r)
    while tick <= until:
        out += det.advance(tick)
        tick += STEP
    return out, tick


def _parts(det: DetectorSet) -> tuple[LearnedDetector, DeviceWatch]:
    learned, watch = det.find(LearnedDetector), det.find(DeviceWatch)
    assert learned is not None
    assert watch is not None
    return learned, watch


def _key(signals: list[Signal]) -> list[tuple[str, str, datetime]]:
    return [(s.home_id, s.kind, s.event_at) for s in signals]


def _split_run(
    home: Home,
    plans: dict[int, Plan],
    collapse: datetime,
    split: datetime,
    whole_state: bool = True,
) -> tuple[list[Signal], list[Signal], int]:
    """The same readings (a collapse at `collapse`: activity after it dropped) run once
    straight through and once stopped at `split`, saved, restored (the baselines only unless
    `whole_state`) and run on. Returns the signals after `split` of both runs and the
    context at the split."""
    end = collapse + BOUND
    stream = [
        x
        for x in home.stream(plans, end)
        if x.ts <= end and (x.ts <= collapse or x.metric in ("battery", "heartbeat"))
    ]
    first = stream[0].ts + STEP
    straight, _ = _feed(default_detectors(home.layout()), stream, first, end)

    before = default_detectors(home.layout())
    _feed(before, [x for x in stream if x.ts <= split], first, split)
    learned, watch = _parts(before)
    ctx = int(learned.ctx[learned.home(H)])
    baselines = learned.export()
    saved = {h: _decode(encode(s)) for h, s in learned.export_state().items()}
    watch_saved = _decode(encode(watch.export_state()))

    after = default_detectors(home.layout())
    learned2, watch2 = _parts(after)
    learned2.restore(baselines, split)
    if whole_state:
        assert learned2.restore_state(saved, split) == 1
        assert watch2.restore_state(watch_saved, split) > 0
    # The tick grid goes on where the first process stopped (the next minute after `split`).
    nxt = first + STEP * ((split - first) // STEP + 1)
    resumed, _ = _feed(after, [x for x in stream if x.ts > split], nxt, end)
    return [s for s in straight if s.event_at > split], resumed, ctx


_MIN = timedelta(minutes=1)
CASES: dict[str, tuple[Home, dict[int, Plan], datetime, datetime, int | None]] = {
    # name: (home, plans, collapse, split, context at the split; None: not asserted)
    "up and about": (Home(), {S: NO_OUTING}, UP_AND_ABOUT, UP_AND_ABOUT + 15 * _MIN, HOME),
    "seated": (Home(), {S: NO_OUTING}, SEATED_AT, SEATED_AT + 30 * _MIN, SEATED),
    "asleep": (Home(), {S: NO_OUTING}, ASLEEP_AT, ASLEEP_AT + 120 * _MIN, ASLEEP),
    "out by day": (Home(), {S: OUT_MORNING}, local(S, 9.01), local(S, 13), OUT),
    "out in the evening": (Home(), {S: OUT_EVENING}, local(S, 19.01), local(S, 21), OUT),
    "no bedroom sensor": (NO_BED, {S + 1: NO_OUTING}, local(S, 23), local(S + 1, 1), None),
    "a dead sensor": (DEAD, {}, DEAD_AT, DEAD_AT + 30 * _MIN, None),
}  # fmt: skip


@pytest.mark.parametrize(
    ("home", "plans", "collapse", "split", "ctx"), CASES.values(), ids=CASES.keys()
)
def test_restored_run_raises_the_same_signals(
    home: Home, plans: dict[int, Plan], collapse: datetime, split: datetime, ctx: int | None
) -> None:
    straight, resumed, at_split = _split_run(home, plans, collapse, split)
    if ctx is not None:
        assert at_split == ctx, f"the split is not in the context meant: {CONTEXTS[at_split]}"
    # The collapse is alerted after the split in the run that never stopped (else the case
    # would compare nothing), and the restored run raises exactly the same.
    assert any(s.kind in ("inactivity", "not_up", "not_back") for s in straight), _key(straight)
    assert _key(resumed) == _key(straight)


def test_a_fresh_detector_without_the_state_differs() -> None:
    """Control: without the saved state (baselines only, as before issue #14) the silence in
    progress is forgotten, so the comparison above can fail."""
    straight, resumed, _ = _split_run(
        Home(), {S: OUT_MORNING}, local(S, 9.01), local(S, 13), whole_state=False
    )
    assert _key(resumed) != _key(straight)


def test_export_of_some_homes_is_their_part_of_the_whole() -> None:
    """`export_state(ids)` (the periodic save of the changed homes) gives, for those homes,
    what the full export gives."""
    home = Home()
    end = local(S, 12)
    det = default_detectors(home.layout())
    _feed(det, [x for x in home.stream({}, end) if x.ts <= end], local(0, 0), end)
    learned, _ = _parts(det)
    other = learned.home("another-home")  # a second home, never heard
    assert other >= 0
    whole = learned.export_state()
    assert set(whole) == {H, "another-home"}
    # Compared as saved (msgpack bytes): the states hold nan, which is unequal to itself.
    assert {h: encode(v) for h, v in learned.export_state([H]).items()} == {H: encode(whole[H])}
    some = learned.export_state(["another-home", "unknown"])
    assert {h: encode(v) for h, v in some.items()} == {
        "another-home": encode(whole["another-home"])
    }
    assert encode(whole[H]) != encode(whole["another-home"])
    assert learned.export_state([]) == {}
