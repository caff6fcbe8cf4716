"""The one MQTT client every stage and the simulators use: broker settings and URL rules, TLS
(`devices.mqtt_config`, re-exported here), paho clients that reconnect with jittered
exponential backoff (to the next node of a clustered broker's URL), and a QoS 1 publisher
that returns only once the broker has acknowledged.

URLs: ``mqtt://`` (or ``tcp://``) is plain TCP, port 1883 by default; ``mqtts://`` is TLS,
port 8883 by default; ``mqtt://user:pw@node1,node2:1884`` names a cluster's nodes
(`devices.mqtt_config`). Error messages and logs name the broker by
`BrokerAddress.redacted`, never with the password.

First connection: `start_client` returns at the first CONNACK and raises `ConnectError` at
once when the broker refuses the client or TLS fails (an untrusted CA, a certificate for
another name, the broker refusing the client's certificate or its absence, a plain-TCP port
behind ``mqtts://``): retrying would not fix those. A broker that is merely unreachable is
retried with backoff until the connect timeout. After the first connection, paho's network
thread reconnects for ever, with the same backoff.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices.backoff import jittered_delay
from devices.mqtt_config import BrokerAddress as BrokerAddress
from devices.mqtt_config import MqttSettings as MqttSettings
from devices.mqtt_config import tls_context as tls_context

log = logging.getLogger(__name__)


class ConnectError(RuntimeError):
    """The first connection failed: refused, TLS handshake failed, or no CONNACK in time."""


class MqttClient(paho.Client):
    """paho's client with the reconnect pacing of every stage, and the reason the last
    connection attempt failed (paho's ``on_connect_fail`` and ``on_disconnect`` do not say:
    a broker that wants a client certificate refuses it after the TLS 1.3 handshake, on the
    first read)."""

    attempt: int = 0
    last_error: OSError | None = None
    first_connection: concurrent.futures.Future[None]
    """Done at the first CONNACK, or failed with `ConnectError` when retrying is hopeless."""
    nodes: tuple[tuple[str, int], ...] = ()
    """A clustered broker's nodes (host, port): each attempt after the first goes to the next."""
    node: int = 0
    connects: int = 0

    def reconnect(self) -> MQTTErrorCode:
        """paho's reconnect (to the next node of a cluster after the first attempt: the one it
        had failed or dropped), remembering why it failed."""
        if self.connects and len(self.nodes) > 1:
            self.node = (self.node + 1) % len(self.nodes)
            # Set directly: paho's host setter refuses while the state is "connection lost".
            self._host, self._port = self.nodes[self.node]
            log.info("MQTT: trying broker node %s:%d", self._host, self._port)
        self.connects += 1
        self.last_error = None
        try:
            return super().reconnect()
        except OSError as exc:
            self.last_error = exc
            raise

    def _sock_recv(self, bufsize: int) -> bytes:
        try:
            return super()._sock_recv(bufsize)
        except ssl.SSLError as exc:  # paho turns a wanted read into BlockingIOError first
            self.last_error = exc
            raise

    def next_delay(self) -> float:
        """Set paho's next reconnect wait to a jittered exponential delay; return it."""
        self.attempt = min(self.attempt + 1, 30)
        delay = jittered_delay(self.attempt)
        # paho waits min_delay on the first retry after this call; both bounds equal = exact.
        self.reconnect_delay_set(min_delay=delay, max_delay=delay)  # type: ignore[arg-type]
        return delay


C = TypeVar("C", bound=MqttClient)

# Callbacks of a client's owner, on paho's network thread.
OnConnect = Callable[[MqttClient, paho.ConnectFlags, ReasonCode], None]
OnDisconnect = Callable[[MqttClient, ReasonCode, float], None]  # reason, s to the next try
OnConnectFail = Callable[[MqttClient, OSError | None, float], None]  # why, s to the next try


def _fatal(error: OSError | None) -> bool:
    """A failed attempt that retrying will not fix: TLS refused by either side (not a link
    cut mid-handshake, as by a broker restarting)."""
    transient = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
    return isinstance(error, ssl.SSLError) and not isinstance(error, transient)


def _settle(future: concurrent.futures.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    with contextlib.suppress(concurrent.futures.InvalidStateError):  # cancelled meanwhile
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def build_client(
    settings: MqttSettings,
    client_id: str,
    client_class: type[C],
    *,
    persistent: bool = False,
    manual_ack: bool = False,
    on_connect: OnConnect | None = None,
    on_disconnect: OnDisconnect | None = None,
    on_connect_fail: OnConnectFail | None = None,
) -> C:
    """A client of `client_class` configured from `settings`: protocol, a persistent session
    on 3.1.1 when asked (MQTT 5 asks in `start_client`), the URL's credentials, TLS for
    ``mqtts://``, TCP_NODELAY, and the jittered reconnect backoff wired to paho's
    ``on_connect_fail`` and ``on_disconnect`` before the owner's callbacks run."""
    address = settings.address
    v5 = settings.protocol == "5"
    client = client_class(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if v5 or not persistent else False,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        manual_ack=manual_ack,
    )
    client.first_connection = concurrent.futures.Future()
    client.nodes = address.nodes
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set_context(tls_context(settings))
    url = address.redacted()

    def socket_opened(_client: paho.Client, _userdata: Any, sock: Any) -> None:
        if isinstance(sock, socket.socket):  # an ssl.SSLSocket is one too
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as exc:  # pragma: no cover - e.g. a non-TCP socket
                log.debug("could not set TCP_NODELAY: %s", exc)

    def connected(
        _client: paho.Client,
        _userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            refused = ConnectError(f"the MQTT broker at {url} refused the connection: {reason}")
            _settle(client.first_connection, refused)
        else:
            client.attempt, client.last_error = 0, None
            _settle(client.first_connection, None)
        if on_connect is not None:
            on_connect(client, flags, reason)

    def disconnected(
        _client: paho.Client,
        _userdata: Any,
        _flags: paho.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        delay = client.next_delay()
        error = client.last_error
        if _fatal(error):  # before the first CONNACK: the broker refused our certificate
            failure = ConnectError(f"TLS with the MQTT broker at {url} failed: {error}")
            _settle(client.first_connection, failure)
        if on_disconnect is not None:
            on_disconnect(client, reason, delay)

    def connect_failed(_client: paho.Client, _userdata: Any) -> None:
        delay = client.next_delay()
        error = client.last_error
        if _fatal(error):
            failure = ConnectError(f"TLS handshake with the MQTT broker at {url} failed: {error}")
            _settle(client.first_connection, failure)
        if on_connect_fail is not None:
            on_connect_fail(client, error, delay)

    client.on_socket_open = socket_opened
    client.on_connect = connected
    client.on_disconnect = disconnected
    client.on_connect_fail = connect_failed
    client.next_delay()
    return client


async def start_client(client: MqttClient, settings: MqttSettings, *, persistent: bool) -> None:
    """Connect `client` in paho's network thread and wait for its first CONNACK.

    A persistent MQTT 5 session asks the broker to keep it `session_expiry_s` and to send at
    most `receive_maximum` unacknowledged messages (on 3.1.1 `build_client` asked already).
    Raises `ConnectError` (the client stopped) when the broker refused, the TLS handshake
    failed, or no CONNACK came within `connect_timeout_s`."""
    address = settings.address
    if persistent and settings.protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = settings.session_expiry_s
        props.ReceiveMaximum = settings.receive_maximum
        client.connect_async(
            address.host,
            address.port,
            keepalive=settings.keepalive_s,
            clean_start=False,
            properties=props,
        )
    else:
        client.connect_async(address.host, address.port, keepalive=settings.keepalive_s)
    client.loop_start()
    try:
        async with asyncio.timeout(settings.connect_timeout_s):
            await asyncio.wrap_future(client.first_connection)
    except BaseException as exc:
        await stop_client(client)
        if isinstance(exc, TimeoutError):
            error = client.last_error
            raise ConnectError(
                f"could not connect to the MQTT broker at {address.redacted()} within "
                f"{settings.connect_timeout_s:g} s: is it running and reachable?"
                + (f" (last attempt: {error})" if error is not None else "")
            ) from None
        raise


async def stop_client(client: paho.Client) -> None:
    """Disconnect and wait for paho's network thread to end (off the event loop)."""
    client.disconnect()
    await asyncio.to_thread(client.loop_stop)


class PublishError(RuntimeError):
    """The broker refused a message, or the publisher closed before it was acknowledged."""


class AckedPublisher:
    """Publishes to the broker; `publish` returns once the broker acknowledged (QoS ≥ 1).

    paho's network thread bridges its callbacks to asyncio futures; it reconnects by itself
    (jittered backoff) and re-sends unacknowledged QoS 1 messages, so a pending `publish`
    simply waits longer. Use as ``async with AckedPublisher(settings, client_id) as pub``.
    """

    def __init__(self, settings: MqttSettings, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._url = settings.address.redacted()
        self._client: MqttClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # mid -> (future, topic). Guarded by _lock: paho may call on_publish (network thread)
        # before client.publish() has returned the mid to us; such early acks wait in _early.
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[asyncio.Future[None], str]] = {}
        self._early: dict[int, ReasonCode] = {}

    @property
    def url(self) -> str:
        """The broker URL without its password."""
        return self._url

    @property
    def connected(self) -> bool:
        """True while the connection to the broker is up."""
        client = self._client
        return client is not None and client.is_connected()

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        client = build_client(
            self._settings,
            self._client_id,
            MqttClient,
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
        )
        client.on_publish = self._on_publish
        self._prepare(client)
        self._client = client
        try:
            await start_client(client, self._settings, persistent=False)
        except BaseException:
            await self._shutdown()
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
            raise RuntimeError(f"{type(self).__name__} is not connected: use it as `async with`")
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
            _acked(future, topic, early)
        # A cancelled wait leaves the entry in place; on_publish drops it when the ack arrives.
        await future

    async def _shutdown(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await stop_client(client)
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
            self._early.clear()
        for future, topic in pending:
            if not future.done():
                future.set_exception(
                    PublishError(f"publisher for {self.url} closed before {topic!r} was acked")
                )

    def _prepare(self, client: MqttClient) -> None:
        """Before the first connection (a device subclass sets its last will here)."""

    # --- paho callbacks: these run on paho's network thread --------------------------------

    def _on_connect(self, client: MqttClient, flags: paho.ConnectFlags, reason: ReasonCode) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s refused %s: %s", self.url, self._client_id, reason)
        else:
            log.info("connected to MQTT broker %s as %s", self.url, self._client_id)

    def _on_disconnect(self, client: MqttClient, reason: ReasonCode, delay: float) -> None:
        if reason.is_failure:
            log.warning("lost MQTT broker %s (%s); reconnecting in %.1f s", self.url, reason, delay)

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        with self._lock:
            entry = self._pending.pop(mid, None)
            if entry is None:
                self._early[mid] = reason_code
        loop = self._loop
        if entry is not None and loop is not None:
            # RuntimeError: the event loop has been closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_acked, entry[0], entry[1], reason_code)


def _acked(future: asyncio.Future[None], topic: str, reason_code: ReasonCode) -> None:
    if future.done():
        return
    if reason_code.is_failure:
        future.set_exception(PublishError(f"broker refused message on {topic!r}: {reason_code}"))
    else:
        future.set_result(None)
