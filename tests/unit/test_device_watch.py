"""The device watch seeded from the registry, told by devices' status (last will), carried
across a restart; and wellbeing rules that do not read a dead meter as an elder's doing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import msgspec

from alerts.config import AlertSettings
from alerts.detect.detectors import (
    DeadMeterScreen,
    DetectorSet,
    default_detectors,
    sight_lost,
    utility_of,
)
from alerts.detect.layout import Layout, PlacedDevice
from alerts.detect.technical import DeviceWatch
from alerts.model import Category, Signal
from alerts.service import AlertService, Detection, Installed, Sources
from devices import status, topics
from devices.catalogue import CATALOGUE, HEARTBEAT
from devices.payload import Reading
from devices.registry import DeviceRecord, Registry
from devices.topics import Topic
from ingest.mqtt import Message
from ingest.registry import RegistryCache

T0 = datetime(2026, 1, 5, 7, tzinfo=UTC)
H = "h01"
GRACE = DeviceWatch().rule.heartbeat_grace
PIR_LIMIT = timedelta(seconds=CATALOGUE["pir_motion"].heartbeat_s * GRACE)
HUB_LIMIT = timedelta(seconds=CATALOGUE["hub"].heartbeat_s * GRACE)
PLUG_LIMIT = timedelta(seconds=CATALOGUE["power_plug"].heartbeat_s * GRACE)
_seq = iter(range(1, 10**9))


def r(device: str, kind: str, metric: str, value: float, at: datetime, home: str = H) -> Reading:
    return Reading(home, device, kind, 0, next(_seq), at, metric, value)


def kinds(signals: Iterable[Signal]) -> list[tuple[str, str | None]]:
    return [(s.kind, s.device_id) for s in signals]


def test_a_registered_device_that_never_reports_is_silent_after_its_grace_from_install() -> None:
    w = DeviceWatch()
    assert w.expect("h01-pir", H, "pir_motion", T0)
    assert not w.expect("h01-pir", H, "pir_motion", T0 + timedelta(days=1)), "idempotent"
    assert w.advance(T0 + PIR_LIMIT - timedelta(seconds=1)) == []
    assert not w.device_dead("h01-pir")
    [s] = w.advance(T0 + PIR_LIMIT + timedelta(seconds=1))
    assert (s.kind, s.category, s.device_id, s.home_id) == (
        "device_silent",
        Category.TECHNICAL,
        "h01-pir",
        H,
    )
    assert s.evidence["last_seen"] == T0.isoformat(), "silent since its installation"
    assert w.device_dead("h01-pir")
    assert w.dead(H) == {"h01-pir"}
    assert w.advance(T0 + 3 * PIR_LIMIT) == [], "raised once"


def test_a_reading_after_install_overrides_the_install_time() -> None:
    w = DeviceWatch()
    w.expect("h01-pir", H, "pir_motion", T0)
    heard = T0 + timedelta(hours=2)
    w.observe(r("h01-pir", "pir_motion", HEARTBEAT, 1.0, heard))
    w.expect("h01-pir", H, "pir_motion", T0)  # seeded again (a restart): the reading stays
    assert w.advance(T0 + PIR_LIMIT + timedelta(seconds=1)) == []
    [s] = w.advance(heard + PIR_LIMIT + timedelta(seconds=1))
    assert s.evidence["last_seen"] == heard.isoformat()


def test_a_hub_expected_and_never_heard_puts_its_home_offline() -> None:
    w = DeviceWatch()
    w.expect("h01-hub", H, "hub", T0)
    w.expect("h01-pir", H, "pir_motion", T0)
    assert not w.hub_offline(H)
    out = w.advance(T0 + HUB_LIMIT + timedelta(seconds=1))
    assert kinds(out) == [("hub_offline", "h01-hub")]
    assert w.hub_offline(H)
    # A sensor bridged by the hub cannot be heard while it is offline.
    assert w.device_dead("h01-pir")
    w.observe(r("h01-hub", "hub", HEARTBEAT, 1.0, T0 + HUB_LIMIT + timedelta(minutes=1)))
    assert not w.hub_offline(H)
    assert not w.device_dead("h01-pir")


def test_a_last_will_makes_the_device_silent_at_once() -> None:
    w = DeviceWatch()
    w.expect("h01-pir", H, "pir_motion", T0)
    w.observe(r("h01-pir", "pir_motion", "motion", 1.0, T0 + timedelta(minutes=5)))
    gone = T0 + timedelta(minutes=10)
    [s] = w.observe_status("h01-pir", False, gone, reason="lost")
    assert (s.kind, s.device_id, s.event_at) == ("device_silent", "h01-pir", gone)
    assert s.evidence["status"] == "offline"
    assert s.evidence["reason"] == "lost"
    assert w.device_dead("h01-pir")
    assert w.observe_status("h01-pir", False, gone + timedelta(minutes=1)) == [], "once"
    assert w.advance(gone + 3 * PIR_LIMIT) == [], "not again when the grace has passed"
    # A reading sent before the goodbye (delivered late) does not bring it back...
    w.observe(r("h01-pir", "pir_motion", "motion", 0.0, gone - timedelta(minutes=1)))
    assert w.device_dead("h01-pir")
    # ...its "online" does, and a later silence is raised again.
    back = gone + timedelta(hours=1)
    assert w.observe_status("h01-pir", True, back) == []
    assert not w.device_dead("h01-pir")
    assert kinds(w.advance(back + PIR_LIMIT + timedelta(seconds=1))) == [
        ("device_silent", "h01-pir")
    ]


def test_a_hubs_last_will_is_hub_offline_at_once_and_an_old_goodbye_is_ignored() -> None:
    w = DeviceWatch()
    w.observe(r("h01-hub", "hub", HEARTBEAT, 1.0, T0))
    # An orderly "offline" stamped before a later reading: the hub came back since.
    assert w.observe_status("h01-hub", False, T0 - timedelta(minutes=1), reason="shutdown") == []
    assert not w.hub_offline(H)
    out = w.observe_status("h01-hub", False, T0 + timedelta(minutes=1), reason="lost")
    assert kinds(out) == [("hub_offline", "h01-hub")]
    assert w.hub_offline(H)
    # An unknown device's status needs its home and kind to count.
    assert w.observe_status("h02-pir", False, T0) == []
    assert kinds(w.observe_status("h02-pir", False, T0, home_id="h02", kind="pir_motion")) == [
        ("device_silent", "h02-pir")
    ]


def test_export_and_restore_keep_a_silences_due_time_and_what_was_raised() -> None:
    w = DeviceWatch()
    heard = T0 + timedelta(minutes=30)
    w.observe(r("h01-pir", "pir_motion", HEARTBEAT, 1.0, heard))
    w.expect("h01-bed", H, "bed_mat", heard)  # installed then, never heard
    w.expect("h02-hub", "h02", "hub", T0)
    w.observe(r("h01-plug", "power_plug", "battery", 5.0, T0))  # low battery, raised
    silenced = w.advance(T0 + HUB_LIMIT + timedelta(seconds=1))
    assert kinds(silenced) == [("hub_offline", "h02-hub")]
    state = msgspec.json.decode(msgspec.json.encode(w.export_state()))  # JSON on the way

    after = DeviceWatch()
    assert after.restore_state(state, T0 + timedelta(hours=1)) == 4
    assert after.hub_offline("h02"), "the offline hub stays offline"
    assert after.device_dead("h02-hub")
    # Each is due at its own last reading (or install) plus its grace, as before the restart.
    early = after.advance(heard + PIR_LIMIT - timedelta(seconds=1))
    assert kinds(early) == [("device_silent", "h01-plug")]
    assert early[0].evidence["last_seen"] == T0.isoformat()
    out = after.advance(heard + PIR_LIMIT + timedelta(seconds=1))
    assert sorted(kinds(out)) == [("device_silent", "h01-bed"), ("device_silent", "h01-pir")]
    [pir] = [s for s in out if s.device_id == "h01-pir"]
    assert pir.evidence["last_seen"] == heard.isoformat()
    # The low battery was told before the restart: not again for the next low reading.
    assert after.observe(r("h01-plug", "power_plug", "battery", 4.0, T0 + PIR_LIMIT)) == []


def test_restore_keeps_a_reading_heard_since_the_restart() -> None:
    w = DeviceWatch()
    w.expect("h01-pir", H, "pir_motion", T0)
    w.advance(T0 + PIR_LIMIT + timedelta(seconds=1))
    state = w.export_state()
    after = DeviceWatch()
    heard = T0 + PIR_LIMIT + timedelta(minutes=5)
    after.observe(r("h01-pir", "pir_motion", "motion", 1.0, heard))
    after.restore_state(state, heard)
    assert not after.device_dead("h01-pir"), "heard since: not silent"
    assert after.restore_state({"version": 999}, heard) == 0


def test_a_device_taken_out_of_the_registry_is_no_longer_watched() -> None:
    w = DeviceWatch()
    w.expect("h01-pir", H, "pir_motion", T0)
    w.expect("h01-hub", H, "hub", T0)
    w.advance(T0 + HUB_LIMIT + timedelta(seconds=1))
    assert w.hub_offline(H)
    assert w.forget("h01-hub")
    assert not w.hub_offline(H)
    assert w.forget("h01-pir")
    assert w.advance(T0 + 10 * PIR_LIMIT) == []
    assert w.dead(H) == set()
    assert not w.forget("h01-pir")


def test_utilities_of_kinds() -> None:
    assert utility_of("power_plug") == "power"
    assert utility_of("appliance_switch") == "power"
    assert utility_of("water_meter") == "water"
    assert utility_of("flush_sensor") == "water"
    assert utility_of("pir_motion") is None


def test_a_utility_is_blind_only_when_every_one_of_its_devices_is_dead() -> None:
    w = DeviceWatch()
    w.expect("h01-flush", H, "flush_sensor", T0)
    w.observe(r("h01-meter", "water_meter", HEARTBEAT, 1.0, T0 + timedelta(hours=3)))
    w.advance(T0 + timedelta(hours=3))
    screen = DeadMeterScreen(w)
    assert w.device_dead("h01-flush")
    assert not screen.blind(H, "water"), "the water meter still sees water use"
    assert not screen.blind(H, "power"), "no power device known: not blind"
    assert screen.blind(H, "water", T0 + timedelta(hours=3) + PIR_LIMIT + timedelta(seconds=1))


def _home_day(plug_alive: bool) -> list[Signal]:
    """A home with activity every hour; its power plug draws power once at T0 and then, if
    alive, keeps sending heartbeats, or else sends nothing at all."""
    layout = Layout(
        [
            PlacedDevice("h01-pir", H, "pir_motion", "living room"),
            PlacedDevice("h01-plug", H, "power_plug", "kitchen"),
        ]
    )
    dets: DetectorSet = default_detectors(layout)
    watch = dets.find(DeviceWatch)
    assert watch is not None
    watch.expect("h01-pir", H, "pir_motion", T0 - timedelta(minutes=10))
    watch.expect("h01-plug", H, "power_plug", T0 - timedelta(minutes=10))
    readings = [r("h01-plug", "power_plug", "power", 120.0, T0)]
    readings.append(r("h01-plug", "power_plug", "power", 0.0, T0 + timedelta(minutes=20)))
    end = T0 + timedelta(hours=48)
    at = T0 + timedelta(minutes=30)
    while at < end:
        readings.append(r("h01-pir", "pir_motion", "motion", 1.0, at))
        if plug_alive:
            readings.append(r("h01-plug", "power_plug", HEARTBEAT, 1.0, at))
            readings.append(r("h01-plug", "power_plug", HEARTBEAT, 1.0, at + timedelta(minutes=15)))
            readings.append(r("h01-plug", "power_plug", HEARTBEAT, 1.0, at + timedelta(minutes=30)))
            readings.append(r("h01-plug", "power_plug", HEARTBEAT, 1.0, at + timedelta(minutes=45)))
        at += timedelta(hours=1)
    out: list[Signal] = []
    for reading in sorted(readings, key=lambda x: x.ts):
        out += dets.advance(reading.ts)
        out += dets.observe(reading)
    out += dets.advance(end)
    return out


def test_a_dead_power_meter_is_a_technical_alert_not_an_elder_who_used_no_power() -> None:
    alive = _home_day(plug_alive=True)
    assert [s.evidence["utility"] for s in alive if s.kind == "no_utility_use"] == ["power"], (
        "control: a live meter that sees no use for 36 h raises it"
    )
    assert not [s for s in alive if s.kind == "device_silent"]

    dead = _home_day(plug_alive=False)
    assert not [s for s in dead if s.kind == "no_utility_use"]
    [silent] = [s for s in dead if s.kind == "device_silent"]
    assert silent.device_id == "h01-plug"
    assert silent.category is Category.TECHNICAL
    assert silent.evidence["last_seen"] == (T0 + timedelta(minutes=20)).isoformat()
    # Raised at the first tick past its grace (here: the next reading, within the hour).
    assert silent.event_at <= T0 + timedelta(minutes=20) + PLUG_LIMIT + timedelta(hours=1)


def test_retain_forgets_what_the_registry_no_longer_has() -> None:
    w = DeviceWatch()
    w.expect("h01-pir", H, "pir_motion", T0)
    w.expect("h01-old", H, "pir_motion", T0)
    assert w.retain(["h01-pir", "h01-new"]) == 1
    assert w.known("h01-pir")
    assert not w.known("h01-old")
    assert kinds(w.advance(T0 + 2 * PIR_LIMIT)) == [("device_silent", "h01-pir")]


def _service(registry: Registry) -> tuple[AlertService, DeviceWatch]:
    async def load() -> Registry:
        return registry

    cache = RegistryCache(load, refresh_s=3600.0)
    cache.current = registry
    detectors = default_detectors()
    watch = detectors.find(DeviceWatch)
    assert watch is not None

    async def installed() -> list[Installed]:
        return [
            ("h01-pir", H, "pir_motion", T0 - timedelta(days=2)),
            ("h01-hub", H, "hub", T0 + timedelta(days=1)),  # stamped ahead of the clock
        ]

    svc = AlertService(
        AlertSettings(),
        Sources(cache),
        Detection(detectors, installed=installed),
        None,  # type: ignore[arg-type]  # nothing here stores an alert
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        clock=lambda: T0,
    )
    return svc, watch


async def test_the_service_seeds_the_watch_with_install_times_and_follows_the_registry() -> None:
    registry = Registry(
        [DeviceRecord("h01-pir", H, "pir_motion"), DeviceRecord("h01-hub", H, "hub")]
    )
    svc, watch = _service(registry)
    watch.expect("h01-gone", H, "pir_motion", T0 - timedelta(days=3))  # restored, since removed
    assert await svc.seed_watch() == 2
    assert not watch.known("h01-gone")
    # Installed two days ago and never heard: silent at the first tick.
    assert kinds(watch.advance(T0)) == [("device_silent", "h01-pir")]
    assert not watch.hub_offline(H), "an install time ahead of the clock is taken as now"
    assert kinds(watch.advance(T0 + HUB_LIMIT + timedelta(seconds=1))) == [
        ("hub_offline", "h01-hub")
    ]
    # A device registered while running is expected from then on; a removed one is forgotten.
    svc._cache.current = Registry(
        [DeviceRecord("h01-hub", H, "hub"), DeviceRecord("h01-bed", H, "bed_mat")]
    )
    svc.follow_watch()
    assert not watch.known("h01-pir")
    assert watch.known("h01-bed")
    bed_limit = timedelta(seconds=CATALOGUE["bed_mat"].heartbeat_s * GRACE)
    assert watch.advance(T0 + bed_limit - timedelta(seconds=1)) == []
    assert kinds(watch.advance(T0 + bed_limit + timedelta(seconds=1))) == [
        ("device_silent", "h01-bed")
    ]


async def test_the_service_takes_a_status_message_to_the_watch() -> None:
    registry = Registry(
        [DeviceRecord("h01-pir", H, "pir_motion"), DeviceRecord("h02-pir", "h02", "pir_motion")]
    )
    svc, watch = _service(registry)
    await svc.seed_watch()

    def message(home: str, device: str, body: bytes) -> tuple[Message, Topic]:
        topic = topics.topic(home, device, topics.Channel.STATUS)
        parsed = topics.parse(topic)
        assert parsed is not None
        return Message(topic, body, 1, True, 1, 0), parsed

    assert svc.filters() == ["eldercare/+/+/readings", "eldercare/+/+/status"]
    assert await svc.handle_status(*message("h01", "h01-pir", b"not json")) == []
    assert await svc.handle_status(*message("h03", "h02-pir", status.last_will())) == [], (
        "a topic of another home than the device's is not believed"
    )
    assert await svc.handle_status(*message("h01", "h01-nope", status.last_will())) == []
    assert not watch.device_dead("h02-pir")
    [s] = await svc.handle_status(*message("h01", "h01-pir", status.last_will()))
    assert (s.kind, s.device_id, s.event_at) == ("device_silent", "h01-pir", T0)
    assert s.evidence["reason"] == "lost"
    assert watch.device_dead("h01-pir")
    back = await svc.handle_status(*message("h01", "h01-pir", status.online(2, T0)))
    assert back == []
    assert not watch.device_dead("h01-pir")


# -- out of sight for the wellbeing rules (alerts.detect.detectors.sight_lost)


def test_an_event_only_sensor_that_goes_quiet_is_not_out_of_sight() -> None:
    """A sensor that never sent a heartbeat (the recordings' event-only sensors) flagged
    silent is a quiet room, not a part of the home the rules can no longer see."""
    w = DeviceWatch()
    w.observe(r("h01-pir", "pir_motion", "motion", 1.0, T0))
    w.advance(T0 + 2 * PIR_LIMIT)
    assert w.device_dead("h01-pir"), "the technical alert still comes"
    assert not sight_lost(w, H)


def test_a_sensor_that_stopped_its_heartbeats_is_out_of_sight_until_heard_again() -> None:
    w = DeviceWatch()
    w.observe(r("h01-pir", "pir_motion", HEARTBEAT, 1.0, T0))
    w.observe(r("h01-temp", "climate", HEARTBEAT, 1.0, T0))
    assert not sight_lost(w, H)
    w.advance(T0 + PIR_LIMIT + timedelta(seconds=1))
    assert sight_lost(w, H)
    w.observe(r("h01-pir", "pir_motion", "motion", 1.0, T0 + 2 * PIR_LIMIT))
    assert not sight_lost(w, H), "repaired"


def test_a_dead_thermometer_or_sos_button_hides_nobody() -> None:
    w = DeviceWatch()
    w.observe(r("h01-temp", "climate", HEARTBEAT, 1.0, T0))
    w.observe(r("h01-sos", "sos_button", HEARTBEAT, 1.0, T0))
    w.advance(T0 + timedelta(days=3))
    assert w.dead(H) == {"h01-temp", "h01-sos"}
    assert not sight_lost(w, H)


def test_a_sensor_offline_by_its_own_status_is_out_of_sight_at_once() -> None:
    w = DeviceWatch()
    w.observe(r("h01-door", "door_contact", "open", 0.0, T0))
    w.observe_status("h01-door", False, T0 + timedelta(minutes=1))
    assert sight_lost(w, H)
    restored = DeviceWatch()
    restored.restore_state(
        msgspec.msgpack.decode(msgspec.msgpack.encode(w.export_state())), T0 + timedelta(hours=1)
    )
    assert restored.device_dead("h01-door")


def test_out_of_sight_survives_a_restart() -> None:
    """The heartbeats a device used to send are part of the saved state: a sensor dead
    before a restart is still out of sight after it (it will never beat again)."""
    w = DeviceWatch()
    w.observe(r("h01-pir", "pir_motion", HEARTBEAT, 1.0, T0))
    w.advance(T0 + 2 * PIR_LIMIT)
    assert sight_lost(w, H)
    restored = DeviceWatch()
    restored.restore_state(
        msgspec.msgpack.decode(msgspec.msgpack.encode(w.export_state())), T0 + 3 * PIR_LIMIT
    )
    assert sight_lost(restored, H)
