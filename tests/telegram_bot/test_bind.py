"""Binding a key by sending it: the message goes at once, the key is never stored, the prefix confirms it."""

from __future__ import annotations

from kernel.db import db
from kernel.models import Token
from telegram_bot.models import TelegramBinding
from tests.telegram_bot.conftest import bind, reply_to, send, wait_for


def test_a_sent_key_is_deleted_bound_by_token_id_and_confirmed_with_its_prefix(bot_server, telegram, customer,
                                                                                 bot_settings):
    user = telegram.user(777, "en")
    update = send(telegram, telegram.message(user, text=f"here it is: {customer.key}"))
    chat, key_message = update["message"]["chat"]["id"], update["message"]["message_id"]
    wait_for(lambda: any("is bound" in t for t in telegram.texts(chat)), what="the confirmation")

    assert key_message not in telegram.chats[chat], "the message with the key is still in the chat"
    assert [c.params for c in telegram.calls_of("deleteMessage")] == [{"chat_id": chat, "message_id": key_message}]
    prefix = Token.get_by_id(customer.token_id).key_prefix
    confirmation = next(t for t in telegram.texts(chat) if "is bound" in t)
    assert prefix in confirmation and customer.key not in confirmation
    assert prefix.startswith("sk-") and "..." in prefix
    binding = TelegramBinding.get(TelegramBinding.telegram_user_id == 777)
    assert (binding.token_id, binding.language) == (customer.token_id, "en")

    # The key is nowhere in the database: no table holds it, and neither does the file (nor its WAL).
    for table in db.get_tables():
        for row in db.execute_sql(f'SELECT * FROM "{table}"').fetchall():
            assert customer.key not in repr(row), f"table {table} holds the plain key"
    database_files = list(bot_settings.data_dir.glob("permachat.db*"))
    assert database_files and all(customer.key.encode() not in path.read_bytes() for path in database_files)


def test_a_wrong_key_is_deleted_too_and_gets_a_clear_reply(bot_server, telegram, customer):
    user = telegram.user(778, "zh-hans")
    wrong = "sk-" + "Q" * 48
    update = send(telegram, telegram.message(user, text=wrong))
    chat = update["message"]["chat"]["id"]
    wait_for(lambda: any("不是有效的 API 密钥" in t for t in telegram.texts(chat)), what="the refusal")
    assert update["message"]["message_id"] not in telegram.chats[chat]
    assert not TelegramBinding.select().exists()

    english = telegram.user(779, "en")
    short = send(telegram, telegram.message(english, text="sk-tooShort"))
    wait_for(lambda: any("not a valid API key" in t for t in telegram.texts(779)), what="the English refusal")
    assert short["message"]["message_id"] not in telegram.chats[779]
    assert not TelegramBinding.select().exists()


def test_a_key_posted_in_a_group_is_deleted_and_not_bound(bot_server, telegram, customer):
    user = telegram.user(780, "en")
    update = send(telegram, telegram.message(user, text=customer.key, chat_type="group", chat_id=-1001))
    wait_for(lambda: any("never post a key" in t for t in telegram.texts(-1001)), what="the warning")
    assert update["message"]["message_id"] not in telegram.chats[-1001]
    assert not TelegramBinding.select().exists()


def test_binding_again_replaces_the_key(bot_server, telegram, customer):
    from tests.telegram_bot.conftest import make_customer

    user = telegram.user(781, "en")
    bind(telegram, user, customer)
    other = make_customer("bob@example.com")
    send(telegram, telegram.message(user, text=other.key))
    wait_for(lambda: TelegramBinding.token_of(781) == other.token_id, what="the new binding")
    assert TelegramBinding.select().count() == 1
    help_update = send(telegram, telegram.message(user, text="/start"))
    assert "/balance" in reply_to(telegram, help_update, "permanent storage on Arweave")
