"""Apprise still carries chat and other services: one real send through its JSON plugin to a
local HTTP receiver, whose title and body are the localized notice."""

from __future__ import annotations

import pytest

from alerts.notify.channels import AppriseChannel, DeliveryError, Notice
from tests.conftest import HttpReceiver
from tests.unit.test_channels import make_alert


def notice(locale: str) -> Notice:
    alert = make_alert(elder_name="王芳", village="小河村")
    return Notice(
        alert,
        0,
        17,
        "https://care.example/console",
        "alert",
        "https://care.example/ack/t",
        locale,
        "幸福路 1 号",
    )


@pytest.mark.parametrize(
    ("locale", "title", "line"),
    [
        (
            "zh",
            "【紧急】王芳（幸福路 1 号，小河村）：按下了紧急呼叫按钮",
            "时间：2026-11-23 21:00 (北京时间)",
        ),
        (
            "en",
            "[CRITICAL] SOS button pressed - 王芳 (幸福路 1 号, 小河村)",
            "When:     2026-11-23 21:00 (Asia/Shanghai)",
        ),
    ],
)
async def test_apprise_json_plugin_delivers_the_localized_title_and_body(
    http_receiver: HttpReceiver, locale: str, title: str, line: str
) -> None:
    target = http_receiver.url.replace("http://", "json://") + "/hooks/eldercare"
    await AppriseChannel().send(target, notice(locale))
    [request] = await http_receiver.wait_for(1)
    assert request.path == "/hooks/eldercare"
    doc = request.json()
    assert doc["title"] == title
    assert line in doc["message"]
    assert "https://care.example/ack/t" in doc["message"]


async def test_apprise_refusals_are_delivery_errors(http_receiver: HttpReceiver) -> None:
    with pytest.raises(DeliveryError, match="not understood"):
        await AppriseChannel().send("nosuchscheme://x", notice("zh"))
    http_receiver.status = 500
    with pytest.raises(DeliveryError, match="did not accept"):
        await AppriseChannel().send(http_receiver.url.replace("http://", "json://"), notice("zh"))
