"""Unit tests for credentials, the generated password file and ACL, and status messages."""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices import status
from devices.payload import Reading
from devices.provisioning import (
    Credential,
    ServiceAccount,
    acl_file,
    hash_password,
    new_password,
    password_file,
    verify_password,
)
from devices.registry import DeviceRecord
from simulators.drive import drive


def test_hash_is_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.fail("mosquitto_passwd missing: apt-get install mosquitto")
    path = tmp_path / "pw"
    subprocess.run([tool, "-b", "-c", str(path), "alice", "s3cret"], check=True)
    line = path.read_text().strip().split(":", 1)[1]
    _, seven, iterations, salt, _ = line.split("$")
    assert seven == "7"
    mine = hash_password("s3cret", salt=base64.b64decode(salt), iterations=int(iterations))
    assert mine == line
    assert verify_password("s3cret", line)
    assert not verify_password("S3cret", line)


def test_hashes_are_salted_and_verify() -> None:
    pw = new_password()
    a, b = hash_password(pw), hash_password(pw)
    assert a != b
    assert a.startswith("$7$101$")
    assert verify_password(pw, a)
    assert verify_password(pw, b)
    assert not verify_password(pw, "$6$x$y")
    assert not verify_password(pw, "$7$101$not base64!$zz")
    assert len({new_password() for _ in range(50)}) == 50


def test_acl_confines_each_device_to_its_own_topics() -> None:
    devices = [
        DeviceRecord("ha-pir", "ha", "pir_motion"),
        DeviceRecord("hb-pir", "hb", "pir_motion"),
    ]
    text = acl_file(devices, [ServiceAccount("ingest", "x")])
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in text.split("\n\n")[1:]}
    assert blocks["user ha-pir"] == [
        "topic write eldercare/ha/ha-pir/readings",
        "topic write eldercare/ha/ha-pir/status",
        "topic read eldercare/ha/ha-pir/commands",
    ]
    assert blocks["user ingest"] == [
        "topic read eldercare/+/+/readings",
        "topic read eldercare/+/+/status",
        "topic write eldercare/+/+/commands",
    ]
    rules = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert not [line for line in rules if line.startswith("pattern") or "#" in line]
    with pytest.raises(ValueError, match="invalid"):
        acl_file([DeviceRecord("x/#", "ha", "pir_motion")], [])


def test_password_file_lines() -> None:
    text = password_file([Credential("b", "$7$h2"), ServiceAccount("a", "$7$h1")])
    assert text == "a:$7$h1\nb:$7$h2\n"
    with pytest.raises(ValueError, match="username"):
        password_file([Credential("a:b", "x")])


def test_status_messages() -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    up = status.parse(status.online(3, at))
    assert up is not None
    assert (up.state, up.boot, up.ts) == (status.State.ONLINE, 3, at.timestamp())
    will = status.parse(status.last_will())
    assert will is not None
    assert (will.state, will.reason) == (status.State.OFFLINE, "lost")
    bye = status.parse(status.offline("shutdown", at))
    assert bye is not None
    assert bye.reason == "shutdown"
    for bad in (b"", b"{}", b'{"state": "sleepy"}', b"x" * 2000, b"[1]"):
        assert status.parse(bad) is None


def _readings(n: int, step_s: float) -> list[Reading]:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    return [
        Reading(
            "h",
            f"d{i % 3}",
            "pir_motion",
            1,
            i // 3,
            t0 + timedelta(seconds=i * step_s),
            "motion",
            1.0,
        )
        for i in range(n)
    ]


class _Sink:
    def __init__(self) -> None:
        self.sends: list[list[list[Reading]]] = []

    async def send(self, batches: list[list[Reading]]) -> None:
        await asyncio.sleep(0)
        self.sends.append(batches)


async def test_drive_as_fast_as_possible_sends_everything_in_order() -> None:
    readings, sink = _readings(1000, 7.0), _Sink()
    progress: list[int] = []
    sent = await drive(readings, sink, max_rows=300, on_progress=lambda at, n: progress.append(n))
    assert sent == 1000
    got = [r for send in sink.sends for batch in send for r in batch]
    assert sorted(got, key=lambda r: r.ts) == readings
    assert all(len({r.device_id for r in b}) == 1 for s in sink.sends for b in s)
    assert progress == sorted(progress)
    assert progress[-1] == 1000


async def test_drive_paces_simulated_time_against_the_clock() -> None:
    readings, sink = _readings(100, 30.0), _Sink()  # 50 simulated minutes
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    sent = await drive(
        readings, sink, speed=60.0, window=timedelta(minutes=1), clock=lambda: now[0], sleep=sleep
    )
    assert sent == 100
    # 60x: a simulated minute per wall second, so about 50 s of waiting in total.
    assert sum(slept) == pytest.approx(50.0, abs=1.01)
    assert len(sink.sends) >= 49
    skipped = await drive(readings, _Sink(), skip_before=readings[50].ts)
    assert skipped == 50
    with pytest.raises(ValueError, match="speed"):
        await drive(readings, sink, speed=0)


def test_docs_list_every_kind_and_metric() -> None:
    from devices.catalogue import CATALOGUE

    text = (Path(__file__).parents[2] / "docs" / "devices.md").read_text()
    for kind in CATALOGUE.values():
        assert f"### `{kind.name}`" in text, kind.name
        section = text.split(f"### `{kind.name}`", 1)[1].split("\n### ", 1)[0]
        for m in kind.all_metrics:
            assert f"| `{m.name}` |" in section, (kind.name, m.name)
        assert f"Heartbeat every {kind.heartbeat_s} s" in section


def test_mosquitto_conf_needs_a_listener_and_refuses_line_breaks() -> None:
    from devices.provisioning import TlsListener, mosquitto_conf

    with pytest.raises(ValueError, match="needs a listener"):
        mosquitto_conf("/b/passwd", "/b/acl", plain_port=None)
    with pytest.raises(ValueError, match="line break"):
        mosquitto_conf("/b/passwd\nallow_anonymous true", "/b/acl")
    with pytest.raises(ValueError, match="line break"):
        mosquitto_conf("/b/passwd", "/b/acl", tls=TlsListener("/ca\nx", "/c", "/k"))
    with pytest.raises(ValueError, match=r"tlsv1\.2 or tlsv1\.3"):
        TlsListener("/ca", "/c", "/k", tls_version="tlsv1.1")
    plain = mosquitto_conf("/b/passwd", "/b/acl")
    assert "listener 1883\n" in plain
    assert "cafile" not in plain
    both = mosquitto_conf("/b/passwd", "/b/acl", tls=TlsListener("/ca", "/c", "/k"), bind="::1")
    assert both.index("listener 1883 ::1") < both.index("listener 8883 ::1")
    assert both.endswith("require_certificate true\ntls_version tlsv1.2\n")
