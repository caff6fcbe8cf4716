"""China's SMS and voice channels against a local fake of each provider that recomputes and
verifies the signature itself, checks the request and answers like the provider
(alerts.notify.cn_cloud; tests/cn_fake.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from alerts.config import SmsSettings, VoiceSettings
from alerts.model import Status
from alerts.notify.channels import DeliveryError, Notice
from alerts.notify.cn_cloud import (
    AliyunSmsChannel,
    AliyunVoiceChannel,
    BadTarget,
    ProviderError,
    TencentSmsChannel,
    sms_channel,
)
from alerts.notify.cn_sign import check_out_id
from tests.cn_fake import KEY_ID, SECRET, FakeProvider, aliyun_error, serve_fake, tencent_status
from tests.unit.test_channels import make_alert

PHONE = "+8613800000001"
ACK = "https://care.example/ack/42.17.1790000000.sig"
OUT_SECRET = b"the-ack-link-secret-for-voice-out-ids"


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    yield from serve_fake()


def notice(
    locale: str = "zh", kind: str = "alert", ack: str | None = ACK, **changes: Any
) -> Notice:
    alert = make_alert(elder_name="王芳", village="小河村", **changes)
    return Notice(alert, 0, 17, "https://care.example/console", kind, ack, locale, "幸福路 1 号")


def tencent(fake: FakeProvider, **changes: Any) -> SmsSettings:
    fields: dict[str, Any] = {
        "provider": "tencent",
        "access_key_id": KEY_ID,
        "access_key_secret": SecretStr(SECRET),
        "endpoint": fake.url,
        "sdk_app_id": "1400006666",
        "sign_name": "河畔区养老服务",
        "template_alert": "1110001",
        "template_update": "1110002",
        "template_alert_en": "1110003",
    }
    return SmsSettings(**{**fields, **changes})


def aliyun_sms(fake: FakeProvider, **changes: Any) -> SmsSettings:
    fields: dict[str, Any] = {
        "provider": "aliyun",
        "access_key_id": KEY_ID,
        "access_key_secret": SecretStr(SECRET),
        "endpoint": fake.url,
        "sign_name": "河畔区养老服务",
        "template_alert": "SMS_460000001",
        "template_update": "SMS_460000002",
    }
    return SmsSettings(**{**fields, **changes})


def aliyun_voice(fake: FakeProvider, **changes: Any) -> VoiceSettings:
    fields: dict[str, Any] = {
        "provider": "aliyun",
        "access_key_id": KEY_ID,
        "access_key_secret": SecretStr(SECRET),
        "endpoint": fake.url,
        "called_show_number": "057112345678",
        "tts_code": "TTS_100000001",
        "ivr_start_code": "TTS_100000002",
        "ivr_ack_code": "TTS_100000003",
        "callback_token": SecretStr("x" * 40),
    }
    return VoiceSettings(**{**fields, **changes})


# --------------------------------------------------------------------------- Tencent SMS


async def test_tencent_sms_is_signed_and_carries_the_template_and_its_pieces(
    fake: FakeProvider,
) -> None:
    async with httpx.AsyncClient() as client:
        await TencentSmsChannel(client, tencent(fake)).send(PHONE, notice())
    [req] = fake.requests
    assert req.signed, req.problem
    assert req.api == "tencent"
    assert req.action == "SendSms"
    assert req.params["PhoneNumberSet"] == [PHONE]
    assert req.params["SmsSdkAppId"] == "1400006666"
    assert req.params["SignName"] == "河畔区养老服务"
    assert req.params["TemplateId"] == "1110001"
    assert req.params["TemplateParamSet"] == [
        "王芳",
        "幸福路 1 号，小河村",
        "按下了紧急呼叫按钮",
        "2026-11-23 21:00 (北京时间)",
        ACK,
    ]


async def test_tencent_english_and_follow_up_templates(fake: FakeProvider) -> None:
    async with httpx.AsyncClient() as client:
        channel = TencentSmsChannel(client, tencent(fake))
        await channel.send(PHONE, notice("en"))
        acked = notice(
            "zh", "acknowledged", None, status=Status.ACKNOWLEDGED, acknowledged_by_name="李强"
        )
        await channel.send(PHONE, acked)
    english, update = fake.requests
    assert english.params["TemplateId"] == "1110003"
    assert english.params["TemplateParamSet"][2] == "SOS button pressed"
    assert english.params["TemplateParamSet"][3] == "2026-11-23 21:00 (Asia/Shanghai)"
    assert update.params["TemplateId"] == "1110002"
    assert update.params["TemplateParamSet"] == ["王芳", "按下了紧急呼叫按钮", "已由李强接手"]


async def test_tencent_refusals_become_delivery_errors(fake: FakeProvider) -> None:
    fake.answers += [
        (200, tencent_status("InvalidParameterValue.IncorrectPhoneNumber", "手机号格式错误")),
        (200, tencent_status("LimitExceeded.PhoneNumberThirtySecondLimit", "30秒内频率限制")),
        (200, tencent_status("FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批")),
        (500, "<html>bad gateway</html>"),
    ]
    async with httpx.AsyncClient() as client:
        channel = TencentSmsChannel(client, tencent(fake))
        with pytest.raises(ProviderError) as wrong_number:
            await channel.send(PHONE, notice())
        with pytest.raises(ProviderError) as throttled:
            await channel.send(PHONE, notice())
        with pytest.raises(ProviderError) as unapproved:
            await channel.send(PHONE, notice())
        with pytest.raises(ProviderError) as down:
            await channel.send(PHONE, notice())
        # A wrong secret: the fake's own check of the signature refuses it.
        bad = TencentSmsChannel(client, tencent(fake, access_key_secret=SecretStr("wrong")))
        with pytest.raises(ProviderError) as forged:
            await bad.send(PHONE, notice())
    assert "IncorrectPhoneNumber: 手机号格式错误" in str(wrong_number.value)
    assert wrong_number.value.final
    assert throttled.value.code == "LimitExceeded.PhoneNumberThirtySecondLimit"
    assert not throttled.value.final
    assert unapproved.value.final
    assert down.value.code == "HTTP 500"
    assert not down.value.final
    assert forged.value.code == "AuthFailure.SignatureFailure"
    assert forged.value.final
    assert [r.signed for r in fake.requests] == [True, True, True, True, False]


# --------------------------------------------------------------------------- Aliyun SMS


async def test_aliyun_sms_is_signed_and_carries_the_template_and_its_pieces(
    fake: FakeProvider,
) -> None:
    async with httpx.AsyncClient() as client:
        await AliyunSmsChannel(client, aliyun_sms(fake)).send(PHONE, notice())
    [req] = fake.requests
    assert req.signed, req.problem
    assert req.action == "SendSms"
    assert req.params["Version"] == "2017-05-25"
    assert req.params["RegionId"] == "cn-hangzhou"
    assert req.params["PhoneNumbers"] == "8613800000001"
    assert req.params["SignName"] == "河畔区养老服务"
    assert req.params["TemplateCode"] == "SMS_460000001"
    assert json.loads(req.params["TemplateParam"]) == {
        "name": "王芳",
        "address": "幸福路 1 号，小河村",
        "what": "按下了紧急呼叫按钮",
        "time": "2026-11-23 21:00 (北京时间)",
        "link": ACK,
    }
    assert req.params["OutId"] == "alert-42"


async def test_aliyun_sms_refusals_become_delivery_errors(fake: FakeProvider) -> None:
    fake.answers += [
        (200, aliyun_error("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")),
        (200, aliyun_error("isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1")),
        (200, aliyun_error("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")),
        (503, "<html>unavailable</html>"),
    ]
    async with httpx.AsyncClient() as client:
        channel = AliyunSmsChannel(client, aliyun_sms(fake))
        errors = []
        for _ in range(4):
            with pytest.raises(ProviderError) as caught:
                await channel.send(PHONE, notice())
            errors.append(caught.value)
        bad = AliyunSmsChannel(client, aliyun_sms(fake, access_key_secret=SecretStr("wrong")))
        with pytest.raises(ProviderError) as forged:
            await bad.send(PHONE, notice())
    assert [(e.code, e.final) for e in errors] == [
        ("isv.MOBILE_NUMBER_ILLEGAL", True),
        ("isv.BUSINESS_LIMIT_CONTROL", False),
        ("isv.SMS_TEMPLATE_ILLEGAL", True),
        ("HTTP 503", False),
    ]
    assert "非法手机号" in str(errors[0])
    assert (forged.value.code, forged.value.final) == ("SignatureDoesNotMatch", True)
    assert not fake.requests[-1].signed


@pytest.mark.parametrize("target", ["13800000001", "+86 138 0000 0001", "+8612345", "+86110"])
async def test_a_target_that_is_not_a_mobile_number_is_refused_without_a_request(
    fake: FakeProvider, target: str
) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(BadTarget) as caught:
            await AliyunSmsChannel(client, aliyun_sms(fake)).send(target, notice())
    assert caught.value.final
    assert fake.requests == []


def test_settings_name_what_is_missing() -> None:
    with pytest.raises(ValidationError, match="SDK_APP_ID"):
        SmsSettings(
            provider="tencent",
            access_key_id="a",
            access_key_secret=SecretStr("b"),
            sign_name="c",
            template_alert="d",
        )
    with pytest.raises(ValidationError, match="CALLBACK_TOKEN"):
        VoiceSettings(
            provider="aliyun",
            access_key_id="a",
            access_key_secret=SecretStr("b"),
            called_show_number="0571",
            tts_code="TTS_1",
            ivr_start_code="TTS_2",
            ivr_ack_code="TTS_3",
            callback_token=SecretStr("short"),
        )
    assert sms_channel(httpx.AsyncClient(), SmsSettings()) is None


# --------------------------------------------------------------------------- Aliyun voice


async def test_staff_get_an_interactive_call_whose_key_1_names_them(fake: FakeProvider) -> None:
    async with httpx.AsyncClient() as client:
        channel = AliyunVoiceChannel(client, aliyun_voice(fake), OUT_SECRET)
        await channel.send(PHONE, notice())  # staff: an acknowledge link
        await channel.send(PHONE, notice(ack=None))  # family: a plain call
    ivr, tts = fake.requests
    assert ivr.signed, ivr.problem
    assert ivr.action == "IvrCall"
    assert ivr.params["CalledNumber"] == "13800000001"
    assert ivr.params["CalledShowNumber"] == "057112345678"
    assert ivr.params["StartCode"] == "TTS_100000002"
    assert json.loads(ivr.params["StartTtsParams"]) == {
        "name": "王芳",
        "address": "幸福路 1 号，小河村",
        "what": "按下了紧急呼叫按钮",
    }
    assert ivr.params["MenuKeyMap.1.Key"] == "1"
    assert ivr.params["MenuKeyMap.1.Code"] == "TTS_100000003"
    assert check_out_id(OUT_SECRET, ivr.params["OutId"]) == (42, 17)
    assert tts.signed
    assert tts.action == "SingleCallByTts"
    assert tts.params["TtsCode"] == "TTS_100000001"
    assert "MenuKeyMap.1.Key" not in tts.params


async def test_voice_follow_ups_and_refusals(fake: FakeProvider) -> None:
    fake.answers.append((200, aliyun_error("isv.MOBILE_NUMBER_ILLEGAL", "号码格式非法")))
    acked = notice("zh", "acknowledged", None, status=Status.ACKNOWLEDGED)
    async with httpx.AsyncClient() as client:
        channel = AliyunVoiceChannel(client, aliyun_voice(fake), OUT_SECRET)
        with pytest.raises(ProviderError) as refused:
            await channel.send(PHONE, notice())
        with pytest.raises(DeliveryError, match="follow-ups are not called"):
            await channel.send(PHONE, acked)
        with pytest.raises(BadTarget):
            await channel.send("+14155550100", notice())
        told = AliyunVoiceChannel(
            client, aliyun_voice(fake, tts_update_code="TTS_100000004"), OUT_SECRET
        )
        await told.send(PHONE, acked)
    assert refused.value.final
    first, update = fake.requests
    assert first.action == "IvrCall"
    assert update.action == "SingleCallByTts"
    assert update.params["TtsCode"] == "TTS_100000004"
    assert json.loads(update.params["TtsParam"])["status"] == "已由工作人员接手"
