"""atheris target: the payload decoder never raises, whatever the bytes and topic.

Run directly: python tests/fuzz/fuzz_decoder.py -runs=100000 [corpus dir]
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import atheris

with atheris.instrument_imports():
    from devices import payload
    from devices.registry import DeviceRecord, Registry

NOW = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
REGISTRY = Registry(
    [
        DeviceRecord("h01-sos", "h01", "sos_button"),
        DeviceRecord("h01-pir", "h01", "pir_motion"),
        DeviceRecord("h01-temp", "h01", "temperature"),
        DeviceRecord("h02-door", "h02", "door_contact"),
    ]
)
TOPICS = [
    "eldercare/h01/h01-sos/readings",
    "eldercare/h01/h01-pir/readings",
    "eldercare/h01/h01-temp/readings",
    "eldercare/h01/h02-door/readings",
    "eldercare/h01/ghost/readings",
]


def test_one_input(data: bytes) -> None:
    """One fuzz case: a topic (chosen or arbitrary) and arbitrary payload bytes."""
    fdp = atheris.FuzzedDataProvider(data)
    choice = fdp.ConsumeIntInRange(0, len(TOPICS))
    topic = TOPICS[choice] if choice < len(TOPICS) else fdp.ConsumeUnicodeNoSurrogates(80)
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    result = payload.decode(topic, body, REGISTRY, NOW)
    if isinstance(result, payload.Rejection):
        assert isinstance(result.reason, payload.Reason)
        assert result.detail
    else:
        assert isinstance(result, list)
        assert result
        assert all(isinstance(r, payload.Reading) for r in result)


def main() -> None:
    """Entry point for the fuzzer."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
