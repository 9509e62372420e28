"""The webhook: only Telegram (the secret) gets in, a bad body is a clear 400, and a retried update counts once."""

from __future__ import annotations

import json
import os
import time

import httpx

from arweave_store.models import Upload
from kernel.models import RequestLog, User
from telegram_bot.models import TelegramUpdate
from tests.telegram_bot.conftest import HOOK, bind, reply_to, wait_for


def test_a_wrong_or_missing_secret_is_401_and_nothing_is_processed(bot_server, telegram, customer):
    user = telegram.user(200, "en")
    update = telegram.message(user, text="/help")
    wrong = telegram.deliver(update, secret="not-the-secret")
    missing = telegram.deliver(update, secret="")
    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert "X-Telegram-Bot-Api-Secret-Token" in wrong.json()["error"]
    keyed = telegram.deliver(telegram.message(user, text=customer.key), secret="nope")
    assert keyed.status_code == 401
    time.sleep(0.5)  # a handler would have answered by now
    assert not TelegramUpdate.select().exists()
    assert not telegram.calls, "an update with a wrong secret was acted on"

    ok = telegram.deliver(update)  # the same update with the right secret is handled
    assert ok.status_code == 200
    reply_to(telegram, update, "permanent storage on Arweave")


def test_a_body_that_is_not_an_update_is_400_with_a_clear_message(bot_server, telegram):
    url = bot_server.url + HOOK
    headers = {"X-Telegram-Bot-Api-Secret-Token": telegram.webhook_secret, "Content-Type": "application/json"}
    broken = httpx.post(url, content=b'{"update_id": 1, "message": {', headers=headers)
    assert broken.status_code == 400 and "not JSON" in broken.json()["error"]
    assert "Traceback" not in broken.text
    not_an_object = httpx.post(url, content=b"[1, 2]", headers=headers)
    assert not_an_object.status_code == 400 and "not a Telegram update" in not_an_object.json()["error"]
    no_id = httpx.post(url, content=json.dumps({"message": {}}), headers=headers)
    assert no_id.status_code == 400 and "update_id" in no_id.json()["error"]
    assert httpx.get(url).status_code in (404, 405)  # POST only (a GET falls through to the pages: 404)
    assert not TelegramUpdate.select().exists() and not telegram.calls


def test_an_update_telegram_retries_is_handled_once(bot_server, telegram, arlocal, customer):
    user = telegram.user(201, "en")
    bind(telegram, user, customer)
    before = User.get_by_id(customer.user_id).quota
    update = telegram.document(user, os.urandom(3000), name="once.bin")
    # Telegram sends it again when our answer is late or lost: at once, and later again.
    assert [telegram.deliver(update).status_code for _ in range(3)] == [200, 200, 200]
    reply_to(telegram, update, "Stored permanently")
    assert telegram.deliver(update).status_code == 200
    time.sleep(0.5)
    assert Upload.select().count() == 1
    logged = list(RequestLog.select().where(RequestLog.kind == "upload"))
    assert len(logged) == 1 and User.get_by_id(customer.user_id).quota == before - logged[0].quota
    assert len(telegram.calls_of("getFile")) == 1
    answers = [m for m in telegram.bot_messages(201) if m.get("reply_to") == update["message"]["message_id"]]
    assert len(answers) == 1
    assert TelegramUpdate.select().where(TelegramUpdate.update_id == update["update_id"]).count() == 1


def test_the_webhook_answers_before_a_slow_upload_finishes(bot_server, telegram, customer):
    user = telegram.user(202, "en")
    bind(telegram, user, customer)
    telegram.download_delay = 0.2  # 24 chunks: about five seconds of downloading
    update = telegram.document(user, os.urandom(1536 * 1024), name="slow.bin")
    started = time.monotonic()
    assert telegram.deliver(update).status_code == 200
    assert time.monotonic() - started < 2, "the webhook waited for the upload"
    wait_for(lambda: telegram.downloads, what="the download to start")
    reply_to(telegram, update, "Stored permanently", timeout=60)
