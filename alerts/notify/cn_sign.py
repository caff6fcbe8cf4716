"""Request signatures of China's cloud providers, from their documented signed HTTP APIs (no
SDK): Tencent Cloud's TC3-HMAC-SHA256 (API 3.0) and Aliyun's RPC signature (HMAC-SHA1,
SignatureVersion 1.0). Also the signed OutId that names an alert and a person in a voice
call, so that an unsigned provider receipt can be trusted only as far as its OutId.

Each function is pure; tests/unit/test_cn_sign.py checks them against the providers' own
published worked examples.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote

TC3_ALGORITHM = "TC3-HMAC-SHA256"
TC3_CONTENT_TYPE = "application/json; charset=utf-8"


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac256(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def tc3_canonical_request(host: str, payload: bytes, content_type: str = TC3_CONTENT_TYPE) -> str:
    """The canonical request of a POST to ``/`` signing the content-type and host headers."""
    return (
        f"POST\n/\n\ncontent-type:{content_type}\nhost:{host}\n\ncontent-type;host\n"
        f"{_sha256_hex(payload)}"
    )


def tc3_signature(
    secret_key: str,
    service: str,
    host: str,
    payload: bytes,
    timestamp: int,
    content_type: str = TC3_CONTENT_TYPE,
) -> str:
    """The hex TC3-HMAC-SHA256 signature of a POST request (Tencent Cloud API 3.0)."""
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    canonical = tc3_canonical_request(host, payload, content_type)
    to_sign = f"{TC3_ALGORITHM}\n{timestamp}\n{scope}\n{_sha256_hex(canonical.encode())}"
    key = _hmac256(_hmac256(_hmac256(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def tc3_authorization(
    secret_id: str,
    secret_key: str,
    service: str,
    host: str,
    payload: bytes,
    timestamp: int,
    content_type: str = TC3_CONTENT_TYPE,
) -> str:
    """The Authorization header of a TC3-signed POST request."""
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    signature = tc3_signature(secret_key, service, host, payload, timestamp, content_type)
    return (
        f"{TC3_ALGORITHM} Credential={secret_id}/{date}/{service}/tc3_request,"
        f" SignedHeaders=content-type;host, Signature={signature}"
    )


def percent_encode(value: str) -> str:
    """Aliyun's percent-encoding (RFC 3986 over UTF-8): letters, digits, ``-_.~`` as they are,
    everything else ``%XX`` in upper case (a space is %20, ``*`` is %2A)."""
    return quote(value, safe="-_.~")


def rpc_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """The string an Aliyun RPC request signs: method, encoded "/" and the encoded canonical
    query (every parameter but Signature, sorted by name)."""
    canonical = "&".join(
        f"{percent_encode(k)}={percent_encode(v)}"
        for k, v in sorted(params.items())
        if k != "Signature"
    )
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"


def rpc_signature(secret: str, method: str, params: Mapping[str, str]) -> str:
    """The base64 HMAC-SHA1 signature of an Aliyun RPC request (key: secret + "&")."""
    mac = hmac.new(f"{secret}&".encode(), rpc_string_to_sign(method, params).encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def _out_mac(secret: bytes, payload: str) -> str:
    digest = hmac.new(secret, b"voice." + payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()


def out_id(secret: bytes, alert_id: int, user_id: int) -> str:
    """The OutId of a voice call: ``<alert>.<user>.<HMAC>`` (the provider echoes it in its
    receipts, which are not signed)."""
    payload = f"{alert_id}.{user_id}"
    return f"{payload}.{_out_mac(secret, payload)}"


def check_out_id(secret: bytes, value: str) -> tuple[int, int] | None:
    """(alert id, user id) of a genuine OutId; None for a forged or malformed one."""
    parts = value.split(".")
    if len(parts) != 3 or not all(p.isascii() for p in parts):
        return None
    payload = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_out_mac(secret, payload), parts[2]):
        return None
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        return None
