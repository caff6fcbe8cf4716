"""The demo's simulated devices send what real ones send (issue #16: on a fresh demo device
health showed 19 devices "never reported" and every battery "not reported"): the homes
`eldercare up` runs (`cli.main.load_sim_homes`, `simulators.fleet`), against the real broker
and service for two simulated hours, give every registered device a last reading in the
devices API, heartbeats every heartbeat period, a battery level for each battery device, a
retained "online" status, and a last will the alerts stage hears when a link drops."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from cli.main import load_sim_homes
from devices import status, topics
from devices.catalogue import CATALOGUE, LOW_BATTERY_PERCENT
from devices.mqtt import BrokerAddress
from devstack.broker import EmbeddedBroker
from simulators.fleet import DeviceFleet
from simulators.live import run_homes
from simulators.publisher import MqttPublisher
from tests.integration.helpers import eventually, login, make_settings, running_service

pytestmark = pytest.mark.integration

SIMULATED = timedelta(hours=2)
SPEED = 1200.0  # two simulated hours in six seconds


def fast_clock(start: datetime, end: datetime) -> Callable[[], datetime]:
    """Simulated time from `start` (at the first call: the devices' boot), `SPEED` times the
    wall clock, stopping at `end`."""
    origin: list[float] = []

    def now() -> datetime:
        if not origin:
            origin.append(time.monotonic())
        elapsed = (time.monotonic() - origin[0]) * SPEED
        return min(start + timedelta(seconds=elapsed), end)

    return now


@contextlib.contextmanager
def retained_statuses(url: str) -> Iterator[dict[str, dict[str, Any]]]:
    """The status messages on `eldercare/+/+/status` (retained ones first), by device."""
    seen: dict[str, dict[str, Any]] = {}
    address = BrokerAddress.parse(url)

    def on_message(_c: Client, _u: Any, msg: MQTTMessage) -> None:
        parsed = topics.parse(msg.topic)
        found = status.parse(bytes(msg.payload))
        if parsed is not None and found is not None:
            seen[parsed.device_id] = {"state": found.state, "reason": found.reason}

    watcher = Client(
        CallbackAPIVersion.VERSION2,
        client_id="test-status-watch",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    watcher.on_message = on_message
    watcher.on_connect = lambda c, *_: c.subscribe(topics.subscription(topics.Channel.STATUS), 1)
    watcher.connect(address.host, address.port, keepalive=30)
    watcher.loop_start()
    try:
        yield seen
    finally:
        watcher.disconnect()
        watcher.loop_stop()


async def device_silent(db_url: str, device: str) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute(
            "SELECT a.id FROM alerts a JOIN alert_evidence e ON e.alert_id = a.id"
            " WHERE a.kind = 'device_silent' AND a.status = 'open' AND e.device_id = %s",
            (device,),
        )
        return await cur.fetchall()


async def test_demo_devices_report_heartbeats_status_and_battery(
    db_url: str, mosquitto: EmbeddedBroker
) -> None:
    settings = make_settings(db_url, mosquitto)
    homes = await load_sim_homes(db_url)
    registered = {d.device_id: d.kind for h in homes for d in h.devices}
    assert len(registered) == 8 * 7  # the test template's demo homes, every device
    end = datetime.now(UTC)
    clock = fast_clock(end - SIMULATED, end)
    stop = asyncio.Event()
    async with (
        running_service(settings) as svc,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as client,
    ):
        with retained_statuses(mosquitto.url) as statuses:
            fleet = DeviceFleet(mosquitto.url, homes, mosquitto.protocol, clock=clock)
            try:
                async with fleet:
                    runner = asyncio.create_task(run_homes(fleet, homes, 0.1, stop, clock=clock))
                    while clock() < end:  # started at the fleet's boot
                        await asyncio.sleep(0.2)
                    await asyncio.sleep(0.5)  # the last tick
                    stop.set()
                    await runner

                    # Every device said it is online (retained, as each connected).
                    await eventually(
                        lambda: _all_online(statuses, registered), what="every device online"
                    )

                    # Every registered device has reported; battery devices have a level.
                    headers = await login(client, "operator")

                    async def health() -> list[dict[str, Any]] | None:
                        answer = await client.get(
                            "/api/v1/devices", params={"limit": 200}, headers=headers
                        )
                        assert answer.status_code == 200, answer.text
                        items: list[dict[str, Any]] = answer.json()["items"]
                        mine = [d for d in items if d["id"] in registered]
                        ready = len(mine) == len(registered) and all(
                            d["last_seen"] is not None for d in mine
                        )
                        return mine if ready else None

                    devices = await eventually(health, what="every device reported")
                    for d in devices:
                        spec = CATALOGUE[registered[d["id"]]]
                        assert d["online"] is True, d
                        if spec.battery:
                            assert d["battery"] is not None, d
                            assert LOW_BATTERY_PERCENT < d["battery"] <= 100, d
                        else:
                            assert d["battery"] is None, d

                    # Heartbeats: one at boot, then one every heartbeat period of the kind (the
                    # first tick may start a few simulated minutes after the boot).
                    beats = await _heartbeats(db_url)
                    covered = SIMULATED.total_seconds() - 600
                    for device, kind in registered.items():
                        period = CATALOGUE[kind].heartbeat_s
                        wanted = 1 + int(covered // period)
                        assert beats.get(device, 0) >= wanted, (device, beats.get(device))

                    # A link that drops without a goodbye: the broker sends the last will,
                    # the alerts stage raises device_silent, the reconnect says online again.
                    victim = "h03-pir-kitchen"
                    link = fleet.publisher(victim)._client
                    assert link is not None
                    sock = link.socket()
                    assert isinstance(sock, socket.socket)
                    sock.shutdown(socket.SHUT_RDWR)
                    await eventually(
                        lambda: device_silent(db_url, victim), what="device_silent on the will"
                    )
                    await eventually(
                        lambda: _state(statuses, victim, status.State.ONLINE),
                        what="online again after the reconnect",
                    )
            finally:
                stop.set()
                await _clear_retained(mosquitto.url, homes)


async def _all_online(statuses: dict[str, dict[str, Any]], registered: dict[str, str]) -> bool:
    return all(statuses.get(d, {}).get("state") is status.State.ONLINE for d in registered)


async def _state(statuses: dict[str, dict[str, Any]], device: str, state: status.State) -> bool:
    return statuses.get(device, {}).get("state") is state


async def _heartbeats(db_url: str) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute(
            "SELECT device_id, count(*) FROM readings WHERE metric = 'heartbeat' GROUP BY device_id"
        )
        return {str(d): int(n) for d, n in await cur.fetchall()}


async def _clear_retained(url: str, homes: list[Any]) -> None:
    """Leave the shared broker as it was: no retained statuses of these devices."""
    async with MqttPublisher(url, "test-clear") as pub:
        for home in homes:
            for d in home.devices:
                topic = topics.topic(home.home_id, d.device_id, topics.Channel.STATUS)
                await pub.publish(topic, b"", retain=True)
