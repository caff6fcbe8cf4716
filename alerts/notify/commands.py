"""Commands to devices ("help is on the way"), published with QoS 1 on the device's command
topic ``eldercare/{home}/{device}/commands``; a publish counts only once the broker
acknowledged it (PUBACK)."""

from __future__ import annotations

import asyncio
import json
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from devices import topics
from ingest.mqtt import MqttSettings


class CommandSink(Protocol):
    """Where device commands go."""

    async def send(self, home_id: str, device_id: str, command: dict[str, Any]) -> None:
        """Publish one command or raise an exception saying why it failed."""
        ...


class MqttCommandPublisher:
    """A paho client publishing device commands at QoS 1 (waits for the PUBACK)."""

    def __init__(self, settings: MqttSettings, client_id: str, timeout_s: float = 10.0) -> None:
        self._settings = settings
        self._client_id = client_id
        self._timeout_s = timeout_s
        self._client: paho.Client | None = None

    async def __aenter__(self) -> MqttCommandPublisher:
        parts = urlsplit(self._settings.url)
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=(
                MQTTProtocolVersion.MQTTv5
                if self._settings.protocol == "5"
                else MQTTProtocolVersion.MQTTv311
            ),
        )
        if parts.username:
            client.username_pw_set(parts.username, parts.password)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.connect_async(
            parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=self._settings.keepalive_s
        )
        client.loop_start()
        self._client = client
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)

    async def send(self, home_id: str, device_id: str, command: dict[str, Any]) -> None:
        """Publish QoS 1 and wait until the broker has it; raises on failure or timeout."""
        client = self._client
        if client is None or not client.is_connected():
            raise ConnectionError("not connected to the MQTT broker")
        topic = topics.topic(home_id, device_id, topics.Channel.COMMANDS)
        info = client.publish(topic, json.dumps(command, default=str).encode(), qos=1)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish refused: {paho.error_string(info.rc)}")
        await asyncio.to_thread(info.wait_for_publish, self._timeout_s)
        if not info.is_published():
            raise TimeoutError(f"no PUBACK within {self._timeout_s:g} s")
