"""The bot against a fake Bot API server (tests/upstreams/telegram_upstream.py) and arlocal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from tests.arweave_store.conftest import (  # noqa: F401 - fixtures, shared with the upload tests
    Customer,
    arlocal,
    arweave_settings,
    customer,
    make_customer,
    service_wallet,
    start_server,
    unfunded_wallet,
    wait_for,
)
from tests.conftest import LiveServer
from tests.upstreams.telegram_upstream import FakeTelegram

TOKEN = "123456789:AAH" + "x" * 32
SECRET = "webhook-secret_42"
HOOK = "/telegram/hook"


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram(TOKEN)
    server = LiveServer(fake.app()).start()
    fake.base_url = server.url
    yield fake
    server.stop()


@pytest.fixture
def bot_settings(arweave_settings, telegram):  # noqa: F811
    return replace(arweave_settings, telegram_bot_token=TOKEN, telegram_api_base=telegram.base_url,
                   telegram_mode="webhook", telegram_webhook_secret=SECRET, telegram_webhook_path=HOOK)


def start_bot(settings, telegram: FakeTelegram) -> LiveServer:
    server = start_server(settings)
    if settings.telegram_mode == "webhook":
        telegram.webhook_url, telegram.webhook_secret = server.url + settings.telegram_webhook_path, SECRET
    return server


@pytest.fixture
def bot_server(bot_settings, database, telegram) -> Iterator[LiveServer]:
    server = start_bot(bot_settings, telegram)
    yield server
    server.stop()


def send(telegram: FakeTelegram, update: dict) -> dict:
    """Deliver ``update`` to the webhook as Telegram does; it must be taken (200)."""
    response = telegram.deliver(update)
    assert response.status_code == 200, response.text
    return update


def reply_to(telegram: FakeTelegram, update: dict, containing: str, timeout: float = 20.0) -> str:
    """The text of the bot's message answering ``update`` once it contains ``containing``."""
    message = update["message"]

    def found():
        for sent in telegram.bot_messages(message["chat"]["id"]):
            if sent.get("reply_to") == message["message_id"] and containing in sent["text"]:
                return sent["text"]
        return None

    return wait_for(found, timeout, what=f"a reply with {containing!r}; the chat has {telegram.texts(message['chat']['id'])}")


def bind(telegram: FakeTelegram, user: dict, customer: Customer) -> None:  # noqa: F811
    update = send(telegram, telegram.message(user, text=customer.key))
    chat = update["message"]["chat"]["id"]
    wait_for(lambda: any("is bound" in t or "已绑定" in t for t in telegram.texts(chat)), what="the binding")
