"""The one settings class: ``ELDERCARE_*`` environment variables, nested per subsystem.

Nested fields use a double underscore: ``ELDERCARE_DATABASE__URL``,
``ELDERCARE_MQTT__URL``, ``ELDERCARE_ALERTS__SMTP__HOST``...
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerts.config import AlertSettings
from alerts.lease import LeaseSettings
from alerts.vapid import DEFAULT_SUBJECT
from devices.mqtt import MqttSettings
from gateway.config import GatewaySettings
from ingest.broker_files import BrokerSettings
from ingest.db import DatabaseSettings
from ingest.service import IngestSettings

PLACEHOLDER_SECRETS = {
    "development-webhook-secret",
    "development-session-secret",
    "development-ack-link-secret",
    "change-me",
    "changeme",
    "secret",
}

_UNSET = SecretStr("")  # a secret left unset: too short, like a placeholder


class Settings(BaseSettings):
    """Everything the service needs to start, validated at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="ELDERCARE_",
        env_nested_delimiter="__",
        env_file=None,
        extra="forbid",
    )

    environment: Literal["development", "production"] = "development"
    state_dir: Path = Field(
        default=Path(".eldercare"),
        description="where `eldercare up` keeps the embedded database and broker data",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    shutdown_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="a process asked to stop that has not stopped after this long logs what"
        " it is stuck in and exits (code 70): a crash, which the service is built to survive,"
        " rather than a process that never ends",
    )
    instance_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,40}$",
        description="this instance's name when several run against one database and broker"
        " (e.g. the systemd instance `%i`): its MQTT client ids end in it, so it must stay the"
        " same across restarts (the broker keeps its sessions by client id), and ingest then"
        " shares the readings through `$share/eldercare-ingest/...` unless"
        " ELDERCARE_INGEST__SHARED_GROUP says otherwise; unset: one instance, host:pid as the"
        " holder name of its leases",
    )
    leases: LeaseSettings = LeaseSettings()
    database: DatabaseSettings = DatabaseSettings()
    mqtt: MqttSettings = MqttSettings()
    ingest: IngestSettings = IngestSettings()
    alerts: AlertSettings = AlertSettings()
    gateway: GatewaySettings = GatewaySettings()
    broker: BrokerSettings = BrokerSettings()

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.environment == "production":
            bad = [
                name
                for name, value in (
                    ("ELDERCARE_ALERTS__WEBHOOK_SECRET", self.alerts.webhook_secret),
                    ("ELDERCARE_GATEWAY__SESSION_SECRET", self.gateway.session_secret),
                    ("ELDERCARE_ALERTS__ACK_LINK_SECRET", self.alerts.ack_link_secret),
                    ("ELDERCARE_GATEWAY__METRICS_TOKEN", self.gateway.metrics_token or _UNSET),
                )
                if value.get_secret_value() in PLACEHOLDER_SECRETS
                or len(value.get_secret_value()) < 16
            ]
            if bad:
                raise ValueError(
                    "production refuses placeholder secrets; set "
                    + ", ".join(bad)
                    + " to random values of at least 16 characters"
                )
            if self.alerts.vapid_private_key is None:
                raise ValueError(
                    "production needs web push keys: set ELDERCARE_ALERTS__VAPID_PRIVATE_KEY and"
                    " ELDERCARE_ALERTS__VAPID_PUBLIC_KEY (see docs/alerting.md)"
                )
            if self.alerts.vapid_subject == DEFAULT_SUBJECT:
                raise ValueError(
                    "production needs ELDERCARE_ALERTS__VAPID_SUBJECT: a mailto: or https:"
                    " contact of the operator"
                )
            if self.alerts.webpush_allow_loopback:
                raise ValueError("production refuses ELDERCARE_ALERTS__WEBPUSH_ALLOW_LOOPBACK")
            if not self.gateway.cookie_secure:
                raise ValueError(
                    "production needs ELDERCARE_GATEWAY__COOKIE_SECURE=true (HTTPS only cookies)"
                )
        return self


class SettingsError(Exception):
    """Settings could not be loaded; the message says what to fix."""


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, turning validation errors into one clear message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = (
                "ELDERCARE_" + "__".join(str(p).upper() for p in err["loc"])
                if err["loc"]
                else "settings"
            )
            lines.append(f"  {where}: {err['msg']}")
        raise SettingsError("invalid settings:\n" + "\n".join(lines)) from None
