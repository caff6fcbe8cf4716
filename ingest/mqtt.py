"""An MQTT subscriber that lets the caller acknowledge each message after it is committed.

paho-mqtt runs its network loop in its own thread; messages are handed to asyncio through a
queue. QoS 1 with a persistent session (MQTT 5 session expiry, or clean_session=False on
3.1.1), manual acknowledgement, and a connection generation so that an ack meant for a
message received on an earlier connection is never sent on a later one (the broker will
redeliver that message instead).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, Field, field_validator

from devices.backoff import jittered_delay

log = logging.getLogger(__name__)


class MqttSettings(BaseModel):
    """How to reach the broker."""

    url: str = Field(
        default="mqtt://127.0.0.1:1883", description="mqtt://[user:password@]host:port"
    )
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    receive_maximum: int = Field(default=2000, ge=1, le=65535)
    connect_timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError(
                f"broker URL must look like mqtt://host:1883 (got scheme {parts.scheme!r})"
            )
        return value


@dataclass(slots=True, frozen=True)
class Message:
    """One received message; pass it back to `Subscriber.ack` once it is safe."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    generation: int


def _client(settings: MqttSettings, client_id: str) -> paho.Client:
    parts = urlsplit(settings.url)
    if settings.protocol == "5":
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
    else:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=MQTTProtocolVersion.MQTTv311,
            manual_ack=True,
        )
    if parts.username:
        client.username_pw_set(parts.username, parts.password)
    # Cap paho's own windows well under the 65 535 packet-id space.
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    return client


class Subscriber:
    """A QoS 1, persistent-session subscriber with acknowledgement after commit."""

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        filters: list[str],
        queue_size: int = 0,
    ) -> None:
        self._settings = settings
        self._client_id = client_id
        self._filters = filters
        self.messages: asyncio.Queue[Message] = asyncio.Queue(maxsize=queue_size)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: paho.Client | None = None
        self._generation = 0
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.connected_once = asyncio.Event()
        self.reconnects = 0
        self._attempt = 0

    @property
    def connected(self) -> bool:
        """True while the connection to the broker is up."""
        return self._connected.is_set()

    # paho callbacks (network thread) ------------------------------------------------------
    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("broker refused connection of %s: %s", self._client_id, reason)
            return
        with self._lock:
            self._generation += 1
        self._attempt = 0
        self._connected.set()
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.subscribe([(f, 1) for f in self._filters])
        log.info("%s connected (session present: %s)", self._client_id, flags.session_present)
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self.connected_once.set)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        self.reconnects += 1
        delay = self._next_delay(client)
        log.warning("%s disconnected: %s; reconnecting in %.1f s", self._client_id, reason, delay)

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        delay = self._next_delay(client)
        log.warning("%s could not reach the broker; retrying in %.1f s", self._client_id, delay)

    def _next_delay(self, client: paho.Client) -> float:
        """Set paho's next reconnect wait to a jittered exponential delay."""
        self._attempt = min(self._attempt + 1, 30)
        delay = jittered_delay(self._attempt)
        # paho waits min_delay on the first retry after this call; both bounds equal = exact.
        client.reconnect_delay_set(min_delay=delay, max_delay=delay)  # type: ignore[arg-type]
        return delay

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        message = Message(
            topic=msg.topic,
            payload=bytes(msg.payload),
            qos=msg.qos,
            retain=bool(msg.retain),
            mid=msg.mid,
            generation=self._generation,
        )
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self.messages.put_nowait, message)

    # lifecycle --------------------------------------------------------------------------
    async def __aenter__(self) -> Subscriber:
        self._loop = asyncio.get_running_loop()
        client = _client(self._settings, self._client_id)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        self._next_delay(client)
        client.on_message = self._on_message
        parts = urlsplit(self._settings.url)
        props: Properties | None = None
        if self._settings.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self._settings.session_expiry_s
            props.ReceiveMaximum = self._settings.receive_maximum
        self._client = client
        client.connect_async(
            parts.hostname or "127.0.0.1",
            parts.port or 1883,
            keepalive=self._settings.keepalive_s,
            clean_start=(
                False if self._settings.protocol == "5" else paho.MQTT_CLEAN_START_FIRST_ONLY
            ),
            properties=props,
        )
        client.loop_start()
        try:
            await asyncio.wait_for(self.connected_once.wait(), self._settings.connect_timeout_s)
        except TimeoutError:
            client.loop_stop()
            raise RuntimeError(
                f"could not connect to the MQTT broker at {self._settings.url} "
                f"within {self._settings.connect_timeout_s:g} s: is it running?"
            ) from None
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client = self._client
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
        self._client = None

    def ack(self, message: Message) -> bool:
        """Acknowledge `message` to the broker; False if its connection is gone (it will be
        redelivered on the new one, and dedup absorbs the repeat)."""
        client = self._client
        if client is None or message.qos == 0:
            return False
        with self._lock:
            if message.generation != self._generation or not self._connected.is_set():
                return False
            client.ack(message.mid, message.qos)
        return True
