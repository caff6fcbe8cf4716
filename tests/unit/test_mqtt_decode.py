"""The subscriber's own PUBLISH decoder against paho's, on random and broken packets."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt import _packet  # noqa: PLC2701 (the reference decoder: paho's own, private)
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.mqtt import decode_publish

V5, V311 = MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311


def _properties(expiry: int | None, content: str | None, user: list[tuple[str, str]]) -> bytes:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if expiry is not None:
        props.MessageExpiryInterval = expiry
    if content is not None:
        props.ContentType = content
    if user:
        props.UserProperty = user
    return bytes(props.pack())  # type: ignore[no-untyped-call]


def _body(topic: bytes, qos: int, mid: int, props: bytes | None, payload: bytes) -> bytes:
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    return body + (props if props is not None else b"") + payload


# Strings a broker accepts (MQTT forbids NUL and U+FEFF in them; paho checks property strings).
texts = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00\ufeff"),
    max_size=40,
)


@settings(max_examples=300)
@given(
    topic=texts.filter(bool),
    qos=st.sampled_from([0, 1]),
    mid=st.integers(1, 65535),
    payload=st.binary(max_size=2000),
    v5=st.booleans(),
    expiry=st.none() | st.integers(0, 2**32 - 1),
    content=st.none() | texts,
    user=st.lists(st.tuples(texts, texts), max_size=30),
)
def test_same_topic_payload_and_id_as_paho(
    topic: str,
    qos: int,
    mid: int,
    payload: bytes,
    v5: bool,
    expiry: int | None,
    content: str | None,
    user: list[tuple[str, str]],
) -> None:
    props = _properties(expiry, content, user) if v5 else None
    body = bytearray(_body(topic.encode(), qos, mid, props, payload))
    theirs = _packet.decode_publish(0x30 | qos << 1, body, V5 if v5 else V311)
    ours = decode_publish(body, qos, v5)
    assert ours == (theirs.topic.decode(), theirs.payload, theirs.mid if qos else 0)
    assert ours[0] == topic
    assert ours[1] == payload


@given(
    topic=texts.filter(bool),
    qos=st.sampled_from([0, 1]),
    payload=st.binary(max_size=50),
    v5=st.booleans(),
    cut=st.integers(0, 200),
)
def test_a_cut_packet_is_malformed_or_a_shorter_payload(
    topic: str, qos: int, payload: bytes, v5: bool, cut: int
) -> None:
    """Cut anywhere: either the header parts are missing (MalformedPacket) or what is left
    is read as a shorter payload, never an index error or a topic from the wrong bytes."""
    props = _properties(60, "application/json", [("k", "v")]) if v5 else None
    body = _body(topic.encode(), qos, 7, props, payload)
    short = body[: min(cut, len(body))]
    header = len(body) - len(payload)
    if len(short) < header:
        with pytest.raises(MalformedPacket):
            decode_publish(short, qos, v5)
    else:
        assert decode_publish(short, qos, v5) == (topic, short[header:], 7 if qos else 0)


def test_broken_lengths_and_topics() -> None:
    with pytest.raises(MalformedPacket):
        decode_publish(b"\x00\x09abc", 0, False)  # topic longer than the packet
    with pytest.raises(MalformedPacket):
        decode_publish(b"\x00\x00payload", 0, False)  # an empty topic is refused in 3.1.1
    with pytest.raises(MalformedPacket):
        decode_publish(b"\x00\x01a\x00\x01\xff\xff\xff\xff\x7f", 1, True)  # 5-byte varint
    with pytest.raises(MalformedPacket):
        decode_publish(b"\x00\x01a\x00\x01\x05\x01", 1, True)  # properties past the end
    # Not UTF-8 (a broker must refuse it): kept visibly wrong, so the topic check rejects it.
    assert decode_publish(b"\x00\x02\xff\xfex", 0, False) == ("\ufffd\ufffd", b"x", 0)
