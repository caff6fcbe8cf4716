"""The HTTP server's settings (``ELDERCARE_GATEWAY__*``, part of runtime.settings.Settings)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


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

    def base_url(self) -> str:
        """The public URL, or the local one."""
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"
