"""Broker settings and URL rules of the one MQTT client (`devices.mqtt`, which re-exports
them): ``ELDERCARE_MQTT__*``, the parsed URL (one broker or the nodes of a cluster), and the
TLS context for ``mqtts://``.

URLs: ``mqtt://`` (or ``tcp://``) is plain TCP, port 1883 by default; ``mqtts://`` is TLS,
port 8883 by default. A user name and password in the URL are percent-decoded (write ``@``
as ``%40``, ``/`` as ``%2F``, ``:`` as ``%3A``). A cluster is several comma-separated
``host[:port]`` after the credentials, as in a PostgreSQL multi-host URL
(``mqtts://user:pw@node1:8883,node2:8883,node3``): the nodes share the scheme and the
credentials, the client connects to the first and, whenever a connection fails or drops,
tries the next one (`devices.mqtt.MqttClient.reconnect`).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, FilePath, field_validator, model_validator

_TLS_SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True}
_FORM = (
    "mqtt://host:1883 or mqtts://host:8883 (TLS), with user:password@ before the host if any"
    " (a cluster: mqtt://node1:1883,node2:1883)"
)


@dataclass(slots=True, frozen=True)
class BrokerAddress:
    """A broker address parsed from ``mqtt[s]://[user[:password]@]host[:port][,host[:port]...]``.

    `host` and `port` are the first node; `nodes` all of them, in the URL's order."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    nodes: tuple[tuple[str, int], ...] = ()

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """Parse `url`, raising ValueError with a readable message (without the password)."""
        parts = urlsplit(url)
        tls = _TLS_SCHEMES.get(parts.scheme)
        if tls is None:
            raise ValueError(f"broker URL must look like {_FORM} (got scheme {parts.scheme!r})")
        userinfo, at, hostlist = parts.netloc.rpartition("@")
        nodes = tuple(_node(parts.scheme, text, tls) for text in hostlist.split(","))
        username = password = None
        if at:
            user, colon, secret = userinfo.partition(":")
            username = unquote(user)
            password = unquote(secret) if colon else None
        return cls(
            host=nodes[0][0],
            port=nodes[0][1],
            tls=tls,
            username=username,
            password=password,
            nodes=nodes,
        )

    def redacted(self) -> str:
        """The URL without the password, for messages and logs."""
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        hosts = ",".join(
            f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            for host, port in (self.nodes or ((self.host, self.port),))
        )
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{hosts}"


def _node(scheme: str, text: str, tls: bool) -> tuple[str, int]:
    """One ``host[:port]`` of a broker URL (IPv6 in brackets)."""
    parts = urlsplit(f"{scheme}://{text}")
    if not parts.hostname:
        raise ValueError(f"broker URL has no host: it must look like {_FORM}")
    try:
        return parts.hostname, parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ValueError(
            "broker URL has a bad port (a '/', '?', '#' or '@' in the password must be "
            f"percent-encoded, e.g. %2F): it must look like {_FORM}"
        ) from None


class MqttSettings(BaseModel):
    """How to reach the broker (``ELDERCARE_MQTT__*``)."""

    model_config = ConfigDict(hide_input_in_errors=True)  # the URL may hold a password

    url: str = Field(
        default="mqtt://127.0.0.1:1883",
        description="mqtt://[user:password@]host:port (TLS: mqtts://, port 8883 by default);"
        " user and password percent-encoded; a cluster's nodes comma-separated"
        " (mqtt://user:pw@node1:1883,node2:1883): a lost connection goes to the next node",
    )
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    receive_maximum: int = Field(default=2000, ge=1, le=65535)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    tls_ca_file: FilePath | None = Field(
        default=None,
        description="PEM file of the CA(s) the broker's certificate is checked against"
        " (mqtts:// only; default: the system's trusted CAs)",
    )
    tls_cert_file: FilePath | None = Field(
        default=None, description="PEM client certificate, for a broker that asks for one"
    )
    tls_key_file: FilePath | None = Field(
        default=None, description="PEM private key of tls_cert_file (if not in that file)"
    )
    tls_check_hostname: bool = Field(
        default=True,
        description="check that the broker's certificate names the URL's host; turn off only"
        " for a broker reached by an address its certificate does not list",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        BrokerAddress.parse(value)
        return value

    @model_validator(mode="after")
    def _check_tls(self) -> MqttSettings:
        uses_tls = (
            self.tls_ca_file is not None
            or self.tls_cert_file is not None
            or self.tls_key_file is not None
            or not self.tls_check_hostname
        )
        if uses_tls and not self.address.tls:
            raise ValueError("TLS settings (tls_*) need an mqtts:// broker URL")
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_key_file needs tls_cert_file (the certificate it belongs to)")
        if self.address.tls:
            tls_context(self)  # unreadable PEM files stop the start, not the first connection
        return self

    @property
    def address(self) -> BrokerAddress:
        """The parsed URL: host, port, TLS and the percent-decoded credentials."""
        return BrokerAddress.parse(self.url)


def tls_context(settings: MqttSettings) -> ssl.SSLContext:
    """The TLS context for an ``mqtts://`` broker: Python's defaults (certificate and host
    name checked), the CA file, the client certificate, and the host name check off only if
    `MqttSettings.tls_check_hostname` is false. Raises ValueError naming a bad file."""
    ca = settings.tls_ca_file
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    except ssl.SSLError as exc:
        raise ValueError(f"tls_ca_file {ca} holds no usable PEM certificate: {exc}") from None
    if settings.tls_cert_file is not None:
        key = settings.tls_key_file
        try:
            context.load_cert_chain(settings.tls_cert_file, key)
        except ssl.SSLError as exc:
            raise ValueError(
                f"tls_cert_file {settings.tls_cert_file} with tls_key_file {key} is not a PEM "
                f"certificate and its key: {exc}"
            ) from None
    if not settings.tls_check_hostname:
        context.check_hostname = False  # the chain is still verified
    return context
