"""The HTTP server's settings (``ELDERCARE_GATEWAY__*``, part of runtime.settings.Settings)."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, Field, SecretStr, field_validator


class GatewaySettings(BaseModel):
    """The HTTP server."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str = Field(
        default="", description="URL people use to reach the console (links in notifications)"
    )
    session_secret: SecretStr = SecretStr("development-session-secret")
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    cookie_secure: bool = Field(
        default=False, description="send the session cookie over HTTPS only (production)"
    )
    login_attempts_per_minute: int = Field(default=10, ge=1)
    metrics_token: SecretStr | None = Field(
        default=None,
        description="bearer token /metrics asks for (Authorization: Bearer TOKEN); unset:"
        " /metrics is open (development only: production requires it)",
    )
    trusted_proxies: str = Field(
        default="127.0.0.1,::1",
        description="comma-separated addresses or networks (or '*') of the reverse proxies"
        " whose X-Forwarded-Proto / X-Forwarded-For the server believes; from any other"
        " client those headers are ignored; empty: none",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        for entry in filter(None, (part.strip() for part in value.split(","))):
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an IP address or network (e.g."
                    " 10.0.0.5, 10.0.0.0/24, ::1) nor '*'"
                ) from None
        return value

    def base_url(self) -> str:
        """The public URL, or the local one."""
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"
