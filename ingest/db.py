"""Database settings and connection helpers shared by every stage."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, field_validator


class DatabaseSettings(BaseModel):
    """How to reach PostgreSQL (or TimescaleDB)."""

    url: SecretStr | None = Field(
        default=None, description="postgresql://user:password@host:5432/dbname"
    )
    pool_min: int = Field(
        default=4,
        ge=1,
        description="connections each process keeps open (an SOS after a quiet night must not"
        " wait for a new one)",
    )
    pool_max: int = Field(default=10, ge=1)
    timescale: bool | None = Field(
        default=None,
        description="force the TimescaleDB path on (true) or off (false); detect when unset",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError("database URL must start with postgresql://")
        return value

    def dsn(self) -> str:
        """The connection string; raises a clear error when none is configured."""
        if self.url is None:
            raise ValueError(
                "no database configured: set ELDERCARE_DATABASE__URL=postgresql://... "
                "(or use `eldercare up`, which starts an embedded PostgreSQL)"
            )
        return self.url.get_secret_value()
