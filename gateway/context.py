"""What the HTTP app runs on: the resources the composition root owns (`AppContext`) and
what the app builds on them once (`GatewayState`: the authenticator and the metrics)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from alerts.config import AlertSettings
from gateway.auth import Authenticator
from gateway.config import GatewaySettings
from gateway.live import Broadcaster
from gateway.observe import GatewayMetrics
from ingest.broker_files import BrokerSettings

DEPLOYMENT_TZ = ZoneInfo("Asia/Shanghai")
"""Where a deployment is by default (homes carry their own zone): "this week" of a request."""


def _no_checks() -> dict[str, bool]:
    return {}


def utc_now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


@dataclass
class AppContext:
    """Everything the HTTP app uses, owned and started by the composition root."""

    settings: GatewaySettings
    pool: AsyncConnectionPool[Any]
    broadcaster: Broadcaster
    metrics: CollectorRegistry
    health: Callable[[], dict[str, bool]] = _no_checks
    """Extra health checks (name → ok), e.g. the ingester's MQTT connection."""
    alert_settings: AlertSettings | None = None
    """The alerting settings (the secret of one-click acknowledge links, web push); without
    them acknowledge links answer 503."""
    vapid_public_key: str | None = None
    """The web push public key; without it the push routes answer 503."""
    clock: Callable[[], datetime] = utc_now
    """The time of a request."""
    local_tz: ZoneInfo = DEPLOYMENT_TZ
    """The deployment's time zone (`ELDERCARE_ALERTS__TIMEZONE`): every time a page shows is
    in it, labelled; "this week" of a request that names none."""
    default_locale: str = "zh"
    """The deployment's language (`ELDERCARE_ALERTS__LOCALE`): of the sign-in page and of
    people who chose none."""
    broker: BrokerSettings | None = None
    """Where the broker's password file and ACL are and how it is reloaded
    (`ELDERCARE_BROKER__*`), for device changes; None: the registry only."""


@dataclass(frozen=True, slots=True)
class GatewayState:
    """The app's shared state, kept in `app.state.gateway` and reached through
    `gateway.deps`."""

    ctx: AppContext
    auth: Authenticator
    metrics: GatewayMetrics
