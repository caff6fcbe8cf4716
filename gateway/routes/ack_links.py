"""The signed one-click acknowledge link of a notification: a page that shows the alert and
one button to take it. Following the link changes nothing (mail scanners open links); the
button does, as the person the link was sent to. A connection is taken only for a valid
link."""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from alerts import store, views
from alerts.model import Scope, Status
from alerts.notify.links import check_ack_token
from gateway.deps import AlertConfig, Clock, Pool

router = APIRouter(include_in_schema=False)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        f"<title>{html.escape(title)}</title><link rel=stylesheet href='/static/style.css'>"
        f"<main style='max-width:36em;margin:2em auto;font-family:sans-serif'>"
        f"<h1>{html.escape(title)}</h1>{body}</main>",
        status_code=status,
    )


def _invalid() -> HTMLResponse:
    return _page("Link not valid", "<p>This link is expired or damaged.</p>", 403)


def _no_alert() -> HTMLResponse:
    return _page("No such alert", "<p>The alert does not exist.</p>", 404)


@router.get("/ack/{token}")
async def ack_page(token: str, settings: AlertConfig, clock: Clock, pool: Pool) -> HTMLResponse:
    """The link in a notification: shows the alert and one button to take it."""
    grant = check_ack_token(settings.ack_link_secret.get_secret_value().encode(), token, clock())
    if grant is None:
        return _invalid()
    async with pool.connection() as conn:
        alert = await views.get_alert(conn, Scope(everything=True), grant.alert_id)
    if alert is None:
        return _no_alert()
    who = html.escape(alert.elder_name or alert.home_id or "the service")
    info = (
        f"<p><strong>{html.escape(alert.summary)}</strong> — {who}, "
        f"{html.escape(alert.village or '')}<br>since {alert.opened_at:%Y-%m-%d %H:%M} UTC</p>"
    )
    if alert.status is not Status.OPEN:
        by = html.escape(alert.acknowledged_by_name or "someone")
        return _page("Already taken", f"{info}<p>{by} owns this alert ({alert.status.value}).</p>")
    form = (
        f"<form method=post action='/ack/{html.escape(token)}'>"
        "<button type=submit style='font-size:1.4em;padding:.5em 1em'>I'll take it</button>"
        "</form>"
    )
    return _page("Acknowledge alert", info + form)


@router.post("/ack/{token}")
async def ack_by_link(token: str, settings: AlertConfig, clock: Clock, pool: Pool) -> HTMLResponse:
    """Acknowledge as the person the link was sent to."""
    grant = check_ack_token(settings.ack_link_secret.get_secret_value().encode(), token, clock())
    if grant is None:
        return _invalid()
    async with pool.connection() as conn:
        done = await store.acknowledge(conn, grant.alert_id, grant.user_id, "link")
        alert = await views.get_alert(conn, Scope(everything=True), grant.alert_id)
    if alert is None:
        return _no_alert()
    if done:
        return _page(
            "You own this alert",
            f"<p>{html.escape(alert.summary)} — {html.escape(alert.elder_name or '')}.</p>"
            "<p>The others have been told, and the home unit says help is on the way.</p>",
        )
    by = html.escape(alert.acknowledged_by_name or "someone else")
    return _page("Already taken", f"<p>{by} already owns this alert.</p>", 409)
