"""Unit tests for the one settings class (runtime.settings)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from alerts.vapid import generate_private_key, public_key_of
from ingest.db import DatabaseSettings
from runtime.settings import Settings, SettingsError, load_settings

REAL_WEBHOOK_SECRET = "wh-6f1c0e9a7b3d4e21a9c8"
REAL_SESSION_SECRET = "ss-0b7e5d2c9a4f4c3e8d11"
VAPID_PRIVATE = generate_private_key()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test without any ELDERCARE_* variable from the outer environment."""
    for name in list(os.environ):
        if name.upper().startswith("ELDERCARE_"):
            monkeypatch.delenv(name)


def set_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELDERCARE_ENVIRONMENT", "production")
    monkeypatch.setenv("ELDERCARE_ALERTS__WEBHOOK_SECRET", REAL_WEBHOOK_SECRET)
    monkeypatch.setenv("ELDERCARE_GATEWAY__SESSION_SECRET", REAL_SESSION_SECRET)
    monkeypatch.setenv("ELDERCARE_ALERTS__ACK_LINK_SECRET", "ack-link-secret-" + "9" * 20)
    monkeypatch.setenv("ELDERCARE_GATEWAY__COOKIE_SECURE", "true")
    monkeypatch.setenv("ELDERCARE_ALERTS__VAPID_PRIVATE_KEY", VAPID_PRIVATE)
    monkeypatch.setenv("ELDERCARE_ALERTS__VAPID_PUBLIC_KEY", public_key_of(VAPID_PRIVATE))
    monkeypatch.setenv("ELDERCARE_ALERTS__VAPID_SUBJECT", "mailto:ops@example.org")
    monkeypatch.setenv("ELDERCARE_GATEWAY__METRICS_TOKEN", "metrics-" + "7" * 24)


def test_defaults_are_a_working_development_setup() -> None:
    s = load_settings()
    assert isinstance(s, Settings)
    assert s.environment == "development"
    assert s.database.url is None
    assert s.mqtt.url == "mqtt://127.0.0.1:1883"
    assert s.gateway.cookie_secure is False
    assert s.gateway.base_url() == "http://127.0.0.1:8000"


def test_reads_nested_variables_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELDERCARE_DATABASE__URL", "postgresql://u:pw@db.example:5432/care")
    monkeypatch.setenv("ELDERCARE_MQTT__URL", "mqtt://ingest:pw@broker.example:1884")
    monkeypatch.setenv("ELDERCARE_MQTT__PROTOCOL", "3.1.1")
    monkeypatch.setenv("ELDERCARE_INGEST__BATCH_MAX_ROWS", "500")
    monkeypatch.setenv("ELDERCARE_ALERTS__SMTP__HOST", "smtp.example")
    monkeypatch.setenv("ELDERCARE_ALERTS__SMTP__PORT", "2525")
    monkeypatch.setenv("ELDERCARE_GATEWAY__PORT", "9000")
    monkeypatch.setenv("ELDERCARE_GATEWAY__PUBLIC_URL", "https://care.example/")
    monkeypatch.setenv("ELDERCARE_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("ELDERCARE_STATE_DIR", "/var/lib/eldercare")

    s = load_settings()

    assert s.database.dsn() == "postgresql://u:pw@db.example:5432/care"
    assert s.mqtt.url == "mqtt://ingest:pw@broker.example:1884"
    assert s.mqtt.protocol == "3.1.1"
    assert s.ingest.batch_max_rows == 500
    assert (s.alerts.smtp.host, s.alerts.smtp.port) == ("smtp.example", 2525)
    assert s.gateway.port == 9000
    assert s.gateway.base_url() == "https://care.example"
    assert s.log_level == "DEBUG"
    assert s.state_dir == Path("/var/lib/eldercare")


def test_keyword_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELDERCARE_LOG_LEVEL", "DEBUG")
    assert load_settings(log_level="ERROR").log_level == "ERROR"


def test_database_secret_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELDERCARE_DATABASE__URL", "postgresql://u:hunter2@db/care")
    s = load_settings()
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s.database)


@pytest.mark.parametrize(
    "url",
    ["http://broker:1883", "broker:1883", "mqtt://", "mqtt://:1883", "", "ws://broker/mqtt"],
)
def test_invalid_broker_url_names_the_variable(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("ELDERCARE_MQTT__URL", url)
    with pytest.raises(SettingsError, match="ELDERCARE_MQTT__URL") as info:
        load_settings()
    assert "mqtt://host:1883" in str(info.value)


@pytest.mark.parametrize("url", ["mqtt://broker:1883", "tcp://10.0.0.5:1883", "mqtt://b"])
def test_valid_broker_urls(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("ELDERCARE_MQTT__URL", url)
    assert load_settings().mqtt.url == url


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "sqlite:///tmp/x.db", "host=db dbname=care", "postgresql:/db"]
)
def test_database_url_must_be_postgresql(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("ELDERCARE_DATABASE__URL", url)
    with pytest.raises(SettingsError, match="ELDERCARE_DATABASE__URL") as info:
        load_settings()
    assert "postgresql://" in str(info.value)


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgres://u@h:5433/db"])
def test_both_postgresql_schemes_are_accepted(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("ELDERCARE_DATABASE__URL", url)
    assert load_settings().database.dsn() == url


def test_every_invalid_variable_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELDERCARE_DATABASE__URL", "mysql://u@h/db")
    monkeypatch.setenv("ELDERCARE_MQTT__URL", "http://broker")
    monkeypatch.setenv("ELDERCARE_GATEWAY__PORT", "70000")
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    for name in ("ELDERCARE_DATABASE__URL", "ELDERCARE_MQTT__URL", "ELDERCARE_GATEWAY__PORT"):
        assert name in message


def test_production_refuses_placeholder_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELDERCARE_ENVIRONMENT", "production")
    monkeypatch.setenv("ELDERCARE_GATEWAY__COOKIE_SECURE", "true")
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "ELDERCARE_ALERTS__WEBHOOK_SECRET" in message
    assert "ELDERCARE_GATEWAY__SESSION_SECRET" in message


@pytest.mark.parametrize("placeholder", ["change-me", "development-webhook-secret", "short"])
def test_production_names_only_the_bad_secret(
    monkeypatch: pytest.MonkeyPatch, placeholder: str
) -> None:
    set_production(monkeypatch)
    monkeypatch.setenv("ELDERCARE_ALERTS__WEBHOOK_SECRET", placeholder)
    with pytest.raises(SettingsError, match="ELDERCARE_ALERTS__WEBHOOK_SECRET") as info:
        load_settings()
    assert "ELDERCARE_GATEWAY__SESSION_SECRET" not in str(info.value)
    assert placeholder not in str(info.value).replace("ELDERCARE_", "")


def test_production_needs_secure_cookies(monkeypatch: pytest.MonkeyPatch) -> None:
    set_production(monkeypatch)
    monkeypatch.setenv("ELDERCARE_GATEWAY__COOKIE_SECURE", "false")
    with pytest.raises(SettingsError, match="ELDERCARE_GATEWAY__COOKIE_SECURE"):
        load_settings()


def test_production_with_real_secrets_and_secure_cookies_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_production(monkeypatch)
    s = load_settings()
    assert s.environment == "production"
    assert s.gateway.cookie_secure is True
    assert s.alerts.webhook_secret.get_secret_value() == REAL_WEBHOOK_SECRET
    assert s.gateway.session_secret.get_secret_value() == REAL_SESSION_SECRET


@pytest.mark.parametrize("token", [None, "short", "change-me"])
def test_production_needs_a_metrics_token(
    monkeypatch: pytest.MonkeyPatch, token: str | None
) -> None:
    set_production(monkeypatch)
    if token is None:
        monkeypatch.delenv("ELDERCARE_GATEWAY__METRICS_TOKEN")
    else:
        monkeypatch.setenv("ELDERCARE_GATEWAY__METRICS_TOKEN", token)
    with pytest.raises(SettingsError, match="ELDERCARE_GATEWAY__METRICS_TOKEN") as info:
        load_settings()
    assert "ELDERCARE_GATEWAY__SESSION_SECRET" not in str(info.value)


def test_trusted_proxies_are_addresses_or_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().gateway.trusted_proxies == "127.0.0.1,::1"
    monkeypatch.setenv("ELDERCARE_GATEWAY__TRUSTED_PROXIES", "10.0.0.5, 10.1.0.0/16,::1")
    assert load_settings().gateway.trusted_proxies == "10.0.0.5, 10.1.0.0/16,::1"
    monkeypatch.setenv("ELDERCARE_GATEWAY__TRUSTED_PROXIES", "10.0.0.5,proxy.example")
    with pytest.raises(SettingsError, match="ELDERCARE_GATEWAY__TRUSTED_PROXIES"):
        load_settings()


def test_production_needs_vapid_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    set_production(monkeypatch)
    monkeypatch.delenv("ELDERCARE_ALERTS__VAPID_PRIVATE_KEY")
    monkeypatch.delenv("ELDERCARE_ALERTS__VAPID_PUBLIC_KEY")
    with pytest.raises(SettingsError, match="ELDERCARE_ALERTS__VAPID_PRIVATE_KEY"):
        load_settings()


def test_production_needs_a_vapid_contact(monkeypatch: pytest.MonkeyPatch) -> None:
    set_production(monkeypatch)
    monkeypatch.delenv("ELDERCARE_ALERTS__VAPID_SUBJECT")
    with pytest.raises(SettingsError, match="ELDERCARE_ALERTS__VAPID_SUBJECT"):
        load_settings()


def test_vapid_public_key_must_match_the_private_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELDERCARE_ALERTS__VAPID_PRIVATE_KEY", VAPID_PRIVATE)
    monkeypatch.setenv("ELDERCARE_ALERTS__VAPID_PUBLIC_KEY", public_key_of(generate_private_key()))
    with pytest.raises(SettingsError, match="does not belong"):
        load_settings()
    monkeypatch.setenv("ELDERCARE_ALERTS__VAPID_PRIVATE_KEY", "not-a-key")
    with pytest.raises(SettingsError, match="VAPID private key not usable"):
        load_settings()


def test_vapid_subject_must_be_mailto_or_https(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELDERCARE_ALERTS__VAPID_SUBJECT", "ops@example.org")
    with pytest.raises(SettingsError, match="VAPID subject"):
        load_settings()


def test_development_accepts_placeholder_secrets() -> None:
    s = load_settings()
    assert s.alerts.webhook_secret.get_secret_value() == "development-webhook-secret"


def test_unknown_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELDERCARE_ENVIRONMENT", "staging")
    with pytest.raises(SettingsError, match="ELDERCARE_ENVIRONMENT"):
        load_settings()


def test_dsn_without_url_explains_what_to_set() -> None:
    with pytest.raises(ValueError, match="ELDERCARE_DATABASE__URL") as info:
        DatabaseSettings().dsn()
    assert "no database configured" in str(info.value)
    assert "eldercare up" in str(info.value)


def test_settings_instances_do_not_share_nested_state(monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_settings()
    monkeypatch.setenv("ELDERCARE_INGEST__BATCH_MAX_ROWS", "7")
    second = load_settings()
    assert (first.ingest.batch_max_rows, second.ingest.batch_max_rows) == (2000, 7)
