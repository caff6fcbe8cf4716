"""Simulated devices' publisher: the shared QoS 1 publisher (`devices.mqtt.AckedPublisher`:
URL rules, TLS, reconnect backoff, wait for the PUBACK), reached by a URL as a device is, plus
publishing readings to a device's readings topic in messages the decoder accepts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from devices import topics
from devices.mqtt import AckedPublisher, MqttSettings, Retained
from devices.payload import Reading, encode

#: Readings per message: well under the decoder's batch (1000) and payload (64 KiB) limits.
MAX_READINGS_PER_MESSAGE = 200


class MqttPublisher(AckedPublisher):
    """Publishes as simulated devices; ``publish`` returns once the broker acknowledged.

    `url` is ``mqtt[s]://[user[:password]@]host[:port]`` (`devices.mqtt` has the rules; a
    ``mqtts://`` broker is checked against the system's trusted CAs). Use as
    ``async with MqttPublisher(url, client_id) as pub: await pub.publish_readings(...)``.
    `will` and `birth`: a device's last will and its "online" (`AckedPublisher`).
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        protocol: Literal["5", "3.1.1"] = "5",
        *,
        connect_timeout_s: float = 10.0,
        keepalive_s: int = 30,
        will: Retained | None = None,
        birth: Callable[[], Retained] | None = None,
    ) -> None:
        settings = MqttSettings(
            url=url,
            protocol=protocol,
            connect_timeout_s=connect_timeout_s,
            keepalive_s=keepalive_s,
        )
        super().__init__(settings, client_id, will=will, birth=birth)

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
