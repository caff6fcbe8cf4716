"""What the command groups share: the settings (a clear error and exit 2 when they are
invalid) and where the database and the broker are (from the settings, else from the
`urls.json` a running `eldercare up` wrote)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from devices.mqtt import MqttSettings
from runtime.settings import Settings, SettingsError, load_settings

URLS_FILE = "urls.json"
"""Written by `eldercare up` in its state directory: the demo's database and broker URLs."""

console = Console(stderr=True)


def settings_or_exit(**overrides: Any) -> Settings:
    """The settings (ELDERCARE_* variables, then `overrides`); exits 2 with the reason when
    they are invalid."""
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def endpoints(state_dir: Path | None) -> tuple[str, str, str]:
    """(database URL, broker URL, protocol): from settings, else from a running `up`."""
    current = settings_or_exit()
    state = (state_dir or current.state_dir).resolve()
    urls_file = state / URLS_FILE
    if current.database.url is not None:
        return current.database.dsn(), current.mqtt.url, current.mqtt.protocol
    if urls_file.exists():
        urls = json.loads(urls_file.read_text())
        return str(urls["database"]), str(urls["mqtt"]), str(urls["protocol"])
    console.print(
        f"[red]no database configured and no running demo found in {state}[/red]: "
        "start `eldercare up` first, or set ELDERCARE_DATABASE__URL and ELDERCARE_MQTT__URL"
    )
    raise typer.Exit(2)


MqttCaFile = Annotated[
    Path | None,
    typer.Option(
        "--mqtt-ca-file",
        envvar="ELDERCARE_MQTT__TLS_CA_FILE",
        help="mqtts://: PEM CA the broker's certificate is checked against (default: the system's)",
    ),
]
MqttCertFile = Annotated[
    Path | None,
    typer.Option(
        "--mqtt-cert-file",
        envvar="ELDERCARE_MQTT__TLS_CERT_FILE",
        help="mqtts://: PEM client certificate, for a broker that asks for one",
    ),
]
MqttKeyFile = Annotated[
    Path | None,
    typer.Option(
        "--mqtt-key-file",
        envvar="ELDERCARE_MQTT__TLS_KEY_FILE",
        help="mqtts://: PEM private key of --mqtt-cert-file (if not in that file)",
    ),
]


def device_broker(
    url: str,
    protocol: str,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> MqttSettings:
    """The simulated devices' broker: `url` and the TLS files (the same rules as
    ``ELDERCARE_MQTT__*``); exits 2 naming what is wrong."""
    try:
        return MqttSettings(
            url=url,
            protocol="3.1.1" if protocol == "3.1.1" else "5",
            tls_ca_file=ca_file,
            tls_cert_file=cert_file,
            tls_key_file=key_file,
        )
    except ValidationError as exc:
        reasons = "; ".join(str(err["msg"]) for err in exc.errors())
        console.print(f"[red]broker settings: {reasons}[/red]")
        raise typer.Exit(2) from None
