"""Unit tests for the MQTT topic scheme (devices.topics)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices import topics
from devices.topics import Channel, Topic

ID_FIRST = string.ascii_lowercase + string.digits
ID_REST = ID_FIRST + "_-"

valid_ids = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(ID_FIRST),
    st.text(alphabet=ID_REST, max_size=63),
)
channels = st.sampled_from(list(Channel))


def is_valid_id(value: str) -> bool:
    """An oracle written independently of the regular expression in devices.topics."""
    return 1 <= len(value) <= 64 and value[0] in ID_FIRST and all(c in ID_REST for c in value[1:])


@given(valid_ids, valid_ids, channels)
def test_format_then_parse_round_trips(home_id: str, device_id: str, channel: Channel) -> None:
    formatted = topics.topic(home_id, device_id, channel)
    assert formatted == f"eldercare/{home_id}/{device_id}/{channel.value}"
    assert topics.parse(formatted) == Topic(home_id, device_id, channel)
    assert str(Topic(home_id, device_id, channel)) == formatted


@given(valid_ids, valid_ids, channels)
def test_parse_then_format_round_trips(home_id: str, device_id: str, channel: Channel) -> None:
    raw = f"eldercare/{home_id}/{device_id}/{channel.value}"
    parsed = topics.parse(raw)
    assert parsed is not None
    assert topics.topic(parsed.home_id, parsed.device_id, parsed.channel) == raw


@given(st.text(max_size=80))
def test_valid_id_agrees_with_the_documented_rule(value: str) -> None:
    assert topics.valid_id(value) is is_valid_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "H01",  # upper case
        "_home",  # must start with a letter or digit
        "-home",
        "a" * 65,  # too long
        "home/1",  # a level separator
        "home+",  # MQTT wildcards
        "home#",
        "home 1",
        "hôme",
        "home\n",  # `$` alone would let a trailing newline through
        "\nhome",
    ],
)
def test_invalid_ids_are_rejected(value: str) -> None:
    assert not topics.valid_id(value)
    with pytest.raises(ValueError, match="invalid home or device id"):
        topics.topic(value, "device-1", Channel.READINGS)
    with pytest.raises(ValueError, match="invalid home or device id"):
        topics.topic("home-1", value, Channel.READINGS)
    assert topics.parse(f"eldercare/{value}/device-1/readings") is None
    assert topics.parse(f"eldercare/home-1/{value}/readings") is None


@pytest.mark.parametrize("value", ["0", "a", "h01", "a" * 64, "home_1-b", "9-_"])
def test_valid_ids_are_accepted(value: str) -> None:
    assert topics.valid_id(value)


@given(st.text(max_size=120))
def test_parse_never_raises_and_only_accepts_well_formed_topics(value: str) -> None:
    parsed = topics.parse(value)
    if parsed is not None:
        assert str(parsed) == value
        assert is_valid_id(parsed.home_id)
        assert is_valid_id(parsed.device_id)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "eldercare",
        "eldercare/h01/d1",  # too few levels
        "eldercare/h01/d1/readings/extra",  # too many levels
        "eldercare/h01/d1/readings/",  # trailing slash is one more (empty) level
        "/eldercare/h01/d1/readings",
        "elder/h01/d1/readings",  # wrong prefix
        "Eldercare/h01/d1/readings",
        "eldercare/h01/d1/reading",  # unknown channel
        "eldercare/h01/d1/READINGS",
        "eldercare//d1/readings",  # empty home
        "eldercare/h01//readings",  # empty device
        "eldercare/+/+/readings",  # a filter, not a topic
        "eldercare/#",
    ],
)
def test_parse_rejects_topics_that_are_not_ours(value: str) -> None:
    assert topics.parse(value) is None


@pytest.mark.parametrize("channel", list(Channel))
def test_parse_reads_each_channel(channel: Channel) -> None:
    parsed = topics.parse(f"eldercare/h01/d1/{channel.value}")
    assert parsed == Topic("h01", "d1", channel)
    assert parsed is not None
    assert parsed.channel is channel


def test_channel_values_are_the_contract() -> None:
    assert {c.value for c in Channel} == {"readings", "status", "commands"}


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        (Channel.READINGS, "eldercare/+/+/readings"),
        (Channel.STATUS, "eldercare/+/+/status"),
        (Channel.COMMANDS, "eldercare/+/+/commands"),
    ],
)
def test_subscription_matches_every_home_and_device(channel: Channel, expected: str) -> None:
    assert topics.subscription(channel) == expected


@given(valid_ids, valid_ids, channels, channels)
def test_subscription_filter_matches_exactly_its_channel(
    home_id: str, device_id: str, channel: Channel, other: Channel
) -> None:
    """Apply MQTT's single-level wildcard rule by hand to the filter and a topic."""
    levels = topics.subscription(channel).split("/")
    topic_levels = topics.topic(home_id, device_id, other).split("/")
    matches = len(levels) == len(topic_levels) and all(
        f == "+" or f == t for f, t in zip(levels, topic_levels, strict=True)
    )
    assert matches is (channel is other)
