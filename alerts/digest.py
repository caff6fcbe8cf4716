"""The family's daily summary: at the hour each family member chose (`users.summary_hour`,
on the clock of their elder's home), one short message per member and local day about their
elder(s) (up at, movements, rooms, hours in bed, outings against the usual, the day's alerts)
in the member's language, by e-mail and web push (`users.summary_channels`).

Each summary is a `daily_summaries` row (member, day) inserted when it falls due, so it is
queued once per member and day across restarts and instances; a row is claimed with
`FOR UPDATE SKIP LOCKED`, each channel that delivered is recorded, and a failed channel is
tried again (at most `MAX_ATTEMPTS` times, `RETRY_S` apart) without resending the others.
A summary due before noon covers the day before (a morning has little to tell); from noon on
it covers the day so far.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import aiosmtplib
import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool

from alerts import usual
from alerts.config import Clock, utc_now
from alerts.notify.channels import DeliveryError, SmtpConfig, SubscriptionGone, WebPushChannel
from alerts.notify.webpush import parse_target

log = logging.getLogger(__name__)
Conn = psycopg.AsyncConnection[Any]

CHANNELS = ("email", "webpush")
"""The channels a summary may go over."""
MAX_ATTEMPTS = 3
RETRY_S = 300.0
MORNING_BEFORE = 12
"""A summary due before this hour covers the day before."""

_WORDS: dict[str, tuple[str, str]] = {
    # key: (English, Simplified Chinese)
    "subject": ("Daily summary: {name} — {sentence}", "每日小结：{name} — {sentence}"),
    "push_title": ("{name} today", "{name}今日小结"),
    "day_today": ("Today so far ({day})", "今天到现在（{day}）"),
    "day_yesterday": ("Yesterday ({day})", "昨天（{day}）"),
    "facts": ("today / usually", "今天 / 平时"),
    "up_at": ("Up at", "起床"),
    "movements": ("Movements", "活动次数"),
    "rooms": ("Rooms used", "去过的房间"),
    "sleep": ("Hours in bed the night before", "前一晚卧床小时数"),
    "outings": ("Outings", "外出次数"),
    "learning": (
        "Not enough days yet to know what is usual.",
        "数据天数还不够，暂时无法判断平时的情况。",
    ),
    "alerts_none": ("No alerts.", "没有警报。"),
    "alerts_some": ("Alerts: {n} ({kinds}).", "警报：{n} 条（{kinds}）。"),
    "alerts_open": ("Still open now: {n}.", "目前仍未处理：{n} 条。"),
    "page": ("Family page: {url}", "家属页面：{url}"),
    "footer": (
        "You chose this summary at {hour}:00; change or stop it on the family page.",
        "您选择在 {hour}:00 收到此小结；可在家属页面修改或停止。",
    ),
}


_KINDS: dict[str, tuple[str, str]] = {
    "sos": ("SOS", "紧急呼叫"),
    "fall": ("fall", "跌倒"),
    "smoke": ("smoke alarm", "烟雾报警"),
    "gas": ("gas alarm", "燃气报警"),
    "co": ("carbon monoxide", "一氧化碳报警"),
    "inactivity": ("no movement for long", "长时间没有活动"),
    "not_up": ("not up at the usual time", "未按时起床"),
    "bathroom_too_long": ("long in the bathroom", "在卫生间时间过长"),
    "out_of_bed_night": ("out of bed at night", "夜间离床过久"),
    "night_wandering": ("out at night", "夜间外出"),
    "not_back": ("not back home", "外出未归"),
    "no_utility_use": ("no water or power used", "长时间未用水用电"),
    "low_activity": ("less active than usual", "活动比平时少"),
    "care_visits": ("too few care visits", "探访不足"),
}


def kind_word(locale: str, kind: str) -> str:
    """An alert kind in a few words (the kind itself when it has none)."""
    pair = _KINDS.get(kind)
    return kind.replace("_", " ") if pair is None else (pair[1] if locale == "zh" else pair[0])


def _w(locale: str, key: str, **values: object) -> str:
    en, zh = _WORDS[key]
    return (zh if locale == "zh" else en).format(**values)


@dataclass(frozen=True, slots=True)
class ElderDay:
    """One elder's day for the summary."""

    elder_id: str
    name: str
    tz: str
    cmp: usual.Comparison
    alert_kinds: tuple[str, ...]
    open_now: int


@dataclass(frozen=True, slots=True)
class Summary:
    """What one member is sent."""

    subject: str
    text: str
    push: dict[str, Any]


def compose(
    elders: list[ElderDay], locale: str, hour: int, now: datetime, base_url: str
) -> Summary:
    """The summary of `elders` for one member in `locale` (pure)."""
    blocks: list[str] = []
    sentences: list[str] = []
    for e in elders:
        tz = ZoneInfo(e.tz)
        cmp, u = e.cmp, e.cmp.usual
        whole = cmp.today.day < now.astimezone(tz).date()
        said = usual.sentence(cmp, now, locale)
        sentences.append(f"{e.name}: {said}")
        day = cmp.today.day.isoformat()
        lines = [
            e.name,
            _w(locale, "day_yesterday" if whole else "day_today", day=day),
            said,
            "",
            f"{_w(locale, 'facts')}:",
        ]

        def pair(today: object, typical: object) -> str:
            return f"{today} / {typical}"

        up = cmp.today.up_at.astimezone(tz).strftime("%H:%M") if cmp.today.up_at else "—"
        up_u = usual.hhmm(u.up_min) if u and u.up_min is not None else "—"
        lines += [
            f"  {_w(locale, 'up_at')}: {pair(up, up_u)}",
            f"  {_w(locale, 'movements')}: "
            + pair(cmp.today.movements, round(u.movements) if u else "—"),
            f"  {_w(locale, 'rooms')}: " + pair(cmp.today.rooms, round(u.rooms) if u else "—"),
            f"  {_w(locale, 'sleep')}: "
            + pair(
                "—" if cmp.today.sleep_h is None else cmp.today.sleep_h,
                "—" if u is None or u.sleep_h is None else f"{u.sleep_h:.1f}",
            ),
            f"  {_w(locale, 'outings')}: "
            + pair(cmp.today.outings, round(u.outings) if u else "—"),
        ]
        if u is None:
            lines.append(_w(locale, "learning"))
        if e.alert_kinds:
            sep = "、" if locale == "zh" else ", "
            kinds = sep.join(kind_word(locale, k) for k in dict.fromkeys(e.alert_kinds))
            lines.append(_w(locale, "alerts_some", n=len(e.alert_kinds), kinds=kinds))
        else:
            lines.append(_w(locale, "alerts_none"))
        if e.open_now:
            lines.append(_w(locale, "alerts_open", n=e.open_now))
        lines.append(_w(locale, "page", url=f"{base_url}/family/{e.elder_id}"))
        blocks.append("\n".join(lines))
    first = elders[0]
    text = "\n\n".join(blocks) + "\n\n" + _w(locale, "footer", hour=f"{hour:02d}") + "\n"
    subject = _w(
        locale, "subject", name=first.name, sentence=usual.sentence(first.cmp, now, locale)
    )
    push = {
        "v": 1,
        "notice": "daily_summary",
        "title": _w(locale, "push_title", name=first.name)[:200],
        "summary": " ".join(sentences)[:300],
        "console_url": f"{base_url}/family/{first.elder_id}",
    }
    return Summary(subject[:250], text, push)


async def queue_due(conn: Conn, now: datetime) -> int:
    """Insert the summaries that are due at `now` and not yet queued (one per family member
    and local day, on the clock of their first elder's home); returns how many."""
    cur = await conn.execute(
        """
        INSERT INTO daily_summaries (user_id, day, due_at, next_try_at)
        SELECT u.id, (%(now)s AT TIME ZONE z.tz)::date, %(now)s, %(now)s
        FROM users u
        CROSS JOIN LATERAL (
            SELECT h.timezone AS tz FROM family_links f JOIN elders e ON e.id = f.elder_id
            JOIN homes h ON h.id = e.home_id WHERE f.user_id = u.id ORDER BY e.id LIMIT 1
        ) z
        WHERE u.role = 'family' AND u.summary_hour IS NOT NULL
          AND extract(hour FROM %(now)s AT TIME ZONE z.tz) >= u.summary_hour
        ON CONFLICT (user_id, day) DO NOTHING
        """,
        {"now": now},
    )
    return cur.rowcount


@dataclass(frozen=True, slots=True)
class Claimed:
    """A summary to send now."""

    user_id: int
    day: date
    attempt: int
    delivered: tuple[str, ...]
    locale: str
    hour: int
    channels: tuple[str, ...]


async def claim(conn: Conn, now: datetime, limit: int = 20) -> list[Claimed]:
    """Claim pending summaries whose time has come: the attempt is counted and the next try
    set before anything is sent (a crash retries later; it never loses a summary)."""
    async with conn.transaction():
        cur = await conn.execute(
            """
            UPDATE daily_summaries s SET attempts = s.attempts + 1,
                   next_try_at = %(now)s + make_interval(secs => %(retry)s)
            FROM users u
            WHERE u.id = s.user_id AND (s.user_id, s.day) IN (
                SELECT user_id, day FROM daily_summaries
                WHERE status = 'pending' AND next_try_at <= %(now)s
                ORDER BY next_try_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
            RETURNING s.user_id, s.day, s.attempts, s.delivered, u.locale,
                      coalesce(u.summary_hour, 0), u.summary_channels
            """,
            {"now": now, "retry": RETRY_S, "limit": limit},
        )
        return [
            Claimed(int(uid), d, int(n), tuple(got), str(loc), int(h), tuple(chans))
            for uid, d, n, got, loc, h, chans in await cur.fetchall()
        ]


async def elder_days(conn: Conn, user_id: int, now: datetime) -> list[ElderDay]:
    """The day of each of the member's elders: today so far from noon, else yesterday. Only
    elders whose current consent covers monitoring and sharing with the family (PIPL: the
    family page answers `consent_missing` without them, and so does the summary)."""
    cur = await conn.execute(
        "SELECT e.id, e.full_name, e.home_id, h.timezone FROM family_links f"
        " JOIN elders e ON e.id = f.elder_id JOIN homes h ON h.id = e.home_id"
        " WHERE f.user_id = %s AND ("
        "   SELECT count(DISTINCT c.purpose) FROM elder_consents c WHERE c.elder_id = e.id"
        "   AND c.withdrawn_at IS NULL AND c.purpose IN ('monitoring', 'share_family')) = 2"
        " ORDER BY e.id",
        (user_id,),
    )
    out = []
    for elder_id, name, home_id, tz in await cur.fetchall():
        local = now.astimezone(ZoneInfo(tz))
        day = local.date() - timedelta(days=1) if local.hour < MORNING_BEFORE else local.date()
        cmp = await usual.compare(conn, home_id, tz, now, day)
        start = datetime.combine(day, time(), tzinfo=ZoneInfo(tz))
        alerts = await conn.execute(
            "SELECT kind, status FROM alerts WHERE home_id = %s AND opened_at >= %s"
            " AND opened_at < %s ORDER BY id",
            (home_id, start, start + timedelta(days=1)),
        )
        rows = await alerts.fetchall()
        opened = await conn.execute(
            "SELECT count(*) FROM alerts WHERE home_id = %s AND status <> 'resolved'", (home_id,)
        )
        still = await opened.fetchone()
        out.append(
            ElderDay(
                str(elder_id),
                str(name),
                str(tz),
                cmp,
                tuple(str(k) for k, _ in rows),
                int(still[0]) if still else 0,
            )
        )
    return out


class Senders:
    """E-mail over SMTP and web push to every browser a member subscribed."""

    def __init__(
        self,
        smtp: SmtpConfig,
        push: WebPushChannel | None,
        http: httpx.AsyncClient,
        ttl_s: int = 12 * 3600,
    ) -> None:
        self._smtp = smtp
        self._push = push
        self._http = http
        self._ttl_s = ttl_s

    async def email(self, target: str, summary: Summary) -> None:
        """Send the summary as plain-text e-mail; a failure is a DeliveryError."""
        msg = EmailMessage()
        msg["From"] = self._smtp.sender
        msg["To"] = target
        msg["Subject"] = summary.subject
        msg["X-Eldercare-Notice"] = "daily_summary"
        msg.set_content(summary.text)
        try:
            await aiosmtplib.send(
                msg,
                hostname=self._smtp.host,
                port=self._smtp.port,
                username=self._smtp.username,
                password=self._smtp.password,
                start_tls=self._smtp.starttls,
                timeout=self._smtp.timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"email to {target}: {exc!r}") from exc

    async def webpush(self, target: str, summary: Summary) -> None:
        """Encrypt and POST the summary's push payload (VAPID-signed); 404/410 is
        SubscriptionGone (the caller forgets the subscription)."""
        from pywebpush import WebPusher, WebPushException

        if self._push is None:
            raise DeliveryError("webpush: no VAPID keys configured")
        try:
            sub = parse_target(target)
        except ValueError as exc:
            raise DeliveryError(f"webpush: stored subscription unusable: {exc}") from exc
        data = json.dumps(summary.push, separators=(",", ":")).encode()
        try:
            body: bytes = WebPusher(sub.info()).encode(data, "aes128gcm")["body"]
            auth = self._push.vapid_headers(sub.endpoint)
        except (WebPushException, ValueError) as exc:
            raise DeliveryError(f"webpush: could not encrypt or sign: {exc!r}") from exc
        headers = {
            **auth,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self._ttl_s),
            "Urgency": "low",
            "Topic": "daily-summary",
        }
        host = httpx.URL(sub.endpoint).host
        try:
            response = await self._http.post(sub.endpoint, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webpush to {host}: {exc!r}") from exc
        if response.status_code in (404, 410):
            raise SubscriptionGone(f"webpush to {host}: HTTP {response.status_code}")
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"webpush to {host}: HTTP {response.status_code}")


class DigestTask:
    """Queues and sends the daily summaries every `poll_s` (a named task of the alerts
    component, next to the care task)."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        senders: Senders,
        base_url: str,
        poll_s: float = 60.0,
        clock: Clock = utc_now,
        on_gone: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._pool = pool
        self._senders = senders
        self._base_url = base_url.rstrip("/")
        self._poll_s = poll_s
        self._clock = clock
        self._on_gone = on_gone

    async def run(self) -> None:
        """Step every `poll_s` until cancelled; a failed step is logged, never fatal."""
        while True:
            try:
                await self.step()
            except (psycopg.Error, OSError) as exc:
                log.warning("daily summary: step failed (%s); retrying", exc)
            await asyncio.sleep(self._poll_s)

    async def step(self) -> int:
        """Queue what is due, then send what is claimed; returns how many were sent."""
        now = self._clock()
        async with self._pool.connection() as conn:
            await queue_due(conn, now)
            await conn.commit()
            claimed = await claim(conn, now)
        sent = 0
        for c in claimed:
            sent += await self._send(c, now)
        return sent

    async def _send(self, c: Claimed, now: datetime) -> int:
        async with self._pool.connection() as conn:
            days = await elder_days(conn, c.user_id, now)
            cur = await conn.execute(
                "SELECT channel, target FROM contact_channels WHERE user_id = %s"
                " AND channel = ANY(%s) ORDER BY position, id",
                (c.user_id, list(c.channels)),
            )
            targets = [(str(ch), str(tg)) for ch, tg in await cur.fetchall()]
        if not days or not targets:
            await self._finish(c, "no_channel", [], "no linked elder" if not days else None)
            return 0
        summary = compose(days, c.locale, c.hour, now, self._base_url)
        got = list(c.delivered)
        errors: list[str] = []
        for channel, target in targets:
            key = f"{channel}:{hashlib.sha256(target.encode()).hexdigest()[:16]}"
            if key in got:
                continue
            try:
                if channel == "email":
                    await self._senders.email(target, summary)
                else:
                    await self._senders.webpush(target, summary)
                got.append(key)
            except SubscriptionGone as exc:
                errors.append(str(exc))
                if self._on_gone is not None:
                    await self._on_gone(target)
            except DeliveryError as exc:
                errors.append(str(exc))
        if got and not errors:
            status = "sent"
        elif c.attempt >= MAX_ATTEMPTS:
            status = "sent" if got else "failed"
        else:
            status = "pending"
        await self._finish(c, status, got, "; ".join(errors) or None, summary.text)
        return 1 if status == "sent" and len(got) > len(c.delivered) else 0

    async def _finish(
        self, c: Claimed, status: str, got: list[str], error: str | None, body: str = ""
    ) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE daily_summaries SET status = %s, delivered = %s, last_error = %s,"
                " body = %s, sent_at = CASE WHEN %s THEN now() ELSE sent_at END"
                " WHERE user_id = %s AND day = %s",
                (status, got, error, body, status == "sent", c.user_id, c.day),
            )
        if error:
            log.warning("daily summary for user %d: %s", c.user_id, error)
