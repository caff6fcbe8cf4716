"""What a notification says, to whom: the value every channel renders."""

from __future__ import annotations

from dataclasses import dataclass

from alerts.model import Alert


@dataclass(slots=True, frozen=True)
class Notice:
    """What a notification says: which alert, which round, to whom."""

    alert: Alert
    round: int
    user_id: int | None
    console_url: str
    notice: str = "alert"
    """What the message says: `alert` (please respond), or a follow-up: `acknowledged`
    (someone owns it now), `cancelled` (by the elder), `cleared` (by the data), `resolved`."""
    ack_url: str | None = None
    """A signed one-click acknowledge link for this recipient (staff only)."""
    locale: str = "zh"
    """The recipient's language (users.locale; the deployment's for someone with none)."""
    address: str | None = None
    """The home's address (homes.address)."""
    timezone: str = "Asia/Shanghai"
    """The deployment's time zone: every time the message shows is in it, labelled."""
