"""Simulated devices' publisher: the shared QoS 1 publisher (`devices.mqtt.AckedPublisher`:
URL rules, TLS, reconnect backoff, wait for the PUBACK), reached by a URL as a device is, plus
publishing readings to a device's readings topic in messages the decoder accepts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices import topics
from devices.mqtt import AckedPublisher, MqttClient, MqttSettings
from devices.payload import Reading, encode

log = logging.getLogger(__name__)

#: Readings per message: well under the decoder's batch (1000) and payload (64 KiB) limits.
MAX_READINGS_PER_MESSAGE = 200

Retained = tuple[str, bytes]
"""A retained message: its topic and payload (a device's status, devices.status)."""


def device_settings(
    broker: str | MqttSettings,
    protocol: Literal["5", "3.1.1"] | None = None,
    connect_timeout_s: float = 10.0,
    keepalive_s: int = 30,
) -> MqttSettings:
    """A simulated device's broker settings: `broker`'s URL and TLS files (a URL alone: MQTT
    5 unless `protocol`), with a device's connect timeout and keepalive."""
    base = MqttSettings(url=broker) if isinstance(broker, str) else broker
    values = base.model_dump()
    values.update(connect_timeout_s=connect_timeout_s, keepalive_s=keepalive_s)
    if protocol is not None:
        values["protocol"] = protocol
    return MqttSettings(**values)


class MqttPublisher(AckedPublisher):
    """Publishes as simulated devices; ``publish`` returns once the broker acknowledged.

    `broker` is a URL, ``mqtt[s]://[user[:password]@]host[:port]`` (`devices.mqtt` has the
    rules; a ``mqtts://`` broker is checked against the system's trusted CAs), or the
    service's own `MqttSettings` (``ELDERCARE_MQTT__*``: its CA file, client certificate and
    key for a broker that wants one, its protocol unless `protocol` is given). Use as
    ``async with MqttPublisher(url, client_id) as pub: await pub.publish_readings(...)``.

    As a device: `will` is the connection's last will (QoS 1, retained: the broker sends it
    when the link drops without a goodbye), and `birth()` is published (QoS 1, retained) on
    every connection, the first and each reconnect, so "online" follows a will that fired.
    """

    def __init__(
        self,
        broker: str | MqttSettings,
        client_id: str,
        protocol: Literal["5", "3.1.1"] | None = None,
        *,
        connect_timeout_s: float = 10.0,
        keepalive_s: int = 30,
        will: Retained | None = None,
        birth: Callable[[], Retained] | None = None,
    ) -> None:
        super().__init__(
            device_settings(broker, protocol, connect_timeout_s, keepalive_s), client_id
        )
        self._will = will
        self._birth = birth
        self._births: set[int] = set()  # mids of birth messages: nobody awaits their ack

    def _prepare(self, client: MqttClient) -> None:
        if self._will is not None:
            client.will_set(self._will[0], self._will[1], qos=1, retain=True)

    def _on_connect(self, client: MqttClient, flags: paho.ConnectFlags, reason: ReasonCode) -> None:
        super()._on_connect(client, flags, reason)
        if self._birth is not None and not reason.is_failure:
            topic, payload = self._birth()
            # On the network thread: its PUBACK is read after this callback returns.
            info = client.publish(topic, payload, qos=1, retain=True)
            with self._lock:
                self._births.add(info.mid)

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        with self._lock:
            birth = mid in self._births
            self._births.discard(mid)
        if not birth:
            super()._on_publish(client, userdata, mid, reason_code, properties)
        elif reason_code.is_failure:
            log.warning("broker %s refused the birth message: %s", self.url, reason_code)

    async def publish_readings(self, readings: list[Reading]) -> None:
        """Publish readings of one device and boot to its readings topic at QoS 1."""
        if not readings:
            return
        first = readings[0]
        for r in readings:
            if (r.home_id, r.device_id, r.boot) != (first.home_id, first.device_id, first.boot):
                raise ValueError("publish_readings needs readings of one device and one boot")
        topic = topics.topic(first.home_id, first.device_id, topics.Channel.READINGS)
        for i in range(0, len(readings), MAX_READINGS_PER_MESSAGE):
            await self.publish(topic, encode(readings[i : i + MAX_READINGS_PER_MESSAGE]), qos=1)
