"""The providers' signatures against their own published worked examples, and the signed
OutId of voice calls (alerts.notify.cn_sign)."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from alerts.notify.cn_sign import (
    check_out_id,
    out_id,
    percent_encode,
    rpc_signature,
    rpc_string_to_sign,
    tc3_authorization,
    tc3_canonical_request,
    tc3_signature,
)

# Tencent Cloud, "Signature v3" (签名方法 v3), the worked example of CVM DescribeInstances in
# ap-guangzhou: https://cloud.tencent.com/document/api/362/4208 (also
# https://www.tencentcloud.com/document/product/382/40467). The keys are the documentation's
# own, masked with asterisks as published; the expected values are the page's.
TC3_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******"
TC3_KEY = "Gu5t9xGARNpq86cd98joQYCN3*******"
TC3_PAYLOAD = (
    b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)
TC3_TIMESTAMP = 1551113065


def test_tc3_matches_tencents_worked_example() -> None:
    assert hashlib.sha256(TC3_PAYLOAD).hexdigest() == (
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    canonical = tc3_canonical_request("cvm.tencentcloudapi.com", TC3_PAYLOAD)
    assert canonical == (
        "POST\n/\n\ncontent-type:application/json; charset=utf-8\n"
        "host:cvm.tencentcloudapi.com\n\ncontent-type;host\n"
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    signature = tc3_signature(TC3_KEY, "cvm", "cvm.tencentcloudapi.com", TC3_PAYLOAD, TC3_TIMESTAMP)
    assert signature == "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
    assert tc3_authorization(
        TC3_ID, TC3_KEY, "cvm", "cvm.tencentcloudapi.com", TC3_PAYLOAD, TC3_TIMESTAMP
    ) == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/"
        "tc3_request, SignedHeaders=content-type;host, Signature="
        "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
    )


def test_tc3_depends_on_every_input() -> None:
    base = tc3_signature(TC3_KEY, "sms", "sms.tencentcloudapi.com", b"{}", TC3_TIMESTAMP)
    assert (
        tc3_signature(TC3_KEY + "x", "sms", "sms.tencentcloudapi.com", b"{}", TC3_TIMESTAMP) != base
    )
    assert tc3_signature(TC3_KEY, "cvm", "sms.tencentcloudapi.com", b"{}", TC3_TIMESTAMP) != base
    assert tc3_signature(TC3_KEY, "sms", "sms.tencentcloudapi.com", b"{ }", TC3_TIMESTAMP) != base
    # Another day is another signing key.
    assert (
        tc3_signature(TC3_KEY, "sms", "sms.tencentcloudapi.com", b"{}", TC3_TIMESTAMP + 86400)
        != base
    )


# Aliyun, "Signature mechanism" of RPC APIs (V2): the worked example of ECS DescribeRegions
# with AccessKey ID testid and secret testsecret, whose published signature is
# CT9X0VtwR86fNWSnsc6v8YGOjuE= (URL-encoded CT9X0VtwR86fNWSnsc6v8YGOjuE%3D):
# https://help.aliyun.com/en/cmn/developer-reference/signature-mechanism (and the same example
# in https://developer.aliyun.com/ask/210168). The example spells its time parameter
# "TimeStamp", as published.
ALIYUN_PARAMS = {
    "TimeStamp": "2016-02-23T12:46:24Z",
    "Format": "XML",
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "Version": "2014-05-26",
    "SignatureVersion": "1.0",
}


def test_rpc_matches_aliyuns_worked_example() -> None:
    assert rpc_string_to_sign("GET", ALIYUN_PARAMS) == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML"
        "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"
        "%26SignatureVersion%3D1.0%26TimeStamp%3D2016-02-23T12%253A46%253A24Z"
        "%26Version%3D2014-05-26"
    )
    assert rpc_signature("testsecret", "GET", ALIYUN_PARAMS) == "CT9X0VtwR86fNWSnsc6v8YGOjuE="
    # The Signature parameter itself is never signed.
    signed = {**ALIYUN_PARAMS, "Signature": "anything"}
    assert rpc_signature("testsecret", "GET", signed) == "CT9X0VtwR86fNWSnsc6v8YGOjuE="


def test_percent_encoding_rules() -> None:
    assert percent_encode("a b*c~d-e_f.g") == "a%20b%2Ac~d-e_f.g"
    assert percent_encode("阿里云") == "%E9%98%BF%E9%87%8C%E4%BA%91"
    assert percent_encode('{"name":"王"}') == "%7B%22name%22%3A%22%E7%8E%8B%22%7D"
    assert percent_encode("+86/=&") == "%2B86%2F%3D%26"


SECRET = b"an-ack-link-secret-of-some-length"


@given(st.integers(1, 2**62), st.integers(1, 2**62))
def test_out_id_round_trips(alert_id: int, user_id: int) -> None:
    assert check_out_id(SECRET, out_id(SECRET, alert_id, user_id)) == (alert_id, user_id)


def test_forged_out_ids_are_refused() -> None:
    genuine = out_id(SECRET, 42, 7)
    assert check_out_id(b"another-secret", genuine) is None
    payload, mac = genuine.rsplit(".", 1)
    assert check_out_id(SECRET, "42.8." + mac) is None  # another person
    assert check_out_id(SECRET, "43.7." + mac) is None  # another alert
    assert check_out_id(SECRET, payload) is None
    assert check_out_id(SECRET, "") is None
    assert check_out_id(SECRET, "42.7.ÄÄÄ") is None
    assert check_out_id(SECRET, "a.b." + mac) is None
