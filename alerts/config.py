"""Settings, metrics and the clock of the alerts stage."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from alerts.vapid import DEFAULT_SUBJECT, check_subject, load_keys

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


class SmsSettings(BaseModel):
    """The `sms` channel: China's SMS providers, with approved templates
    (alerts/notify/cn_cloud.py; docs/alerting.md "Channels for China")."""

    provider: Literal["aliyun", "tencent"] | None = Field(
        default=None, description="aliyun (dysmsapi SendSms) or tencent (SMS 2021-01-11)"
    )
    access_key_id: str = Field(default="", description="Aliyun AccessKey ID / Tencent SecretId")
    access_key_secret: SecretStr = Field(
        default=SecretStr(""), description="Aliyun AccessKey secret / Tencent SecretKey"
    )
    endpoint: str | None = Field(
        default=None,
        description="the API's URL (default https://dysmsapi.aliyuncs.com or"
        " https://sms.tencentcloudapi.com; tests point it at a local server)",
    )
    region: str | None = Field(default=None, description="default cn-hangzhou / ap-guangzhou")
    sdk_app_id: str = Field(default="", description="Tencent SmsSdkAppId")
    sign_name: str = Field(default="", description="the approved signature, e.g. 某某区养老服务")
    template_alert: str = Field(
        default="", description="approved template of a new alert: name, address, what, time, link"
    )
    template_update: str = Field(
        default="", description="approved template of a follow-up: name, what, status"
    )
    template_alert_en: str | None = Field(default=None, description="English variant, if any")
    template_update_en: str | None = Field(default=None, description="English variant, if any")

    @model_validator(mode="after")
    def _complete(self) -> SmsSettings:
        if self.provider is None:
            return self
        missing = [
            name
            for name, value in (
                ("ACCESS_KEY_ID", self.access_key_id),
                ("ACCESS_KEY_SECRET", self.access_key_secret.get_secret_value()),
                ("SIGN_NAME", self.sign_name),
                ("TEMPLATE_ALERT", self.template_alert),
                ("SDK_APP_ID", self.sdk_app_id if self.provider == "tencent" else "-"),
            )
            if not value
        ]
        if missing:
            names = ", ".join(f"ELDERCARE_ALERTS__SMS__{m}" for m in missing)
            raise ValueError(f"SMS provider {self.provider} needs {names}")
        return self


class VoiceSettings(BaseModel):
    """The `voice` channel: Aliyun voice calls (dyvms), text-to-speech; staff get an
    interactive call where pressing 1 acknowledges (gateway/routes/voice.py)."""

    provider: Literal["aliyun"] | None = None
    access_key_id: str = ""
    access_key_secret: SecretStr = SecretStr("")
    endpoint: str | None = Field(
        default=None, description="the API's URL (default https://dyvmsapi.aliyuncs.com)"
    )
    region: str = "cn-hangzhou"
    called_show_number: str = Field(default="", description="the caller number bought from Aliyun")
    tts_code: str = Field(
        default="", description="TTS template of an alert call (name, address, what)"
    )
    ivr_start_code: str = Field(
        default="",
        description="TTS template of a staff member's interactive call (name, address, what;"
        " it says: press 1 to take it); empty: staff get the plain call",
    )
    ivr_ack_code: str = Field(default="", description="TTS template played after pressing 1")
    tts_update_code: str = Field(
        default="",
        description="TTS template of a follow-up call (name, what, status); empty: follow-ups"
        " are not called, the person's next channel gets them",
    )
    play_times: int = Field(default=2, ge=1, le=3)
    callback_token: SecretStr = Field(
        default=SecretStr(""),
        description="unguessable token in the receipt URL /voice/aliyun/<token> (32+ chars)",
    )

    @model_validator(mode="after")
    def _complete(self) -> VoiceSettings:
        if self.provider is None:
            return self
        missing = [
            name
            for name, value in (
                ("ACCESS_KEY_ID", self.access_key_id),
                ("ACCESS_KEY_SECRET", self.access_key_secret.get_secret_value()),
                ("CALLED_SHOW_NUMBER", self.called_show_number),
                ("TTS_CODE", self.tts_code),
            )
            if not value
        ]
        if missing:
            names = ", ".join(f"ELDERCARE_ALERTS__VOICE__{m}" for m in missing)
            raise ValueError(f"voice provider {self.provider} needs {names}")
        if self.ivr_start_code and not self.ivr_ack_code:
            raise ValueError("ELDERCARE_ALERTS__VOICE__IVR_START_CODE needs IVR_ACK_CODE too")
        if self.ivr_start_code and len(self.callback_token.get_secret_value()) < 32:
            raise ValueError(
                "ELDERCARE_ALERTS__VOICE__CALLBACK_TOKEN must be 32+ random characters"
                " (the press-1 receipts are authenticated by it)"
            )
        return self


class AlertSettings(BaseModel):
    """Tuning of the alerts stage."""

    client_id: str = "eldercare-alerts"
    locale: Literal["zh", "en"] = Field(
        default="zh",
        description="the deployment's language: of people who chose none, of new accounts,"
        " of the sign-in page (zh: Simplified Chinese, en: English)",
    )
    timezone: str = Field(
        default="Asia/Shanghai",
        description="the deployment's time zone (IANA name): every time a page, a"
        " notification or a report shows is in it, labelled",
    )
    care_poll_s: float = Field(
        default=60.0, gt=0, description="how often tag visits are imported and weeks closed"
    )
    retry_base_s: float = Field(
        default=5.0,
        gt=0,
        description="a failed notification is retried after this, doubling with each attempt,"
        " less up to a quarter at random (see `retry_delay_s`)",
    )
    max_attempts: int = Field(default=5, ge=1)
    send_concurrency: int = Field(
        default=8,
        ge=1,
        description="notifications the dispatcher claims and sends as one batch, committed"
        " before the next (with the urgent path in the same process, a turn of 30 failing"
        " e-mails sent together held an emergency up 230 ms in the benchmark)",
    )
    poll_s: float = Field(default=1.0, gt=0)
    state_save_s: float = Field(
        default=5.0,
        gt=0,
        description="save the detectors' state of the homes that changed this often"
        " (alerts/detect/state.py; what a kill loses is replayed from the stored readings)",
    )
    store_timeout_s: float = Field(
        default=2.0, gt=0, description="wait this long for the database before the fallback"
    )
    fallback_refresh_s: float = Field(default=60.0, gt=0)
    fast_path: bool = Field(
        default=True,
        description="the urgent path sends an emergency's first round from memory while the "
        "alert is stored, instead of after (alerts/emergency/fastpath.py)",
    )
    fast_path_refresh_s: float = Field(default=2.0, gt=0)
    urgent_separate: bool = Field(
        default=False,
        description="the urgent path runs in its own process (`--components urgent`); the "
        "full-stream alerts component then leaves urgent devices' emergencies to it",
    )
    backup_dispatch_after_s: float = Field(
        default=5.0,
        ge=0,
        description="with the urgent path in its own process (which dispatches at once), the "
        "full-stream process only sends what has been due this long",
    )
    watchdog_s: float = Field(default=30.0, gt=0, description="how often the self-check runs")
    no_readings_after_s: float = Field(
        default=600.0, gt=0, description="no reading from any home this long: technical alert"
    )
    ingest_stale_after_s: float = Field(
        default=180.0, gt=0, description="no ingest heartbeat this long: technical alert"
    )
    send_timeout_s: float = Field(default=10.0, gt=0)
    webhook_secret: SecretStr = SecretStr("development-webhook-secret")
    smtp: SmtpSettings = SmtpSettings()
    sms: SmsSettings = SmsSettings()
    voice: VoiceSettings = VoiceSettings()
    demo_speed: float = Field(
        default=1.0, gt=0, description="divide every escalation delay by this (demo clock)"
    )
    late_after_s: float = Field(
        default=30.0, gt=0, description="a round this late (after an outage) is sent as of now"
    )
    ack_link_secret: SecretStr = SecretStr("development-ack-link-secret")
    ack_link_hours: float = Field(default=24.0, gt=0)
    sos_cancel_window_s: float = Field(
        default=30.0, ge=0, description="a cancel from the device within this undoes an SOS"
    )
    rota_warn_hours: float = Field(
        default=24.0, gt=0, description="warn about uncovered duty hours this far ahead"
    )
    rota_check_s: float = Field(default=600.0, gt=0)
    vapid_private_key: SecretStr | None = Field(
        default=None,
        description="web push VAPID private key (base64url raw or PEM); development creates one",
    )
    vapid_public_key: str | None = Field(
        default=None, description="must match the private key when given"
    )
    vapid_subject: str = Field(
        default=DEFAULT_SUBJECT, description="mailto: or https: contact for push services"
    )
    webpush_ttl_s: int = Field(
        default=3600, ge=0, le=28 * 86400, description="push services keep a message this long"
    )
    webpush_allow_loopback: bool = Field(
        default=False, description="accept http://127.0.0.1 push endpoints (tests only)"
    )

    @field_validator("vapid_subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        return check_subject(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {value!r} (an IANA name: Asia/Shanghai)") from e
        return value

    def zone(self) -> ZoneInfo:
        """The deployment's time zone."""
        return ZoneInfo(self.timezone)

    @model_validator(mode="after")
    def _vapid_pair(self) -> AlertSettings:
        if self.vapid_private_key is not None:
            load_keys(
                self.vapid_private_key.get_secret_value(),
                self.vapid_public_key,
                self.vapid_subject,
                None,
            )
        elif self.vapid_public_key is not None:
            raise ValueError("ELDERCARE_ALERTS__VAPID_PUBLIC_KEY needs the private key too")
        return self


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
        self.consent_muted = Counter(
            "eldercare_signals_without_consent",
            "wellbeing/health/environment signals not raised: no current monitoring consent",
            ["kind"],
            registry=registry,
        )
        self.uncovered = Gauge(
            "eldercare_rota_uncovered_seconds",
            "seconds with nobody on duty in the look-ahead window",
            ["region", "tier"],
            registry=registry,
        )


def retry_delay_s(base_s: float, attempts: int, rng: random.Random | None = None) -> float:
    """Seconds before retrying something that has failed `attempts` times before this one
    (0, 1, ...): `base_s * 2**attempts`, less up to a quarter at random. Failures of one turn
    (one outage of a channel) are retried spread out, not all again in one later turn:
    without it they stayed in lockstep, and the batch grew with each turn's new failures."""
    full = base_s * 2 ** min(attempts, 30)
    return float(full * (rng or random).uniform(0.75, 1.0))
