"""Unit tests of the fast path's choice: which signals it tells people about, and whom."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alerts.emergency.fallback import Contact, HomeContacts
from alerts.emergency.fastpath import FastPath
from alerts.model import Category, Severity, Signal

NOW = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)


class _Cache:
    def __init__(self, homes: dict[str, HomeContacts]) -> None:
        self.homes = homes

    def contacts(self, home_id: str) -> HomeContacts | None:
        return self.homes.get(home_id)


def fast(homes: dict[str, HomeContacts], ids: list[int]) -> FastPath:
    path = FastPath(
        pool=None,  # type: ignore[arg-type]  # take() never touches the database
        fallback=_Cache(homes),  # type: ignore[arg-type]
        channels={"webhook": object(), "email": object()},  # type: ignore[dict-item]
        console_url="http://x/console",
        ack_url=lambda alert, user, role: f"ack/{alert}/{user}/{role}",
        kinds=frozenset({"sos", "smoke"}),
        clock=lambda: NOW,
    )
    path._ids = list(ids)
    return path


def signal(home: str = "h01", kind: str = "sos", **kw: Any) -> Signal:
    values: dict[str, Any] = {
        "category": Category.EMERGENCY,
        "severity": Severity.CRITICAL,
        "event_at": NOW,
        "summary": "SOS button pressed",
    }
    values.update(kw)
    return Signal(home_id=home, kind=kind, **values)


HOME = HomeContacts(
    "Wang Fang",
    "Village One",
    (
        Contact(5, "sms", "+86100", "village_worker"),  # no such channel here: skipped
        Contact(5, "webhook", "http://hook/5", "village_worker"),
        Contact(5, "email", "w5@example.org", "village_worker"),
        Contact(9, "email", "family@example.org", "family"),
        Contact(7, "email", "op@example.org", "operator"),  # not in the first round
    ),
)


def test_a_new_emergency_gets_a_reserved_id_and_each_persons_first_usable_channel() -> None:
    path = fast({"h01": HOME}, [101, 102])
    prepared = path.take(signal())
    assert prepared is not None
    assert prepared.alert.id == 101
    assert prepared.alert.elder_name == "Wang Fang"
    assert [(c.user_id, c.channel) for c in prepared.contacts] == [(5, "webhook"), (9, "email")]


def test_a_second_signal_while_the_alert_is_unresolved_is_left_to_the_store() -> None:
    path = fast({"h01": HOME}, [101, 102, 103])
    assert path.take(signal()) is not None
    assert path.take(signal()) is None, "evidence for the open alert, not news"
    assert path.take(signal(kind="smoke", summary="smoke")) is not None, "another kind is news"
    path.stored("h01", "sos", None)  # resolved
    prepared = path.take(signal())
    assert prepared is not None
    assert prepared.alert.id == 103


def test_what_the_fast_path_leaves_alone() -> None:
    path = fast({"h01": HOME}, [101])
    assert path.take(signal(severity=Severity.WARNING)) is None
    assert path.take(signal(kind="inactivity", category=Category.WELLBEING)) is None
    assert path.take(signal(category=Category.WELLBEING)) is None, "a mute could hold it"
    assert path.take(signal(home="h99")) is None, "nobody cached"
    assert path._ids == [101], "nothing reserved was used up"
    assert path.take(signal()) is not None
    assert path.take(signal(home="h02")) is None, "no id left"


def test_a_home_with_nobody_reachable_in_the_first_round_is_left_to_the_store() -> None:
    only_operator = HomeContacts(None, None, (Contact(7, "email", "op@x", "operator"),))
    path = fast({"h01": only_operator}, [101])
    assert path.take(signal()) is None
    assert path._ids == [101]


async def test_urgent_messages_of_one_device_stay_in_order_and_do_not_block_others() -> None:
    import asyncio
    import contextlib

    from alerts.config import AlertSettings
    from alerts.service import AlertService, Detection, Sources
    from ingest.mqtt import Message

    class Sub:
        messages: asyncio.Queue[Message] = asyncio.Queue()

        def set_filters(self, filters: list[str]) -> tuple[int, int]:
            return 0, 0

    class Cache:
        current: tuple[Any, ...] = ()

        async def maybe_refresh(self, miss: bool = False) -> bool:
            return False

    service = AlertService(
        AlertSettings(),
        Sources(Cache(), urgent=Sub()),  # type: ignore[arg-type]
        Detection(None),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
    )
    slow = asyncio.Event()
    done: list[tuple[str, int]] = []

    async def handle(msg: Message, urgent: bool = False) -> None:
        if msg.topic == "a" and msg.mid == 1:
            await slow.wait()  # a store that takes long
        done.append((msg.topic, msg.mid))

    service.handle = handle  # type: ignore[method-assign]
    for topic, mid in [("a", 1), ("a", 2), ("b", 1), ("b", 2)]:
        Sub.messages.put_nowait(Message(topic, b"", 1, False, mid, 1))
    runner = asyncio.create_task(service.run_urgent())
    for _ in range(20):
        await asyncio.sleep(0)
    assert done == [("b", 1), ("b", 2)], "b goes on while a's first message is stuck"
    slow.set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert done == [("b", 1), ("b", 2), ("a", 1), ("a", 2)], "a's messages in their order"
    assert service._device_locks == {}
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner


async def test_a_refresh_before_the_store_commits_does_not_forget_what_was_taken(
    monkeypatch: Any,
) -> None:
    import contextlib

    from alerts import store

    class Conn:
        async def commit(self) -> None:
            return None

    class Pool:
        @contextlib.asynccontextmanager
        async def connection(self, timeout: float = 0) -> Any:
            yield Conn()

    async def reserve(conn: Any, count: int) -> list[int]:
        return list(range(200, 200 + count))

    in_db: dict[tuple[str, str], int] = {}

    async def open_alerts(conn: Any, kinds: list[str]) -> dict[tuple[str, str], int]:
        return dict(in_db)

    monkeypatch.setattr(store, "reserve_alert_ids", reserve)
    monkeypatch.setattr(store, "open_alerts_of", open_alerts)
    path = fast({"h01": HOME}, [101])
    path._pool = Pool()  # type: ignore[assignment]
    assert path.take(signal()) is not None
    await path.refresh()  # the alert is not committed yet: the database knows nothing
    assert path.take(signal()) is None, "still taken"
    path.stored("h01", "sos", 101)
    in_db[("h01", "sos")] = 101
    await path.refresh()
    assert path.take(signal()) is None, "stored and unresolved"
    in_db.clear()  # resolved by staff
    await path.refresh()
    again = path.take(signal())
    assert again is not None
    assert again.alert.id == 200, "ids topped up from the sequence"
