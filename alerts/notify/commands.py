"""Commands to devices ("help is on the way"), published with QoS 1 on the device's command
topic ``eldercare/{home}/{device}/commands``; a publish counts only once the broker
acknowledged it (PUBACK)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

from devices import topics
from devices.mqtt import AckedPublisher, MqttSettings


class CommandSink(Protocol):
    """Where device commands go."""

    async def send(self, home_id: str, device_id: str, command: dict[str, Any]) -> None:
        """Publish one command or raise an exception saying why it failed."""
        ...


class MqttCommandPublisher(AckedPublisher):
    """Publishes device commands at QoS 1 through the shared publisher (waits for the PUBACK).

    Entering it waits for the first connection (`devices.mqtt.ConnectError` if there is
    none); afterwards it reconnects by itself, and a command sent while the link is down
    fails at once, to be retried by the dispatcher."""

    def __init__(self, settings: MqttSettings, client_id: str, timeout_s: float = 10.0) -> None:
        super().__init__(settings, client_id)
        self._timeout_s = timeout_s

    async def send(self, home_id: str, device_id: str, command: dict[str, Any]) -> None:
        """Publish QoS 1 and wait until the broker has it; raises on failure or timeout."""
        if not self.connected:
            raise ConnectionError("not connected to the MQTT broker")
        topic = topics.topic(home_id, device_id, topics.Channel.COMMANDS)
        payload = json.dumps(command, default=str).encode()
        try:
            async with asyncio.timeout(self._timeout_s):
                await self.publish(topic, payload, qos=1)
        except TimeoutError:
            raise TimeoutError(f"no PUBACK within {self._timeout_s:g} s") from None
