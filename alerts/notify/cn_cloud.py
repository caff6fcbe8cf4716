"""Channels for China: SMS through Aliyun (dysmsapi SendSms) or Tencent Cloud (SMS API
2021-01-11 SendSms), and voice calls through Aliyun (dyvms): a text-to-speech call, and for
staff an interactive call (IvrCall) where pressing 1 acknowledges the alert (the receipt
arrives at gateway/routes/voice.py).

Each is the provider's documented signed HTTP API (alerts/notify/cn_sign.py), no SDK. SMS in
China is sent only through an approved template with a signature: the settings name the
template codes and the sign name, the parameters are the notice's localized pieces
(alerts/notify/messages.py `pieces`). The target of both channels is a phone number in E.164
form. A provider's refusal becomes a DeliveryError with its code and message; one that
retrying cannot help (an invalid number, a template or signature not approved, credentials
refused) is `final`, so the person's next channel is used at once.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from alerts.config import AlertSettings, SmsSettings, VoiceSettings
from alerts.notify import messages
from alerts.notify.channels import Channel, DeliveryError
from alerts.notify.cn_sign import TC3_CONTENT_TYPE, out_id, rpc_signature, tc3_authorization
from alerts.notify.notice import Notice

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
CN_MOBILE = re.compile(r"^\+861[3-9][0-9]{9}$")
ALIYUN_SMS = "https://dysmsapi.aliyuncs.com"
ALIYUN_VOICE = "https://dyvmsapi.aliyuncs.com"
TENCENT_SMS = "https://sms.tencentcloudapi.com"
ALERT_PARAMS = ("name", "address", "what", "time", "link")
"""The variables of the alert template, in this order (Tencent's are positional)."""
UPDATE_PARAMS = ("name", "what", "status")
"""The variables of the follow-up template."""
VOICE_PARAMS = ("name", "address", "what")
VOICE_UPDATE_PARAMS = ("name", "what", "status")
PARAM_MAX = 35
"""Template variables are cut to this many characters (the providers limit a variable's
length; a link is never cut)."""

# Provider codes that retrying the same target cannot fix (matched as substrings).
_ALIYUN_FINAL = (
    "MOBILE_NUMBER_ILLEGAL", "TEMPLATE", "SIGNATURE", "SIGN_", "INVALID_PARAMETERS",
    "PARAM", "BLACK", "ACCOUNT", "AMOUNT_NOT_ENOUGH", "DAY_LIMIT", "InvalidAccessKeyId",
    "SignatureDoesNotMatch", "Forbidden", "NUMBER_ILLEGAL", "CALLER", "TTS_",
)  # fmt: skip
_TENCENT_FINAL = (
    "IncorrectPhoneNumber", "Template", "Signature", "Sign", "AuthFailure",
    "UnauthorizedOperation", "Blacklist", "DailyLimit", "InsufficientBalance",
    "InvalidParameter", "MissingParameter", "PhoneNumberParseFail", "ContentLengthLimit",
)  # fmt: skip


class ProviderError(DeliveryError):
    """The provider refused the request: its code and message."""

    def __init__(self, channel: str, code: str, message: str, final: bool) -> None:
        super().__init__(f"{channel}: provider refused: {code}: {message}")
        self.code = code
        self.final = final


class BadTarget(DeliveryError):
    """The contact channel's target is not a usable phone number."""

    final = True


def phone_number(target: str, mobile: bool = False) -> str:
    """A target checked to be an E.164 number (a Chinese mobile one when `mobile` and +86)."""
    number = target.strip()
    if not E164.fullmatch(number):
        raise BadTarget(f"not an E.164 phone number (+8613800000000): {target!r}")
    if mobile and number.startswith("+86") and not CN_MOBILE.fullmatch(number):
        raise BadTarget(f"not a mainland China mobile number: {target!r}")
    return number


def _values(notice: Notice, names: tuple[str, ...]) -> dict[str, str]:
    pieces = messages.pieces(notice)
    return {n: pieces[n] if n == "link" else pieces[n][:PARAM_MAX] for n in names}


def sms_template(settings: SmsSettings, notice: Notice) -> tuple[str, dict[str, str]]:
    """The template code and its variables for a notice (an alert, or a follow-up), in the
    notice's locale (the English template when there is one and the recipient reads
    English)."""
    english = notice.locale == "en"
    if notice.notice == "alert":
        code = (settings.template_alert_en if english else None) or settings.template_alert
        return code, _values(notice, ALERT_PARAMS)
    code = (settings.template_update_en if english else None) or settings.template_update
    if not code:
        raise DeliveryError("sms: no follow-up template (ELDERCARE_ALERTS__SMS__TEMPLATE_UPDATE)")
    return code, _values(notice, UPDATE_PARAMS)


def _json(response: httpx.Response, channel: str) -> dict[str, Any]:
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        final = 400 <= response.status_code < 500 and response.status_code != 429
        raise ProviderError(channel, f"HTTP {response.status_code}", response.text[:200], final)
    return doc


class TencentSmsChannel:
    """SMS through Tencent Cloud (SendSms, API 2021-01-11, TC3-HMAC-SHA256)."""

    name = "sms"

    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: SmsSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._settings = settings
        self._url = httpx.URL(settings.endpoint or TENCENT_SMS)
        self._clock = clock

    async def send(self, target: str, notice: Notice) -> None:
        """Send one templated SMS; a refusal (request or number) is a ProviderError."""
        s = self._settings
        phone = phone_number(target, mobile=True)
        template, values = sms_template(s, notice)
        payload = json.dumps(
            {
                "PhoneNumberSet": [phone],
                "SmsSdkAppId": s.sdk_app_id,
                "SignName": s.sign_name,
                "TemplateId": template,
                "TemplateParamSet": list(values.values()),
                "SessionContext": f"alert-{notice.alert.id}",
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        host = self._url.netloc.decode()
        now = int(self._clock())
        secret = s.access_key_secret.get_secret_value()
        headers = {
            "Authorization": tc3_authorization(s.access_key_id, secret, "sms", host, payload, now),
            "Content-Type": TC3_CONTENT_TYPE,
            "Host": host,
            "X-TC-Action": "SendSms",
            "X-TC-Timestamp": str(now),
            "X-TC-Version": "2021-01-11",
            "X-TC-Region": s.region or "ap-guangzhou",
        }
        try:
            response = await self._client.post(self._url, content=payload, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"sms (tencent): {exc!r}") from exc
        doc = _json(response, "sms (tencent)").get("Response") or {}
        error = doc.get("Error")
        if isinstance(error, dict):
            code = str(error.get("Code", "?"))
            raise ProviderError(
                "sms (tencent)",
                code,
                str(error.get("Message", "")),
                any(f in code for f in _TENCENT_FINAL),
            )
        statuses = doc.get("SendStatusSet") or []
        if not statuses:
            raise ProviderError("sms (tencent)", "NoStatus", f"HTTP {response.status_code}", False)
        status = statuses[0]
        code = str(status.get("Code", "?"))
        if code != "Ok":
            raise ProviderError(
                "sms (tencent)",
                code,
                str(status.get("Message", "")),
                any(f in code for f in _TENCENT_FINAL),
            )


class AliyunRpc:
    """A signed Aliyun RPC call (HMAC-SHA1, SignatureVersion 1.0) and its answer's Code."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        version: str,
        key_id: str,
        secret: str,
        region: str,
        channel: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._url = url.rstrip("/") + "/"
        self._version = version
        self._key_id = key_id
        self._secret = secret
        self._region = region
        self._channel = channel
        self._clock = clock

    async def call(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        """POST the action; an answer whose Code is not OK is a ProviderError."""
        signed = {
            "AccessKeyId": self._key_id,
            "Action": action,
            "Format": "JSON",
            "RegionId": self._region,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": self._version,
            **params,
        }
        signed["Signature"] = rpc_signature(self._secret, "POST", signed)
        try:
            response = await self._client.post(self._url, data=signed)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{self._channel}: {exc!r}") from exc
        doc = _json(response, self._channel)
        code = str(doc.get("Code", f"HTTP {response.status_code}"))
        if code != "OK":
            final = any(f in code for f in _ALIYUN_FINAL)
            raise ProviderError(self._channel, code, str(doc.get("Message", "")), final)
        return doc


class AliyunSmsChannel:
    """SMS through Aliyun (dysmsapi SendSms, version 2017-05-25)."""

    name = "sms"

    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: SmsSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._rpc = AliyunRpc(
            client,
            settings.endpoint or ALIYUN_SMS,
            "2017-05-25",
            settings.access_key_id,
            settings.access_key_secret.get_secret_value(),
            settings.region or "cn-hangzhou",
            "sms (aliyun)",
            clock,
        )

    async def send(self, target: str, notice: Notice) -> None:
        """Send one templated SMS; a Code other than OK is a ProviderError."""
        phone = phone_number(target, mobile=True)
        template, values = sms_template(self._settings, notice)
        await self._rpc.call(
            "SendSms",
            {
                "PhoneNumbers": phone.removeprefix("+"),
                "SignName": self._settings.sign_name,
                "TemplateCode": template,
                "TemplateParam": json.dumps(values, ensure_ascii=False, separators=(",", ":")),
                "OutId": f"alert-{notice.alert.id}",
            },
        )


class AliyunVoiceChannel:
    """Voice calls through Aliyun (dyvms, version 2017-05-25): a text-to-speech call
    (SingleCallByTts); for staff, with an interactive template configured, an IvrCall whose
    key 1 acknowledges the alert (MenuKeyMap key 1; the press arrives as a receipt naming the
    signed OutId, gateway/routes/voice.py)."""

    name = "voice"

    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: VoiceSettings,
        out_id_secret: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._secret = out_id_secret
        self._rpc = AliyunRpc(
            client,
            settings.endpoint or ALIYUN_VOICE,
            "2017-05-25",
            settings.access_key_id,
            settings.access_key_secret.get_secret_value(),
            settings.region,
            "voice (aliyun)",
            clock,
        )

    async def send(self, target: str, notice: Notice) -> None:
        """Place the call; a Code other than OK is a ProviderError."""
        s = self._settings
        number = phone_number(target)
        if not number.startswith("+86"):
            raise BadTarget(f"voice calls reach mainland China numbers only: {target!r}")
        called = number.removeprefix("+86")
        ident = out_id(self._secret, notice.alert.id, notice.user_id or 0)
        common = {"CalledShowNumber": s.called_show_number, "CalledNumber": called}
        if notice.notice != "alert":
            if not s.tts_update_code:
                raise DeliveryError(
                    "voice: follow-ups are not called (no ELDERCARE_ALERTS__VOICE__TTS_UPDATE_CODE)"
                    "; the next channel tells them"
                )
            await self._rpc.call(
                "SingleCallByTts",
                {
                    **common,
                    "TtsCode": s.tts_update_code,
                    "TtsParam": _dumps(_values(notice, VOICE_UPDATE_PARAMS)),
                    "PlayTimes": "1",
                    "OutId": ident,
                },
            )
            return
        params = _dumps(_values(notice, VOICE_PARAMS))
        if notice.ack_url is not None and notice.user_id is not None and s.ivr_start_code:
            await self._rpc.call(
                "IvrCall",
                {
                    **common,
                    "StartCode": s.ivr_start_code,
                    "StartTtsParams": params,
                    "MenuKeyMap.1.Key": "1",
                    "MenuKeyMap.1.Code": s.ivr_ack_code,
                    "MenuKeyMap.1.TtsParams": params,
                    "PlayTimes": str(s.play_times),
                    "Timeout": "10000",
                    "OutId": ident,
                },
            )
            return
        await self._rpc.call(
            "SingleCallByTts",
            {
                **common,
                "TtsCode": s.tts_code,
                "TtsParam": params,
                "PlayTimes": str(s.play_times),
                "OutId": ident,
            },
        )


def _dumps(values: dict[str, str]) -> str:
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def cn_channels(client: httpx.AsyncClient, settings: AlertSettings) -> dict[str, Channel]:
    """The `sms` and `voice` channels the settings configure (none without a provider)."""
    found: dict[str, Channel] = {}
    sms = sms_channel(client, settings.sms)
    if sms is not None:
        found["sms"] = sms
    if settings.voice.provider == "aliyun":
        secret = settings.ack_link_secret.get_secret_value().encode()
        found["voice"] = AliyunVoiceChannel(client, settings.voice, secret)
    return found


def sms_channel(
    client: httpx.AsyncClient, settings: SmsSettings
) -> TencentSmsChannel | AliyunSmsChannel | None:
    """The configured SMS channel (None when no provider is set)."""
    if settings.provider == "tencent":
        return TencentSmsChannel(client, settings)
    if settings.provider == "aliyun":
        return AliyunSmsChannel(client, settings)
    return None
