"""An asyncio MQTT publisher over paho-mqtt that returns only once the broker has acknowledged.

paho runs its own network thread (``loop_start``); its callbacks are bridged to asyncio
futures with ``loop.call_soon_threadsafe``. paho reconnects by itself (1 s to 30 s back-off)
and re-sends unacknowledged QoS 1 messages, so a pending ``publish`` simply waits longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import unquote, urlsplit

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTv5, MQTTv311
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices import topics
from devices.backoff import jittered_delay
from devices.payload import Reading, encode

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

log = logging.getLogger(__name__)

#: Readings per message: well under the decoder's batch (1000) and payload (64 KiB) limits.
MAX_READINGS_PER_MESSAGE = 200


class PublishError(RuntimeError):
    """The broker refused a message, or the publisher closed before it was acknowledged."""


@dataclass(slots=True, frozen=True)
class BrokerAddress:
    """A broker address parsed from ``mqtt[s]://[user[:pass]@]host[:port]``."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """Parse `url`, raising ValueError with a readable message when it is not one."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"expected mqtt://[user:pass@]host:port, got {parts.scheme}://...")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ValueError(f"bad port in MQTT URL for host {parts.hostname!r}") from exc
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )

    def redacted(self) -> str:
        """The URL without the password, for messages and logs."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


class MqttPublisher:
    """Publishes to an MQTT broker; ``publish`` returns once the broker acknowledged (QoS ≥ 1).

    Use as ``async with MqttPublisher(url, client_id) as pub: await pub.publish(...)``.
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        protocol: Literal["5", "3.1.1"] = "5",
        *,
        connect_timeout_s: float = 10.0,
        keepalive_s: int = 30,
    ) -> None:
        self._address = BrokerAddress.parse(url)
        self._client_id = client_id
        self._protocol = protocol
        self._connect_timeout_s = connect_timeout_s
        self._keepalive_s = keepalive_s
        self._client: Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future[None] | None = None
        # mid -> (future, topic). Guarded by _lock: paho may call on_publish (network thread)
        # before client.publish() has returned the mid to us; such early acks wait in _early.
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[asyncio.Future[None], str]] = {}
        self._early: dict[int, ReasonCode] = {}

    @property
    def url(self) -> str:
        """The broker URL without its password."""
        return self._address.redacted()

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=MQTTv5 if self._protocol == "5" else MQTTv311,
        )
        self._attempt = 0
        self._set_backoff(client)
        client.on_connect_fail = self._on_connect_fail
        if self._address.username is not None:
            client.username_pw_set(self._address.username, self._address.password)
        if self._address.tls:
            client.tls_set_context(ssl.create_default_context())
        client.on_socket_open = self._on_socket_open
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        client.connect_async(self._address.host, self._address.port, keepalive=self._keepalive_s)
        client.loop_start()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await self._connected
        except BaseException as exc:
            await self._shutdown()
            if isinstance(exc, TimeoutError):
                raise RuntimeError(
                    f"no CONNACK from the MQTT broker at {self.url} within "
                    f"{self._connect_timeout_s:g} s: is it running and reachable?"
                ) from None
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shutdown()

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish and wait until the broker acknowledged (QoS 1/2) or the bytes were sent (0)."""
        if self._client is None or self._loop is None:
            raise RuntimeError("MqttPublisher is not connected: use it as `async with`")
        future: asyncio.Future[None] = self._loop.create_future()
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        # NO_CONN with QoS > 0: paho keeps the message and sends it after reconnecting.
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not (
            qos > 0 and info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN
        ):
            raise PublishError(f"could not publish to {topic!r} at {self.url}: rc={info.rc}")
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._pending[info.mid] = (future, topic)
        if early is not None:
            _settle(future, topic, early)
        # A cancelled wait leaves the entry in place; on_publish drops it when the ack arrives.
        await future

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

    async def _shutdown(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
            self._early.clear()
        for future, topic in pending:
            if not future.done():
                future.set_exception(
                    PublishError(f"publisher for {self.url} closed before {topic!r} was acked")
                )

    # --- paho callbacks: these run on paho's network thread --------------------------------

    def _on_socket_open(self, client: Client, userdata: Any, sock: SocketLike) -> None:
        if isinstance(sock, socket.socket):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as exc:  # pragma: no cover - e.g. a non-TCP socket
                log.debug("could not set TCP_NODELAY: %s", exc)

    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker %s refused %s: %s", self.url, self._client_id, reason_code)
            error = RuntimeError(
                f"the MQTT broker at {self.url} refused the connection: {reason_code}"
            )
            self._call_in_loop(_fail_once, self._connected, error)
        else:
            log.info("connected to MQTT broker %s as %s", self.url, self._client_id)
            self._attempt = 0
            self._call_in_loop(_resolve_once, self._connected)

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        delay = self._set_backoff(client)
        if reason_code.is_failure:
            log.warning(
                "lost MQTT broker %s (%s); reconnecting in %.1f s", self.url, reason_code, delay
            )

    def _on_connect_fail(self, client: Client, userdata: Any) -> None:
        self._set_backoff(client)

    def _set_backoff(self, client: Client) -> float:
        """Next reconnect wait: exponential with full jitter (devices must not stampede)."""
        self._attempt += 1
        delay = jittered_delay(self._attempt)
        client.reconnect_delay_set(min_delay=delay, max_delay=delay)  # type: ignore[arg-type]
        return delay

    def _on_publish(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        with self._lock:
            entry = self._pending.pop(mid, None)
            if entry is None:
                self._early[mid] = reason_code
        if entry is not None:
            self._call_in_loop(_settle, entry[0], entry[1], reason_code)

    def _call_in_loop(self, func: Any, *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        # RuntimeError: the event loop has been closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(func, *args)


def _settle(future: asyncio.Future[None], topic: str, reason_code: ReasonCode) -> None:
    if future.done():
        return
    if reason_code.is_failure:
        future.set_exception(PublishError(f"broker refused message on {topic!r}: {reason_code}"))
    else:
        future.set_result(None)


def _resolve_once(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


def _fail_once(future: asyncio.Future[None] | None, error: BaseException) -> None:
    if future is not None and not future.done():
        future.set_exception(error)
