"""``/pricing`` and ``/docs``: public, in English and Chinese, with JSON for the price list."""

from __future__ import annotations

from accounts import add_channel, set_price
from tests.webapp.console.conftest import text_of


def test_pricing_lists_models_prices_and_providers(client, database):
    add_channel(type="openai", name="a", base_url="http://127.0.0.1:9/v1", keys=["k"], models="gpt-4o, gpt-4o-mini")
    add_channel(type="azure", name="b", base_url="http://127.0.0.1:9", keys=["k"], models="gpt-4o, cheap")
    disabled = add_channel(type="groq", name="off", base_url="http://127.0.0.1:9", keys=["k"], models="gone")
    disabled.status = "disabled"
    disabled.save()
    set_price("gpt-4o", input_usd="2.5", output_usd="10")
    set_price("cheap", input_usd="0", output_usd="0")
    set_price("unserved", input_usd="1", output_usd="1")
    models = {m["model"]: m for m in client.get("/pricing.json").get_json()["models"]}
    assert models["gpt-4o"]["providers"] == ["azure", "openai"]
    assert (models["gpt-4o"]["input_usd_per_million"], models["gpt-4o"]["output_usd_per_million"]) == ("$2.50", "$10.00")
    assert models["cheap"]["free"] is True and models["gpt-4o"]["free"] is False
    assert models["gpt-4o-mini"]["input_usd_per_million"] is None
    assert "unserved" not in models and "gone" not in models  # not on offer without an enabled channel
    page = text_of(client.get("/pricing").data)
    assert "gpt-4o $2.50 $10.00" in page and "not on sale yet" in page
    zh = text_of(client.get("/pricing", headers={"Accept-Language": "zh-CN"}).data)
    assert "价格" in zh and "暂未开放" in zh and "免费" in zh


def test_docs_explain_base_urls_and_tools_in_both_languages(client, database):
    # Without PERMACHAT_PUBLIC_URL the docs show the address the server answered on (the test
    # client's is localhost), never the request's Host header.
    en = text_of(client.get("/docs", headers={"Host": "chat.example.org"}).data)
    for needle in ("http://localhost/v1", "from openai import OpenAI", "curl", "Cursor", "OpenAI Translator",
                   "Immersive Translate", "gptcommit", "/arweave/upload", "file=@"):
        assert needle in en, needle
    zh = text_of(client.get("/docs", headers={"Accept-Language": "zh", "Host": "chat.example.org"}).data)
    assert "如何使用 permachat" in zh and "沉浸式翻译" in zh and "http://localhost/v1" in zh
    assert "chat.example.org" not in en + zh


def test_docs_explain_the_graphql_door_in_both_languages(client, database):
    en = text_of(client.get("/docs").data)
    zh = text_of(client.get("/docs", headers={"Accept-Language": "zh"}).data)
    for page in (en, zh):
        for needle in ("http://localhost/graphql", "arweaveUpload(fileB64", "arweaveUploadFile(file: Upload!",
                       "arweaveUploads(first, after)", "arweavePrice(bytes)", "query balance", "extensions.code",
                       "UNAUTHENTICATED", "INSUFFICIENT_QUOTA", "PAYLOAD_TOO_LARGE", "BAD_INPUT",
                       "-F map='{\"0\": [\"variables.f\"]}'"):
            assert needle in page, needle
    assert "Errors come as GraphQL errors" in en and "错误以 GraphQL 错误返回" in zh


def test_docs_use_the_public_url_setting(settings, database):
    from dataclasses import replace

    from webapp import create_app

    app = create_app(replace(settings, public_url="https://ai.example.com/"), {"TESTING": True})
    assert "https://ai.example.com/v1" in app.test_client().get("/docs").data.decode()


def test_language_switch_keeps_the_console_in_chinese(client, user):
    client.post("/lang/zh", data={"next": "/login"})
    page = text_of(client.get("/login").data)
    assert "登录" in page and "邮箱" in page
    r = client.post("/login", data={"email": "alice@example.com", "password": "nope"})
    assert "邮箱或密码错误" in text_of(r.data)


def test_docs_explain_the_telegram_bot_in_both_languages(settings, database):
    from dataclasses import replace

    from webapp import create_app

    off = create_app(settings, {"TESTING": True}).test_client()
    assert "has not turned its Telegram bot on" in text_of(off.get("/docs").data)
    on = create_app(replace(settings, telegram_bot_token="1:" + "a" * 35, telegram_download_limit_mb=50),
                    {"TESTING": True}).test_client()
    en = text_of(on.get("/docs").data)
    for needle in ("Store files from Telegram", "/balance", "/uploads", "/unbind", "deletes that message", "50 MB"):
        assert needle in en, needle
    assert "has not turned" not in en
    zh = text_of(on.get("/docs", headers={"Accept-Language": "zh"}).data)
    for needle in ("通过 Telegram 存储文件", "/balance", "立即删除那条消息", "50 MB"):
        assert needle in zh, needle
