"""Several instances of the service against one database and broker: their names, MQTT
client ids and the ingest share group (docs/operations.md "Two instances")."""

from __future__ import annotations

import os
import socket

from ingest.service import IngestSettings
from runtime.settings import Settings

DEFAULT_INGEST_GROUP = "eldercare-ingest"
"""The shared-subscription group of ingest when instances are named."""


def holder_name(settings: Settings) -> str:
    """Who holds this process's leases, for people: the instance id, else host:pid."""
    return settings.instance_id or f"{socket.gethostname()}:{os.getpid()}"


def client_id(settings: Settings, base: str, suffix: str = "") -> str:
    """An MQTT client id of this instance: `base`, the instance id, `suffix`
    (`eldercare-alerts-b-urgent`). Without an instance id: `base` + `suffix`, as one
    instance always had."""
    middle = f"-{settings.instance_id}" if settings.instance_id else ""
    return f"{base}{middle}{suffix}"


def commands_client_id(settings: Settings, full: bool) -> str:
    """The client id of the alerts' device-command publisher: one per process, so the
    full-stream alerts process and an urgent-only process beside it (`--components urgent`)
    never take each other's session (they did: both were `<alerts id>-commands`, and the
    broker disconnected one at each connect of the other, every second)."""
    return client_id(
        settings, settings.alerts.client_id, "-commands" if full else "-urgent-commands"
    )


def ingest_settings(settings: Settings) -> IngestSettings:
    """Ingest's settings for this instance: its own client id, and a shared subscription
    (`DEFAULT_INGEST_GROUP` unless one is set) once instances are named, so that the
    instances split the readings and each one is stored by one of them."""
    ingest = settings.ingest
    if settings.instance_id is None:
        return ingest
    return ingest.model_copy(
        update={
            "client_id": client_id(settings, ingest.client_id),
            "shared_group": ingest.shared_group or DEFAULT_INGEST_GROUP,
        }
    )
