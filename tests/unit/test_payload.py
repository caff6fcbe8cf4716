"""Unit tests for the payload contract and its decoder (devices.payload)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.catalogue import CATALOGUE, MetricSpec, ValueType
from devices.payload import (
    MAX_BATCH,
    MAX_BOOT,
    MAX_PAYLOAD_BYTES,
    MAX_SEQ,
    Limits,
    Reading,
    Reason,
    Rejection,
    decode,
    encode,
)
from devices.registry import DeviceRecord, Registry

NOW = datetime(2026, 11, 23, 13, 0, 0, tzinfo=UTC)
LIMITS = Limits()
HOME = "h01"
OTHER_HOME = "h02"
# One registered device per catalogue kind, all in HOME; plus one device of another home.
DEVICE_OF_KIND = {name: f"dev-{name.replace('_', '-')}" for name in CATALOGUE}
FOREIGN_DEVICE = "dev-foreign"
REGISTRY = Registry(
    [DeviceRecord(device_id, HOME, kind) for kind, device_id in DEVICE_OF_KIND.items()]
    + [DeviceRecord(FOREIGN_DEVICE, OTHER_HOME, "pir_motion")]
)
MS = timedelta(milliseconds=1)


def readings_topic(device_id: str, home_id: str = HOME) -> str:
    return f"eldercare/{home_id}/{device_id}/readings"


TEMP = readings_topic(DEVICE_OF_KIND["temperature"])
MOTION = readings_topic(DEVICE_OF_KIND["pir_motion"])
SOS = readings_topic(DEVICE_OF_KIND["sos_button"])
NOW_S = NOW.timestamp()


def dumps(doc: object) -> bytes:
    return json.dumps(doc).encode()


def run(topic: str, doc: object) -> list[Reading] | Rejection:
    raw = doc if isinstance(doc, bytes) else dumps(doc)
    return decode(topic, raw, REGISTRY, NOW, LIMITS)


def rejected(result: list[Reading] | Rejection) -> Reason:
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    assert isinstance(result.reason, Reason)
    assert result.detail
    return result.reason


def accepted(result: list[Reading] | Rejection) -> list[Reading]:
    assert isinstance(result, list), f"expected readings, got {result!r}"
    return result


def assert_same(got: Reading, expected: Reading) -> None:
    assert got.ts.utcoffset() == timedelta(0)
    assert abs(got.ts - expected.ts) <= MS
    assert dataclasses.replace(got, ts=expected.ts) == expected


# --------------------------------------------------------------------------- strategies


def values_for(spec: MetricSpec) -> st.SearchStrategy[float]:
    if spec.value_type is ValueType.CONTINUOUS:
        return st.floats(spec.minimum, spec.maximum, allow_nan=False)
    if spec.value_type is ValueType.BINARY:
        return st.sampled_from([0.0, 1.0])
    return st.just(1.0)


timestamps = st.integers(
    -int(LIMITS.max_age / timedelta(microseconds=1)),
    int(LIMITS.max_future / timedelta(microseconds=1)),
).map(lambda us: NOW + timedelta(microseconds=us))

kinds = st.sampled_from(sorted(CATALOGUE))
boots = st.integers(0, MAX_BOOT)
seqs = st.integers(0, MAX_SEQ)


@st.composite
def one_reading(
    draw: st.DrawFn, kind: str, boot: int | None = None, seq: int | None = None
) -> Reading:
    spec = draw(st.sampled_from(CATALOGUE[kind].all_metrics))
    return Reading(
        home_id=HOME,
        device_id=DEVICE_OF_KIND[kind],
        kind=kind,
        boot=draw(boots) if boot is None else boot,
        seq=draw(seqs) if seq is None else seq,
        ts=draw(timestamps),
        metric=spec.name,
        value=draw(values_for(spec)),
    )


@st.composite
def valid_reading(draw: st.DrawFn) -> Reading:
    return draw(one_reading(draw(kinds)))


@st.composite
def valid_batch(draw: st.DrawFn) -> list[Reading]:
    kind = draw(kinds)
    boot = draw(boots)
    size = draw(st.integers(2, 20))
    return [draw(one_reading(kind, boot=boot)) for _ in range(size)]


offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


def rfc3339(ts: datetime, tz: timezone, zulu: bool) -> str:
    text = ts.astimezone(tz).isoformat()
    return text.replace("+00:00", "Z") if zulu else text


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Field strategies of the right type but any value, and "wild" ones of any type, so that
# generated envelopes reach every check of the decoder (and sometimes pass all of them).
seq_like = st.integers(-3, 40) | st.integers(MAX_SEQ - 2, 2**64 + 2)
boot_like = st.integers(-3, 3) | st.integers(MAX_BOOT - 2, MAX_BOOT + 2)
ts_like = (
    timestamps.map(lambda t: t.timestamp())
    | timestamps.map(lambda t: t.isoformat())
    | st.floats(-1e12, 1e12)
    | st.datetimes(timezones=st.just(UTC)).map(lambda t: t.isoformat())
    | st.datetimes().map(lambda t: t.isoformat())
    | st.text(max_size=30)
)
value_like = st.sampled_from([0, 1, 0.0, 1.0, True, False, 0.5, -1]) | st.floats(-100.0, 100.0)
metric_like = st.sampled_from(
    ["press", "cancel", "motion", "temperature", "open", "occupied", "nope", None]
)


def wild(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy | json_values


def reading_dicts(w: bool) -> st.SearchStrategy[dict[str, Any]]:
    def f(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return wild(s) if w else s

    return st.fixed_dictionaries(
        {"seq": f(seq_like), "ts": f(ts_like), "value": f(value_like)},
        optional={"metric": f(metric_like), "boot": f(boot_like)},
    )


def batch_dicts(w: bool) -> st.SearchStrategy[dict[str, Any]]:
    items = st.lists(
        reading_dicts(w).map(lambda d: {k: v for k, v in d.items() if k != "boot"}), max_size=4
    )
    return st.fixed_dictionaries(
        {"readings": wild(items) if w else items},
        optional={"boot": wild(boot_like) if w else boot_like},
    )


envelope_like = (
    reading_dicts(False)
    | batch_dicts(False)
    | reading_dicts(True)
    | batch_dicts(True)
    | st.fixed_dictionaries(
        {},
        optional={
            "boot": wild(boot_like),
            "seq": wild(seq_like),
            "ts": wild(ts_like),
            "value": wild(value_like),
            "metric": wild(metric_like),
            "readings": st.lists(reading_dicts(True), max_size=3) | json_values,
        },
    )
)
topic_levels = st.sampled_from(
    [
        "eldercare",
        HOME,
        OTHER_HOME,
        *DEVICE_OF_KIND.values(),
        FOREIGN_DEVICE,
        "readings",
        "status",
        "+",
        "#",
        "",
    ]
) | st.text(max_size=10)
any_topic = st.text(max_size=60) | st.lists(topic_levels, max_size=6).map("/".join)
registered_topic = st.sampled_from(
    [readings_topic(d) for d in DEVICE_OF_KIND.values()]
    + [readings_topic(FOREIGN_DEVICE, OTHER_HOME)]
)


def check_contract(topic: str, result: list[Reading] | Rejection) -> None:
    """What the decoder promises for any input: a typed answer, and only valid readings."""
    if isinstance(result, Rejection):
        assert isinstance(result.reason, Reason)
        assert isinstance(result.detail, str)
        return
    assert isinstance(result, list)
    assert 1 <= len(result) <= MAX_BATCH
    for r in result:
        assert isinstance(r, Reading)
        assert topic == readings_topic(r.device_id, r.home_id)
        record = REGISTRY.get(r.device_id)
        assert record is not None
        assert (record.home_id, record.kind) == (r.home_id, r.kind)
        spec = CATALOGUE[r.kind].metric(r.metric)
        assert spec is not None
        assert spec.minimum <= r.value <= spec.maximum
        if spec.value_type is not ValueType.CONTINUOUS:
            assert r.value in (0.0, 1.0)
        assert NOW - LIMITS.max_age <= r.ts <= NOW + LIMITS.max_future
        assert r.ts.utcoffset() == timedelta(0)
        assert 0 <= r.boot <= MAX_BOOT
        assert 0 <= r.seq <= MAX_SEQ


# --------------------------------------------------------------------------- round trips


@given(valid_reading())
def test_every_valid_reading_round_trips(reading: Reading) -> None:
    result = accepted(decode(readings_topic(reading.device_id), encode([reading]), REGISTRY, NOW))
    assert len(result) == 1
    assert_same(result[0], reading)


@given(valid_batch())
def test_every_valid_batch_round_trips(batch: list[Reading]) -> None:
    raw = encode(batch)
    assert b'"readings"' in raw
    result = accepted(decode(readings_topic(batch[0].device_id), raw, REGISTRY, NOW))
    assert len(result) == len(batch)
    for got, expected in zip(result, batch, strict=True):
        assert_same(got, expected)


@given(valid_reading(), offsets, st.booleans(), st.booleans())
def test_rfc3339_timestamps_with_any_offset_round_trip(
    reading: Reading, tz: timezone, zulu: bool, with_metric: bool
) -> None:
    doc: dict[str, Any] = {
        "boot": reading.boot,
        "seq": reading.seq,
        "ts": rfc3339(reading.ts, tz, zulu and tz.utcoffset(None) == timedelta(0)),
        "value": reading.value,
    }
    spec_kind = CATALOGUE[reading.kind]
    if with_metric or spec_kind.metric(None) != spec_kind.metric(reading.metric):
        doc["metric"] = reading.metric
    result = accepted(run(readings_topic(reading.device_id), doc))
    assert len(result) == 1
    assert_same(result[0], reading)


@given(valid_batch(), offsets)
def test_batches_with_rfc3339_timestamps_round_trip(batch: list[Reading], tz: timezone) -> None:
    doc = {
        "boot": batch[0].boot,
        "readings": [
            {"seq": r.seq, "ts": rfc3339(r.ts, tz, False), "metric": r.metric, "value": r.value}
            for r in batch
        ],
    }
    result = accepted(run(readings_topic(batch[0].device_id), doc))
    for got, expected in zip(result, batch, strict=True):
        assert_same(got, expected)


def test_boot_defaults_to_zero_and_metric_to_the_only_one() -> None:
    [r] = accepted(run(TEMP, {"seq": 7, "ts": NOW_S, "value": 21.5}))
    assert r == Reading(
        HOME, DEVICE_OF_KIND["temperature"], "temperature", 0, 7, NOW, "temperature", 21.5
    )


def test_integer_unix_seconds_are_accepted() -> None:
    [r] = accepted(run(MOTION, {"seq": 1, "ts": int(NOW_S) - 60, "value": 1}))
    assert r.ts == NOW - timedelta(minutes=1)


def test_encode_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing to encode"):
        encode([])


# --------------------------------------------------------------------------- never raises


@settings(max_examples=300)
@given(any_topic | registered_topic, st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(topic: str, raw: bytes) -> None:
    check_contract(topic, decode(topic, raw, REGISTRY, NOW, LIMITS))


@settings(max_examples=300)
@given(registered_topic, json_values)
def test_arbitrary_json_values_never_raise(topic: str, doc: Any) -> None:
    check_contract(topic, decode(topic, msgspec.json.encode(doc), REGISTRY, NOW, LIMITS))


@settings(max_examples=500)
@given(registered_topic, envelope_like)
def test_arbitrary_envelopes_never_raise(topic: str, doc: dict[str, Any]) -> None:
    check_contract(topic, decode(topic, msgspec.json.encode(doc), REGISTRY, NOW, LIMITS))


@settings(max_examples=300)
@given(any_topic, st.sampled_from([b'{"seq":1,"ts":1795438800,"value":1}', b"{}", b""]))
def test_arbitrary_topics_never_raise(topic: str, raw: bytes) -> None:
    check_contract(topic, decode(topic, raw, REGISTRY, NOW, LIMITS))


# --------------------------------------------------------------------------- each reason

GOOD = {"seq": 1, "ts": NOW_S, "value": 20.0}


@pytest.mark.parametrize(
    "topic",
    [
        f"other/{HOME}/{DEVICE_OF_KIND['temperature']}/readings",
        f"eldercare/{HOME}/{DEVICE_OF_KIND['temperature']}/status",
        f"eldercare/{HOME}/{DEVICE_OF_KIND['temperature']}/commands",
        f"eldercare/{HOME}/{DEVICE_OF_KIND['temperature']}/readings/extra",
        f"eldercare/{HOME}/{DEVICE_OF_KIND['temperature']}",
        f"eldercare/{HOME}\n/{DEVICE_OF_KIND['temperature']}/readings",
        "",
    ],
)
def test_bad_topic(topic: str) -> None:
    assert rejected(run(topic, GOOD)) is Reason.BAD_TOPIC


def test_oversized_payload() -> None:
    raw = dumps({**GOOD, "pad": "x" * MAX_PAYLOAD_BYTES})
    assert len(raw) > MAX_PAYLOAD_BYTES
    assert rejected(run(TEMP, raw)) is Reason.OVERSIZED


def test_payload_limit_is_configurable_and_inclusive() -> None:
    raw = dumps(GOOD)
    exact = Limits(max_payload_bytes=len(raw))
    assert isinstance(decode(TEMP, raw, REGISTRY, NOW, exact), list)
    smaller = Limits(max_payload_bytes=len(raw) - 1)
    assert rejected(decode(TEMP, raw, REGISTRY, NOW, smaller)) is Reason.OVERSIZED


def test_oversized_batch() -> None:
    items = [{"seq": i, "ts": NOW_S, "value": 20} for i in range(MAX_BATCH + 1)]
    raw = dumps({"readings": items})
    assert len(raw) <= MAX_PAYLOAD_BYTES
    assert rejected(run(TEMP, raw)) is Reason.OVERSIZED
    ok = accepted(run(TEMP, {"readings": items[:MAX_BATCH]}))
    assert len(ok) == MAX_BATCH


@pytest.mark.parametrize("raw", [b"", b"{", b"{not json}", b"\xff\xfe\x00", b'{"seq": 1,}'])
def test_malformed(raw: bytes) -> None:
    assert rejected(run(TEMP, raw)) is Reason.MALFORMED


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param({"ts": NOW_S, "value": 20}, id="missing seq"),
        pytest.param({"seq": 1, "value": 20}, id="missing ts"),
        pytest.param({"seq": 1, "ts": NOW_S}, id="missing value"),
        pytest.param({"seq": "1", "ts": NOW_S, "value": 20}, id="seq as string"),
        pytest.param({"seq": 1.5, "ts": NOW_S, "value": 20}, id="seq as float"),
        pytest.param({"seq": True, "ts": NOW_S, "value": 20}, id="seq as bool"),
        pytest.param({"seq": 1, "ts": NOW_S, "value": "20"}, id="value as string"),
        pytest.param({"seq": 1, "ts": [NOW_S], "value": 20}, id="ts as list"),
        pytest.param({"boot": "3", **GOOD}, id="boot as string"),
        pytest.param({"metric": 3, **GOOD}, id="metric as number"),
        pytest.param({**GOOD, "readings": [GOOD]}, id="both single and readings"),
        pytest.param({"value": 20, "readings": [GOOD]}, id="value beside readings"),
        pytest.param({"readings": []}, id="empty readings"),
        pytest.param({"readings": {"seq": 1}}, id="readings not a list"),
        pytest.param({"readings": [{"ts": NOW_S, "value": 20}]}, id="batch item without seq"),
        pytest.param({}, id="empty object"),
        pytest.param([GOOD], id="top-level list"),
        pytest.param(None, id="null"),
        pytest.param(20, id="bare number"),
    ],
)
def test_schema(doc: object) -> None:
    assert rejected(run(TEMP, doc)) is Reason.SCHEMA


def test_unknown_device() -> None:
    assert rejected(run(readings_topic("dev-ghost"), GOOD)) is Reason.UNKNOWN_DEVICE


def test_device_of_uncatalogued_kind_is_unknown() -> None:
    registry = Registry([DeviceRecord("dev-x", HOME, "toaster")])
    result = decode(readings_topic("dev-x"), dumps(GOOD), registry, NOW)
    assert rejected(result) is Reason.UNKNOWN_DEVICE


def test_wrong_home() -> None:
    """A device registered to h02 may not publish on a topic of h01."""
    doc = {"seq": 1, "ts": NOW_S, "value": 1}
    assert isinstance(run(readings_topic(FOREIGN_DEVICE, OTHER_HOME), doc), list)
    assert rejected(run(readings_topic(FOREIGN_DEVICE, HOME), doc)) is Reason.WRONG_HOME


@pytest.mark.parametrize(
    ("topic", "doc"),
    [
        pytest.param(TEMP, {**GOOD, "metric": "humidity"}, id="no such metric"),
        pytest.param(MOTION, {**GOOD, "value": 1, "metric": "press"}, id="metric of another kind"),
        pytest.param(SOS, {"seq": 1, "ts": NOW_S, "value": 1}, id="multi-metric kind unnamed"),
        pytest.param(
            SOS,
            {
                "readings": [
                    {"seq": 1, "ts": NOW_S, "value": 1, "metric": "press"},
                    {"seq": 2, "ts": NOW_S, "value": 1},
                ]
            },
            id="unnamed metric inside a batch",
        ),
    ],
)
def test_unknown_metric(topic: str, doc: dict[str, Any]) -> None:
    assert rejected(run(topic, doc)) is Reason.UNKNOWN_METRIC


@pytest.mark.parametrize("metric", ["press", "cancel"])
def test_multi_metric_kind_accepts_each_named_metric(metric: str) -> None:
    [r] = accepted(run(SOS, {"seq": 1, "ts": NOW_S, "value": 1, "metric": metric}))
    assert (r.kind, r.metric, r.value) == ("sos_button", metric, 1.0)


@pytest.mark.parametrize(
    ("topic", "doc"),
    [
        pytest.param(TEMP, {**GOOD, "value": 200}, id="temperature 200"),
        pytest.param(TEMP, {**GOOD, "value": -40.001}, id="temperature below minimum"),
        pytest.param(MOTION, {**GOOD, "value": 0.5}, id="motion 0.5"),
        pytest.param(MOTION, {**GOOD, "value": 2}, id="motion 2"),
        pytest.param(MOTION, {**GOOD, "value": -1}, id="motion -1"),
        pytest.param(SOS, {**GOOD, "value": 0, "metric": "press"}, id="press 0"),
        pytest.param(SOS, {**GOOD, "value": False, "metric": "press"}, id="press false"),
        pytest.param(TEMP, {**GOOD, "seq": -1}, id="negative seq"),
        pytest.param(TEMP, {**GOOD, "seq": MAX_SEQ + 1}, id="seq too large"),
        pytest.param(TEMP, {**GOOD, "seq": 2**64}, id="seq beyond 64 bits"),
        pytest.param(TEMP, {**GOOD, "boot": -1}, id="negative boot"),
        pytest.param(TEMP, {**GOOD, "boot": MAX_BOOT + 1}, id="boot too large"),
        pytest.param(TEMP, {"boot": -1, "readings": [GOOD]}, id="negative boot in batch"),
        pytest.param(
            TEMP, {"readings": [GOOD, {**GOOD, "seq": 2, "value": 90}]}, id="one bad item in batch"
        ),
    ],
)
def test_out_of_range(topic: str, doc: dict[str, Any]) -> None:
    assert rejected(run(topic, doc)) is Reason.OUT_OF_RANGE


@pytest.mark.parametrize(
    ("topic", "doc"),
    [
        pytest.param(TEMP, {**GOOD, "value": -40}, id="temperature minimum"),
        pytest.param(TEMP, {**GOOD, "value": 85}, id="temperature maximum"),
        pytest.param(TEMP, {**GOOD, "seq": MAX_SEQ, "boot": MAX_BOOT}, id="largest seq and boot"),
        pytest.param(TEMP, {**GOOD, "seq": 0, "boot": 0}, id="zero seq and boot"),
    ],
)
def test_range_limits_are_inclusive(topic: str, doc: dict[str, Any]) -> None:
    [r] = accepted(run(topic, doc))
    assert (r.seq, r.boot, r.value) == (doc["seq"], doc.get("boot", 0), float(doc["value"]))


def test_value_beyond_double_is_rejected_not_stored() -> None:
    """1e400 overflows a double. msgspec refuses it while parsing ("Number out of range"), so
    the reason is `schema`, not `out_of_range`: the decoder never sees an infinity."""
    raw = b'{"seq": 1, "ts": %d, "value": 1e400}' % int(NOW_S)
    result = run(TEMP, raw)
    assert rejected(result) is Reason.SCHEMA
    assert isinstance(result, Rejection)
    assert "out of range" in result.detail.lower()


@pytest.mark.parametrize(
    "ts",
    [
        pytest.param("2026-11-23T13:00:00", id="naive ISO string"),
        pytest.param("2026-11-23", id="date only"),
        pytest.param("yesterday", id="words"),
        pytest.param("", id="empty string"),
        pytest.param("1795438800", id="number in a string"),
        pytest.param("0001-01-01T00:00:00+01:00", id="before year 1 in UTC"),
        pytest.param("1999-12-31T23:59:59Z", id="before 2000"),
        pytest.param(0, id="epoch"),
        pytest.param(-1e300, id="hugely negative"),
        pytest.param(1e20, id="beyond datetime"),
    ],
)
def test_bad_timestamp(ts: object) -> None:
    assert rejected(run(TEMP, {**GOOD, "ts": ts})) is Reason.BAD_TIMESTAMP


def test_future_timestamp() -> None:
    edge = NOW + LIMITS.max_future
    assert isinstance(run(TEMP, {**GOOD, "ts": edge.timestamp()}), list)
    assert isinstance(run(TEMP, {**GOOD, "ts": edge.isoformat()}), list)
    later = (edge + MS).timestamp()
    assert rejected(run(TEMP, {**GOOD, "ts": later})) is Reason.FUTURE_TIMESTAMP
    next_day = "2026-11-24T13:00:00+00:00"
    assert rejected(run(TEMP, {**GOOD, "ts": next_day})) is Reason.FUTURE_TIMESTAMP


def test_offset_is_honoured_when_judging_the_future() -> None:
    """14:00+01:00 is 13:00 UTC (now); the same wall time in UTC is an hour ahead."""
    [r] = accepted(run(TEMP, {**GOOD, "ts": "2026-11-23T14:00:00+01:00"}))
    assert r.ts == NOW
    result = run(TEMP, {**GOOD, "ts": "2026-11-23T14:00:00+00:00"})
    assert rejected(result) is Reason.FUTURE_TIMESTAMP


def test_too_old() -> None:
    edge = NOW - LIMITS.max_age
    assert isinstance(run(TEMP, {**GOOD, "ts": edge.timestamp()}), list)
    earlier = (edge - MS).timestamp()
    assert rejected(run(TEMP, {**GOOD, "ts": earlier})) is Reason.TOO_OLD
    strict = Limits(max_age=timedelta(minutes=1))
    old = (NOW - timedelta(minutes=2)).timestamp()
    assert rejected(decode(TEMP, dumps({**GOOD, "ts": old}), REGISTRY, NOW, strict)) is (
        Reason.TOO_OLD
    )


@pytest.mark.parametrize("kind", ["pir_motion", "door_contact", "bed_mat"])
def test_json_booleans_are_accepted_for_binary_metrics(kind: str) -> None:
    topic = readings_topic(DEVICE_OF_KIND[kind])
    [on] = accepted(run(topic, {"seq": 1, "ts": NOW_S, "value": True}))
    [off] = accepted(run(topic, {"seq": 2, "ts": NOW_S, "value": False}))
    assert (on.value, off.value) == (1.0, 0.0)
    assert type(on.value) is float


def test_json_true_is_accepted_for_an_event_metric() -> None:
    [r] = accepted(run(SOS, {"seq": 1, "ts": NOW_S, "value": True, "metric": "press"}))
    assert r.value == 1.0
    assert type(r.value) is float


def test_unknown_fields_are_ignored() -> None:
    [r] = accepted(run(TEMP, {**GOOD, "battery": 87, "fw": "1.2.3"}))
    assert r.value == 20.0


def test_batch_shares_boot_and_keeps_order() -> None:
    doc = {
        "boot": 4,
        "readings": [
            {"seq": 10, "ts": NOW_S - 2, "value": 1},
            {"seq": 11, "ts": "2026-11-23T12:59:59Z", "value": 0, "metric": "motion"},
        ],
    }
    result = accepted(run(MOTION, doc))
    assert [(r.boot, r.seq, r.value, r.metric) for r in result] == [
        (4, 10, 1.0, "motion"),
        (4, 11, 0.0, "motion"),
    ]
    assert [r.ts for r in result] == [NOW - timedelta(seconds=2), NOW - timedelta(seconds=1)]


def test_json_true_is_not_a_temperature() -> None:
    assert rejected(run(TEMP, {**GOOD, "value": True})) is Reason.SCHEMA


@pytest.mark.parametrize("kind", sorted(CATALOGUE))
def test_every_kind_accepts_heartbeats_and_battery_only_when_it_has_one(kind: str) -> None:
    topic = readings_topic(DEVICE_OF_KIND[kind])
    [beat] = accepted(run(topic, {"seq": 1, "ts": NOW_S, "value": 1, "metric": "heartbeat"}))
    assert (beat.metric, beat.value) == ("heartbeat", 1.0)
    battery = run(topic, {"seq": 2, "ts": NOW_S, "value": 42.5, "metric": "battery"})
    if CATALOGUE[kind].battery:
        assert [r.value for r in accepted(battery)] == [42.5]
        too_much = run(topic, {"seq": 3, "ts": NOW_S, "value": 101, "metric": "battery"})
        assert rejected(too_much) is Reason.OUT_OF_RANGE
    else:
        assert rejected(battery) is Reason.UNKNOWN_METRIC


def test_catalogue_rows_are_consistent() -> None:
    issue_kinds = {
        "sos_button", "sos_pendant", "pir_motion", "door_contact", "cupboard_contact", "bed_mat",
        "chair_mat", "radar", "water_meter", "power_plug", "smoke_detector", "gas_co_detector",
        "climate", "wearable", "hub",
    }  # fmt: skip
    assert issue_kinds <= set(CATALOGUE)
    for name, spec_kind in CATALOGUE.items():
        assert spec_kind.name == name
        assert spec_kind.heartbeat_s > 0
        assert spec_kind.battery == (spec_kind.battery_days > 0), name
        names = [m.name for m in spec_kind.all_metrics]
        assert len(names) == len(set(names)), name
        for m in spec_kind.all_metrics:
            assert m.minimum <= m.maximum
            if m.value_type is ValueType.EVENT:
                assert (m.minimum, m.maximum) == (1.0, 1.0)
