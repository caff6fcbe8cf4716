"""The signed one-click acknowledge link of a notification: a page that shows the alert and
one button to take it. Following the link changes nothing (mail scanners open links); the
button does, as the person the link was sent to. A connection is taken only for a valid
link. The page is in that person's language, its times in the deployment's time zone,
labelled (alerts/notify/messages.py)."""

from __future__ import annotations

import html
from typing import Any

import psycopg
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from alerts import store, views
from alerts.config import AlertSettings
from alerts.model import Alert, Scope, Status
from alerts.notify import messages
from alerts.notify.links import check_ack_token
from gateway.deps import AlertConfig, Clock, Pool

router = APIRouter(include_in_schema=False)


def _page(locale: str, title: str, body: str, status: int = 200) -> HTMLResponse:
    lang = "zh-CN" if locale == "zh" else "en"
    return HTMLResponse(
        f"<!doctype html><html lang={lang}><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width'>"
        f"<title>{html.escape(title)}</title><link rel=stylesheet href='/static/style.css'>"
        f"<main style='max-width:36em;margin:2em auto;font-family:sans-serif'>"
        f"<h1>{html.escape(title)}</h1>{body}</main></html>",
        status_code=status,
    )


def _invalid(locale: str) -> HTMLResponse:
    t = messages.say
    return _page(
        locale, t(locale, "ack.invalid_title"), f"<p>{t(locale, 'ack.invalid_body')}</p>", 403
    )


def _no_alert(locale: str) -> HTMLResponse:
    t = messages.say
    return _page(
        locale, t(locale, "ack.missing_title"), f"<p>{t(locale, 'ack.missing_body')}</p>", 404
    )


async def _locale_of(
    conn: psycopg.AsyncConnection[Any], user_id: int, settings: AlertSettings
) -> str:
    """The language of the person the link was sent to (the deployment's if they have none)."""
    cur = await conn.execute("SELECT locale FROM users WHERE id = %s", (user_id,))
    row = await cur.fetchone()
    return messages.locale_of(None if row is None else row[0], settings.locale)


def _info(alert: Alert, locale: str, settings: AlertSettings) -> str:
    """What happened, to whom, where and since when (deployment time zone, labelled)."""
    who = html.escape(alert.elder_name or alert.home_id or messages.say(locale, "the_service"))
    since = messages.say(
        locale, "ack.since", time=messages.when(alert.opened_at, settings.timezone, locale)
    )
    return (
        f"<p><strong>{html.escape(messages.what(locale, alert.kind))}</strong> — {who}, "
        f"{html.escape(alert.village or '')}<br>{html.escape(since)}</p>"
        f"<p><small>{html.escape(alert.summary)}</small></p>"
    )


@router.get("/ack/{token}")
async def ack_page(token: str, settings: AlertConfig, clock: Clock, pool: Pool) -> HTMLResponse:
    """The link in a notification: shows the alert and one button to take it, in the
    recipient's language."""
    grant = check_ack_token(settings.ack_link_secret.get_secret_value().encode(), token, clock())
    if grant is None:
        return _invalid(settings.locale)
    async with pool.connection() as conn:
        locale = await _locale_of(conn, grant.user_id, settings)
        alert = await views.get_alert(conn, Scope(everything=True), grant.alert_id)
    if alert is None:
        return _no_alert(locale)
    t = messages.say
    info = _info(alert, locale, settings)
    if alert.status is not Status.OPEN:
        by = html.escape(alert.acknowledged_by_name or t(locale, "ack.someone_else"))
        state = t(locale, f"state.{alert.status.value}")
        return _page(
            locale,
            t(locale, "ack.taken_title"),
            f"{info}<p>{t(locale, 'ack.taken_by', by=by, status=state)}</p>",
        )
    form = (
        f"<form method=post action='/ack/{html.escape(token)}'>"
        "<button type=submit style='font-size:1.4em;padding:.5em 1em'>"
        f"{html.escape(t(locale, 'ack.button'))}</button></form>"
    )
    return _page(locale, t(locale, "ack.title"), info + form)


@router.post("/ack/{token}")
async def ack_by_link(token: str, settings: AlertConfig, clock: Clock, pool: Pool) -> HTMLResponse:
    """Acknowledge as the person the link was sent to."""
    grant = check_ack_token(settings.ack_link_secret.get_secret_value().encode(), token, clock())
    if grant is None:
        return _invalid(settings.locale)
    async with pool.connection() as conn:
        done = await store.acknowledge(conn, grant.alert_id, grant.user_id, "link")
        alert = await views.get_alert(conn, Scope(everything=True), grant.alert_id)
        locale = await _locale_of(conn, grant.user_id, settings)
    if alert is None:
        return _no_alert(locale)
    t = messages.say
    if done:
        return _page(
            locale,
            t(locale, "ack.done_title"),
            _info(alert, locale, settings) + f"<p>{html.escape(t(locale, 'ack.done_body'))}</p>",
        )
    by = html.escape(alert.acknowledged_by_name or t(locale, "ack.someone_else"))
    return _page(
        locale, t(locale, "ack.taken_title"), f"<p>{t(locale, 'ack.taken_before', by=by)}</p>", 409
    )
