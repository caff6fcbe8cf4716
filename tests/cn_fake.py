"""A fake of China's SMS / voice providers for tests: a real HTTP server on 127.0.0.1 that
recomputes each request's signature with its own code (not alerts.notify.cn_sign), checks
the request, records it, and answers like the provider does (bodies from the providers'
documentation: Tencent SendSms 2021-01-11, Aliyun dysmsapi SendSms, dyvms
SingleCallByTts / IvrCall)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote

KEY_ID = "AKIDtestkeyid0001"
SECRET = "test-secret-key-0001"

TENCENT_OK = {
    "Response": {
        "SendStatusSet": [
            {
                "SerialNo": "5000:1045710669157053657849499619",
                "PhoneNumber": "+8613800000001",
                "Fee": 1,
                "SessionContext": "",
                "Code": "Ok",
                "Message": "send success",
                "IsoCode": "CN",
            }
        ],
        "RequestId": "a0aabda6-cf91-4f3e-a81f-9198114a2279",
    }
}
TENCENT_SIGNATURE_FAILURE = {
    "Response": {
        "Error": {
            "Code": "AuthFailure.SignatureFailure",
            "Message": "The provided credentials could not be validated. Please check your"
            " signature is correct.",
        },
        "RequestId": "ed93f3cb-f35e-473f-b9f3-0d451b8b79c6",
    }
}
ALIYUN_SMS_OK = {
    "Message": "OK",
    "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990",
    "Code": "OK",
    "BizId": "900619746936498440^0",
}
ALIYUN_VOICE_OK = {
    "Message": "OK",
    "RequestId": "D9CB3933-9FE3-4870-BA8E-2BEE91B69D23",
    "Code": "OK",
    "CallId": "116012354148^10281378****",
}
ALIYUN_SIGNATURE_FAILURE = {
    "RequestId": "8E4A4B44-5BA4-5C4A-B5A1-0B2B0C5C1B1E",
    "HostId": "dysmsapi.aliyuncs.com",
    "Code": "SignatureDoesNotMatch",
    "Message": "Specified signature is not matched with our calculation.",
}


def tencent_status(code: str, message: str) -> dict[str, Any]:
    """A SendSms answer whose one number was refused with `code`."""
    doc: dict[str, Any] = json.loads(json.dumps(TENCENT_OK))
    doc["Response"]["SendStatusSet"][0].update(Code=code, Message=message, Fee=0)
    return doc


def aliyun_error(code: str, message: str) -> dict[str, Any]:
    """An Aliyun answer with an error Code."""
    return {"Message": message, "RequestId": "A1B2C3D4-0000-4000-8000-000000000000", "Code": code}


@dataclass(slots=True, frozen=True)
class ProviderRequest:
    """One request the fake received: which API, its action, its parameters (Tencent: the
    JSON body; Aliyun: the form fields) and whether its signature verified."""

    api: str
    action: str
    params: dict[str, Any]
    signed: bool
    problem: str = ""


@dataclass
class FakeProvider:
    """The fake's state: answers to give (popped in order; then success) and requests."""

    url: str = ""
    secret: str = SECRET
    answers: list[tuple[int, dict[str, Any] | str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _requests: list[ProviderRequest] = field(default_factory=list, repr=False)
    _nonces: set[str] = field(default_factory=set, repr=False)

    @property
    def requests(self) -> list[ProviderRequest]:
        """The requests so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def answer(self, default: dict[str, Any]) -> tuple[int, dict[str, Any] | str]:
        """The next scripted answer, else `default` with 200."""
        with self._lock:
            return self.answers.pop(0) if self.answers else (200, default)

    def record(self, request: ProviderRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def fresh_nonce(self, nonce: str) -> bool:
        with self._lock:
            if nonce in self._nonces:
                return False
            self._nonces.add(nonce)
            return True


def _tencent_check(fake: FakeProvider, headers: dict[str, str], body: bytes) -> str:
    """'' when the TC3 signature and headers are right, else what is wrong."""
    auth = headers.get("authorization", "")
    try:
        algo, rest = auth.split(" ", 1)
        fields = dict(p.strip().split("=", 1) for p in rest.split(","))
        key_id, date, service, term = fields["Credential"].split("/")
        timestamp = int(headers["x-tc-timestamp"])
    except (ValueError, KeyError):
        return "malformed Authorization"
    if algo != "TC3-HMAC-SHA256" or term != "tc3_request" or key_id != KEY_ID:
        return "wrong algorithm or credential"
    if fields.get("SignedHeaders") != "content-type;host":
        return "signed headers"
    if abs(time.time() - timestamp) > 300:
        return "stale timestamp"
    if datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d") != date:
        return "date of the credential scope"
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{headers.get('content-type', '')}",
            f"host:{headers.get('host', '')}",
            "",
            "content-type;host",
            hashlib.sha256(body).hexdigest(),
        ]
    )
    to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            str(timestamp),
            f"{date}/{service}/tc3_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = ("TC3" + fake.secret).encode()
    for part in (date, service, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields.get("Signature", "")):
        return "signature"
    return ""


def _aliyun_check(fake: FakeProvider, form: dict[str, str]) -> str:
    """'' when the RPC signature and common parameters are right, else what is wrong."""
    given = form.get("Signature", "")
    rest = {k: v for k, v in form.items() if k != "Signature"}

    def enc(s: str) -> str:
        return quote(s, safe="").replace("%7E", "~")

    query = "&".join(f"{enc(k)}={enc(rest[k])}" for k in sorted(rest))
    to_sign = "POST&%2F&" + enc(query)
    mac = hmac.new((fake.secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
    if not hmac.compare_digest(base64.b64encode(mac).decode(), given):
        return "signature"
    if rest.get("AccessKeyId") != KEY_ID or rest.get("SignatureMethod") != "HMAC-SHA1":
        return "credential or method"
    if rest.get("SignatureVersion") != "1.0" or rest.get("Format") != "JSON":
        return "version or format"
    stamp = datetime.strptime(rest.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    if abs(time.time() - stamp.timestamp()) > 900:
        return "stale timestamp"
    if not fake.fresh_nonce(rest.get("SignatureNonce", "")):
        return "nonce used twice"
    return ""


def _handler(fake: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, status: int, doc: dict[str, Any] | str) -> None:
            payload = doc.encode() if isinstance(doc, str) else json.dumps(doc).encode()
            self.send_response(status)
            ctype = "text/html" if isinstance(doc, str) else "application/json;charset=utf-8"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            if "x-tc-action" in headers:
                problem = _tencent_check(fake, headers, body)
                params = json.loads(body)
                fake.record(
                    ProviderRequest("tencent", headers["x-tc-action"], params, not problem, problem)
                )
                if problem:
                    self._reply(200, TENCENT_SIGNATURE_FAILURE)
                    return
                self._reply(*fake.answer(TENCENT_OK))
                return
            form = dict(parse_qsl(body.decode(), keep_blank_values=True))
            problem = _aliyun_check(fake, form)
            action = form.get("Action", "")
            fake.record(ProviderRequest("aliyun", action, form, not problem, problem))
            if problem:
                self._reply(400, ALIYUN_SIGNATURE_FAILURE)
                return
            self._reply(*fake.answer(ALIYUN_SMS_OK if action == "SendSms" else ALIYUN_VOICE_OK))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def serve_fake() -> Iterator[FakeProvider]:
    """Run a fake provider until the generator is closed (wrap it in a fixture)."""
    fake = FakeProvider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-cn-cloud", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
