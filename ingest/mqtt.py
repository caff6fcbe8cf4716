"""An MQTT subscriber that lets the caller acknowledge each message after it is committed.

paho-mqtt runs its network loop in its own thread; messages are handed to asyncio through a
queue. QoS 1 with a persistent session (MQTT 5 session expiry, or clean_session=False on
3.1.1), manual acknowledgement, and a connection generation so that an ack meant for a
message received on an earlier connection is never sent on a later one (the broker will
redeliver that message instead). The client is built by `devices.mqtt.build_client`, so the
URL rules, TLS and reconnect backoff are those of every other client of the broker.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import struct
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import msgspec
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.reasoncodes import ReasonCode

from devices.mqtt import (
    ConnectError,
    MqttClient,
    MqttSettings,
    OnConnect,
    OnConnectFail,
    OnDisconnect,
    build_client,
    start_client,
    stop_client,
)

log = logging.getLogger(__name__)


class Message(msgspec.Struct, frozen=True, gc=False):
    """One received message; pass it back to `Subscriber.ack` once it is safe."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    generation: int


_PUBACK = struct.Struct("!BBH")
_READ_CHUNK = 256 * 1024


def decode_publish(packet: bytes | bytearray, qos: int, v5: bool) -> tuple[str, bytes, int]:
    """(topic, payload, packet id) of a QoS 0/1 PUBLISH body (everything after the fixed
    header). MQTT 5 properties are skipped unread: nothing here uses them, and building
    paho's `Properties` object was a tenth of a subscriber's time. Raises `MalformedPacket`
    as paho does; a topic that is not UTF-8 (a broker must refuse it) is kept with
    replacement characters, so the topic check rejects it as unknown."""
    end = len(packet)
    if end < 2:
        raise MalformedPacket("PUBLISH too short for its topic length")
    pos = 2 + ((packet[0] << 8) | packet[1])
    if pos > end:
        raise MalformedPacket("PUBLISH topic runs past the packet")
    if pos == 2 and not v5:
        raise MalformedPacket("topic can't be empty in MQTTv3")
    topic = packet[2:pos].decode("utf-8", "replace")
    mid = 0
    if qos:
        if pos + 2 > end:
            raise MalformedPacket("PUBLISH too short for its packet id")
        mid = (packet[pos] << 8) | packet[pos + 1]
        pos += 2
    if v5:
        length, shift = 0, 0
        while True:
            if pos >= end or shift > 21:
                raise MalformedPacket("bad PUBLISH property length")
            byte = packet[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        pos += length
        if pos > end:
            raise MalformedPacket("PUBLISH properties run past the packet")
    return topic, bytes(memoryview(packet)[pos:]), mid


# A subscriber's fast delivery: (topic, payload, qos, retain, packet id), network thread.
FastDelivery = Callable[[str, bytes, int, bool, int], None]


class _Client(MqttClient):
    """paho's client with three per-message costs taken out (paho-mqtt 2.2, pinned).

    Measured with py-spy under the ingest benchmark, per message paho made four system calls
    to read (a select and three unbuffered recv: command byte, length byte, body), matched the
    topic against per-topic callbacks we never register, and sent every PUBACK as its own
    packet with its own wake-up of the network thread. Here: reads are served from a buffer
    filled by one large recv (paho's loop skips select while `pending()` bytes remain, the
    hook it has for TLS), messages go straight to `on_message`, and `ack_many` queues one
    write holding all the PUBACKs of a batch.
    """

    _rbuf: bytes = b""
    _rpos: int = 0
    on_publish_fast: FastDelivery | None = None

    def _handle_publish(self) -> MQTTErrorCode:
        """QoS 0 and 1 go to `on_publish_fast` (when set) without paho's message object,
        properties or debug formatting; QoS 2 (never subscribed to here) goes to paho."""
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        deliver = self.on_publish_fast
        if qos > 1 or deliver is None:
            return super()._handle_publish()
        topic, payload, mid = decode_publish(
            self._in_packet["packet"], qos, self._protocol == MQTTProtocolVersion.MQTTv5
        )
        with self._in_callback_mutex:
            deliver(topic, payload, qos, bool(header & 0x01), mid)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _create_socket(self) -> Any:
        self._rbuf, self._rpos = b"", 0  # nothing from an earlier connection is ever parsed
        return super()._create_socket()

    def _sock_recv(self, bufsize: int) -> bytes:
        buf, pos = self._rbuf, self._rpos
        if pos >= len(buf):
            buf = super()._sock_recv(_READ_CHUNK)  # raises BlockingIOError when empty
            if not buf:
                return buf  # connection closed
            self._rbuf, pos = buf, 0
        end = min(pos + bufsize, len(buf))
        self._rpos = end
        return buf[pos:end]

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None and self.buffered:
            rc = super().loop_read(1)
        return rc

    @property
    def buffered(self) -> int:
        """Bytes read from the socket and not yet parsed."""
        return len(self._rbuf) - self._rpos

    def _handle_on_message(self, message: paho.MQTTMessage) -> None:
        on_message = self.on_message
        if on_message is not None:
            with self._in_callback_mutex:
                on_message(self, self._userdata, message)

    def ack_many(self, mids: list[int]) -> None:
        """Queue the PUBACKs of QoS 1 messages `mids` as one write."""
        if mids:
            data = b"".join([_PUBACK.pack(0x40, 2, mid) for mid in mids])
            self._packet_queue(0x40, data, 0, 0)


def subscriber_client(
    settings: MqttSettings,
    client_id: str,
    *,
    on_connect: OnConnect | None = None,
    on_disconnect: OnDisconnect | None = None,
    on_connect_fail: OnConnectFail | None = None,
) -> _Client:
    """The tuned client of a `Subscriber`: persistent session, manual acknowledgement, and
    everything `devices.mqtt.build_client` configures (credentials, TLS, backoff)."""
    client = build_client(
        settings,
        client_id,
        _Client,
        persistent=True,
        manual_ack=True,
        on_connect=on_connect,
        on_disconnect=on_disconnect,
        on_connect_fail=on_connect_fail,
    )
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
        drop: list[str] | None = None,
        may_leave: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """`drop`: filters this client id's persistent session may hold from an earlier
        configuration and must no longer (unsubscribed at each connect; the messages the
        broker queued under them before are still delivered once). `may_leave`: asked at a
        clean stop whether another member of the shared groups is alive to take this one's
        share (then it unsubscribes from them); without it, or if it fails, the subscriptions
        stay in the session."""
        self._may_leave = may_leave
        self._settings = settings
        self._client_id = client_id
        self._filters = list(filters)
        self._drop = [f for f in drop or [] if f not in self._filters]
        self.messages: asyncio.Queue[Message] = asyncio.Queue(maxsize=queue_size)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: _Client | None = None
        self._pending: collections.deque[Message] = collections.deque()
        self._wake_scheduled = False
        self._acks: list[Message] = []
        self._ack_scheduled = False
        self._generation = 0
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.connected_once = asyncio.Event()
        self.subscribed = asyncio.Event()
        """Set at the first SUBACK: from then on the broker routes the filters' messages to
        this session (a clustered broker can take tens of ms to set up a new session's queue)."""
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        """True while the connection to the broker is up."""
        return self._connected.is_set()

    # paho callbacks (network thread) ------------------------------------------------------
    def _on_connect(self, client: MqttClient, flags: paho.ConnectFlags, reason: ReasonCode) -> None:
        if reason.is_failure:
            log.error("broker refused connection of %s: %s", self._client_id, reason)
            return
        with self._lock:
            self._generation += 1
        self._connected.set()
        with self._lock:
            filters = list(self._filters)
        if self._drop and flags.session_present:
            client.unsubscribe(self._drop)
        if filters:
            client.subscribe([(f, 1) for f in filters])
        log.info("%s connected (session present: %s)", self._client_id, flags.session_present)
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self.connected_once.set)

    def _on_disconnect(self, client: MqttClient, reason: ReasonCode, delay: float) -> None:
        self._connected.clear()
        self.reconnects += 1
        log.warning("%s disconnected: %s; reconnecting in %.1f s", self._client_id, reason, delay)

    def _on_connect_fail(self, client: MqttClient, error: OSError | None, delay: float) -> None:
        log.warning(
            "%s could not reach the broker (%s); retrying in %.1f s", self._client_id, error, delay
        )

    def _on_subscribe(self, client: paho.Client, userdata: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self.subscribed.set)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        self._on_publish(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), msg.mid)

    def _on_publish(self, topic: str, payload: bytes, qos: int, retain: bool, mid: int) -> None:
        self._pending.append(Message(topic, payload, qos, retain, mid, self._generation))
        # One wake-up of the event loop per burst, not per message (a self-pipe write each).
        if not self._wake_scheduled:
            loop = self._loop
            if loop is not None:
                self._wake_scheduled = True
                loop.call_soon_threadsafe(self._hand_over)

    def _hand_over(self) -> None:
        """(event loop) Move what the network thread received into `messages`, in order."""
        self._wake_scheduled = False  # first: anything appended from now on schedules anew
        pending, put = self._pending, self.messages.put_nowait
        while pending:
            put(pending.popleft())

    # lifecycle --------------------------------------------------------------------------
    async def __aenter__(self) -> Subscriber:
        self._loop = asyncio.get_running_loop()
        client = subscriber_client(
            self._settings,
            self._client_id,
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            on_connect_fail=self._on_connect_fail,
        )
        client.on_message = self._on_message
        client.on_publish_fast = self._on_publish
        client.on_subscribe = self._on_subscribe
        self._client = client
        try:  # ConnectError: refused, TLS handshake failed, or no CONNACK in time
            await start_client(client, self._settings, persistent=True)
        except BaseException:
            self._client = None
            raise
        if self._filters:  # ready once subscribed, not merely connected
            try:
                async with asyncio.timeout(self._settings.connect_timeout_s):
                    await self.subscribed.wait()
            except TimeoutError:
                await self.__aexit__(None, None, None)
                raise ConnectError(
                    f"the MQTT broker at {self._settings.address.redacted()} did not confirm"
                    f" the subscription of {self._client_id} within"
                    f" {self._settings.connect_timeout_s:g} s"
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
            await self._leave_shared_groups(client)
            await stop_client(client)
        self._client = None

    async def _leave_shared_groups(self, client: MqttClient) -> None:
        """Before a clean stop, unsubscribe from the shared subscriptions if another member
        is alive (`may_leave`): a member that stays in a `$share` group with its persistent
        session offline is still dealt its share of the messages, which wait in its session
        until it returns (measured on Mosquitto 2.0: tests/integration/
        test_detection_shards.py). But the last member stays: with nobody subscribed,
        Mosquitto drops what is published to the group (acknowledged readings, lost:
        tests/integration/test_shared_leave.py). What it holds already is delivered again
        when it reconnects, and it subscribes again then."""
        shared = [f for f in self._filters if f.startswith("$share/")]
        if not shared or not self._connected.is_set() or self._may_leave is None:
            return
        try:
            async with asyncio.timeout(3.0):
                leave = await self._may_leave()
        except Exception as exc:  # the database is down or slow: staying loses nothing
            log.warning("%s keeps its shared subscriptions (%s)", self._client_id, exc)
            return
        if not leave:
            log.info(
                "%s keeps its shared subscriptions: no other member is alive, and the broker"
                " queues the readings in this session until a worker is back",
                self._client_id,
            )
            return
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def unsubscribed(*_args: Any) -> None:
            loop.call_soon_threadsafe(done.set)

        client.on_unsubscribe = unsubscribed
        client.unsubscribe(shared)
        try:
            async with asyncio.timeout(2.0):
                await done.wait()
        except TimeoutError:
            log.warning("%s: no UNSUBACK for its shared subscriptions; stopping", self._client_id)

    def set_filters(self, filters: list[str]) -> tuple[int, int]:
        """Subscribe to `filters` instead of the current ones; returns (added, removed)."""
        with self._lock:
            old = set(self._filters)
            self._filters = list(filters)
        added = [f for f in filters if f not in old]
        removed = sorted(old - set(filters))
        client = self._client
        if client is not None and self._connected.is_set():
            for i in range(0, len(added), 500):
                client.subscribe([(f, 1) for f in added[i : i + 500]])
            for i in range(0, len(removed), 500):
                client.unsubscribe(removed[i : i + 500])
        return len(added), len(removed)

    def ack_many(self, messages: list[Message]) -> int:
        """Acknowledge a batch in one write; returns how many acks were sent (the others
        belong to a connection that is gone and will be redelivered)."""
        client = self._client
        if client is None:
            return 0
        with self._lock:
            if not self._connected.is_set():
                return 0
            generation = self._generation
            mids = [m.mid for m in messages if m.qos == 1 and m.generation == generation]
            client.ack_many(mids)
        return len(mids)

    def ack(self, message: Message) -> bool:
        """Acknowledge `message` to the broker (with the other acks of this turn of the event
        loop, in one write); False if its connection is gone (it will be redelivered on the
        new one, and dedup absorbs the repeat)."""
        client, loop = self._client, self._loop
        if client is None or loop is None or message.qos == 0:
            return False
        with self._lock:
            if message.generation != self._generation or not self._connected.is_set():
                return False
        self._acks.append(message)
        if not self._ack_scheduled:
            self._ack_scheduled = True
            loop.call_soon(self._flush_acks)
        return True

    def _flush_acks(self) -> None:
        self._ack_scheduled = False
        acks, self._acks = self._acks, []
        self.ack_many(acks)
