"""What the bot cannot take gets a clear reply in the user's language, before any download, and costs nothing."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from arweave_store.models import Upload
from kernel.models import RequestLog, Token, User
from telegram_bot.messages import language
from tests.telegram_bot.conftest import bind, make_customer, reply_to, send, start_bot

MB = 1024 * 1024
# (case, English words, Chinese words)
EXPECTED = {
    "unbound": ("First send me your API key", "请先把你的 API 密钥"),
    "empty balance": ("The balance is empty", "余额不足"),
    "cannot afford": ("costs $", "需要 $"),
    "over the download limit": ("larger than a bot may download from Telegram (20 MB)", "超过了机器人能从 Telegram 下载的上限（20 MB）"),
    "over the upload limit": ("larger than this service stores (2.0 MB (2,097,152 B) at most)", "超过了本服务的存储上限"),
}


def test_language_follows_the_telegram_app():
    assert [language(c) for c in ("zh-hans", "zh-hant", "zh", "ZH-CN", "en", "de", "", None)] == [
        "zh", "zh", "zh", "zh", "en", "en", "en", "en"]


@pytest.mark.parametrize("lang", ["en", "zh-hans"])
def test_refusals_are_clear_charge_nothing_and_download_nothing(bot_server, telegram, database, lang):
    from arweave_store import pricing

    zh = lang.startswith("zh")
    base = 1000 if zh else 2000
    people = {
        "unbound": None,
        "empty balance": make_customer(f"empty-{lang}@example.com", usd=""),
        "cannot afford": make_customer(f"poor-{lang}@example.com", usd="5", key_usd="0.000002"),
        "over the download limit": make_customer(f"big-{lang}@example.com"),
        "over the upload limit": make_customer(f"large-{lang}@example.com"),
    }
    pricing.set_rates(min_fee_usd="0.01")  # the poor key's one unit pays for nothing
    before = {case: _balances(c) for case, c in people.items() if c}
    files = {
        "unbound": (b"x" * 100, -1),
        "empty balance": (b"x" * 100, -1),
        "cannot afford": (b"x" * 5000, -1),
        "over the download limit": (b"tiny", 25 * MB),  # Telegram says how large it is
        "over the upload limit": (os.urandom(3 * MB), -1),
    }
    for n, (case, customer) in enumerate(people.items()):
        user = telegram.user(base + n, lang)
        if customer is not None:
            bind(telegram, user, customer)
        data, declared = files[case]
        update = send(telegram, telegram.document(user, data, name=f"{case}.bin", declared_size=declared))
        english, chinese = EXPECTED[case]
        text = reply_to(telegram, update, chinese if zh else english)
        if case != "unbound":
            assert ("未扣费" if zh else "othing was charged") in text, (case, text)
    assert not telegram.calls_of("getFile") and not telegram.downloads, "a refused file was downloaded"
    assert not Upload.select().exists() and not RequestLog.select().where(RequestLog.kind == "upload").exists()
    assert {case: _balances(c) for case, c in people.items() if c} == before


def _balances(customer) -> tuple[int, int]:
    return User.get_by_id(customer.user_id).quota, Token.get_by_id(customer.token_id).remain_quota


def test_a_file_of_unknown_size_is_refused_once_it_passes_the_limit(bot_server, telegram, customer):
    user = telegram.user(1200, "en")
    bind(telegram, user, customer)
    before = _balances(customer)
    update = send(telegram, telegram.document(user, os.urandom(3 * MB), name="big.bin", declared_size=None))
    reply_to(telegram, update, "larger than this service stores")
    assert telegram.downloads, "with no size given, the download is what finds it too large"
    assert not Upload.select().exists() and _balances(customer) == before
    assert not list((bot_server.server.config.app.state.arweave.incoming).glob("*")), "the partial file was left"


def test_a_file_telegram_will_not_hand_out_gets_a_clear_reply(bot_server, telegram, customer):
    """No size in the message, and getFile answers "file is too big", as Telegram does above 20 MB."""
    user = telegram.user(1250, "en")
    bind(telegram, user, customer)
    before = _balances(customer)
    update = telegram.document(user, b"y" * 100, name="huge.bin", declared_size=None)
    telegram.files[update["message"]["document"]["file_id"]].declared_size = 30 * MB  # Telegram knows its size
    send(telegram, update)
    reply_to(telegram, update, "Telegram says this file is larger than a bot may download (20 MB)")
    assert len(telegram.calls_of("getFile")) == 1 and not telegram.downloads
    assert not Upload.select().exists() and _balances(customer) == before


def test_a_self_hosted_bot_api_in_local_mode_lifts_the_download_limit(bot_settings, database, telegram, arlocal,
                                                                      customer, tmp_path):
    telegram.local_mode, telegram.local_dir = True, tmp_path / "bot-api"
    telegram.download_limit = 2000 * MB
    server = start_bot(replace(bot_settings, telegram_download_limit_mb=2000), telegram)
    try:
        user = telegram.user(1300, "en")
        bind(telegram, user, customer)
        big = send(telegram, telegram.document(user, b"tiny", name="big.bin", declared_size=25 * MB))
        assert "larger than this service stores" in reply_to(telegram, big, "larger than")  # not Telegram's limit
        data = os.urandom(4000)
        update = send(telegram, telegram.document(user, data, name="local.bin"))
        reply_to(telegram, update, "Stored permanently")
        assert arlocal.data(Upload.get().tx_id) == data
        assert telegram.calls_of("getFile")[-1].params["file_id"] == update["message"]["document"]["file_id"]
        assert not telegram.downloads, "in --local mode the file is read from the server's disk"
    finally:
        server.stop()
