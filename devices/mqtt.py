"""The one MQTT client every stage and the simulators use: broker settings and URL rules, TLS,
paho clients that reconnect with jittered exponential backoff, and a QoS 1 publisher that
returns only once the broker has acknowledged.

URLs: ``mqtt://`` (or ``tcp://``) is plain TCP, port 1883 by default; ``mqtts://`` is TLS,
port 8883 by default. A user name and password in the URL are percent-decoded (write ``@``
as ``%40``, ``/`` as ``%2F``, ``:`` as ``%3A``). Error messages and logs name the broker by
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
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import quote, unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ConfigDict, Field, FilePath, field_validator, model_validator

from devices.backoff import jittered_delay

log = logging.getLogger(__name__)

_TLS_SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True}
_FORM = "mqtt://host:1883 or mqtts://host:8883 (TLS), with user:password@ before the host if any"


@dataclass(slots=True, frozen=True)
class BrokerAddress:
    """A broker address parsed from ``mqtt[s]://[user[:password]@]host[:port]``."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """Parse `url`, raising ValueError with a readable message (without the password)."""
        parts = urlsplit(url)
        tls = _TLS_SCHEMES.get(parts.scheme)
        if tls is None:
            raise ValueError(f"broker URL must look like {_FORM} (got scheme {parts.scheme!r})")
        if not parts.hostname:
            raise ValueError(f"broker URL has no host: it must look like {_FORM}")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ValueError(
                "broker URL has a bad port (a '/', '?', '#' or '@' in the password must be "
                f"percent-encoded, e.g. %2F): it must look like {_FORM}"
            ) from None
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )

    def redacted(self) -> str:
        """The URL without the password, for messages and logs."""
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}"


class MqttSettings(BaseModel):
    """How to reach the broker (``ELDERCARE_MQTT__*``)."""

    model_config = ConfigDict(hide_input_in_errors=True)  # the URL may hold a password

    url: str = Field(
        default="mqtt://127.0.0.1:1883",
        description="mqtt://[user:password@]host:port (TLS: mqtts://, port 8883 by default);"
        " user and password percent-encoded",
    )
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    receive_maximum: int = Field(default=2000, ge=1, le=65535)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    tls_ca_file: FilePath | None = Field(
        default=None,
        description="PEM file of the CA(s) the broker's certificate is checked against"
        " (mqtts:// only; default: the system's trusted CAs)",
    )
    tls_cert_file: FilePath | None = Field(
        default=None, description="PEM client certificate, for a broker that asks for one"
    )
    tls_key_file: FilePath | None = Field(
        default=None, description="PEM private key of tls_cert_file (if not in that file)"
    )
    tls_check_hostname: bool = Field(
        default=True,
        description="check that the broker's certificate names the URL's host; turn off only"
        " for a broker reached by an address its certificate does not list",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        BrokerAddress.parse(value)
        return value

    @model_validator(mode="after")
    def _check_tls(self) -> MqttSettings:
        uses_tls = (
            self.tls_ca_file is not None
            or self.tls_cert_file is not None
            or self.tls_key_file is not None
            or not self.tls_check_hostname
        )
        if uses_tls and not self.address.tls:
            raise ValueError("TLS settings (tls_*) need an mqtts:// broker URL")
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_key_file needs tls_cert_file (the certificate it belongs to)")
        if self.address.tls:
            tls_context(self)  # unreadable PEM files stop the start, not the first connection
        return self

    @property
    def address(self) -> BrokerAddress:
        """The parsed URL: host, port, TLS and the percent-decoded credentials."""
        return BrokerAddress.parse(self.url)


def tls_context(settings: MqttSettings) -> ssl.SSLContext:
    """The TLS context for an ``mqtts://`` broker: Python's defaults (certificate and host
    name checked), the CA file, the client certificate, and the host name check off only if
    `MqttSettings.tls_check_hostname` is false. Raises ValueError naming a bad file."""
    ca = settings.tls_ca_file
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    except ssl.SSLError as exc:
        raise ValueError(f"tls_ca_file {ca} holds no usable PEM certificate: {exc}") from None
    if settings.tls_cert_file is not None:
        key = settings.tls_key_file
        try:
            context.load_cert_chain(settings.tls_cert_file, key)
        except ssl.SSLError as exc:
            raise ValueError(
                f"tls_cert_file {settings.tls_cert_file} with tls_key_file {key} is not a PEM "
                f"certificate and its key: {exc}"
            ) from None
    if not settings.tls_check_hostname:
        context.check_hostname = False  # the chain is still verified
    return context


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

    def reconnect(self) -> MQTTErrorCode:
        """paho's reconnect, remembering why it failed."""
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
