"""Settings, metrics and the clock of the alerts stage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel, Field, SecretStr

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


class SmtpSettings(BaseModel):
    """The SMTP server that e-mail notifications are handed to."""

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = "eldercare@localhost"
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False


class AlertSettings(BaseModel):
    """Tuning of the alerts stage."""

    client_id: str = "eldercare-alerts"
    repeat_s: float = Field(default=300.0, gt=0, description="repeat until acknowledged")
    retry_base_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    poll_s: float = Field(default=1.0, gt=0)
    store_timeout_s: float = Field(
        default=2.0, gt=0, description="wait this long for the database before the fallback"
    )
    fallback_refresh_s: float = Field(default=60.0, gt=0)
    send_timeout_s: float = Field(default=10.0, gt=0)
    webhook_secret: SecretStr = SecretStr("development-webhook-secret")
    smtp: SmtpSettings = SmtpSettings()


class AlertMetrics:
    """Prometheus counters of the alerts stage."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.opened = Counter(
            "eldercare_alerts_opened", "alerts opened", ["kind", "severity"], registry=registry
        )
        self.notifications = Counter(
            "eldercare_notifications",
            "notification attempts",
            ["channel", "result"],
            registry=registry,
        )
        self.fallback = Counter(
            "eldercare_fallback_notifications",
            "emergency notifications sent from cached contacts while the store was unavailable",
            registry=registry,
        )
        self.alert_latency = Histogram(
            "eldercare_alert_commit_seconds",
            "reading received to alert committed",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
