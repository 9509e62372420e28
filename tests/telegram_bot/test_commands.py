"""/balance, /uploads, /unbind, /help, in the user's language."""

from __future__ import annotations

import os

from arweave_store.models import Upload
from kernel.models import Token, User
from kernel.money import format_usd
from telegram_bot.models import TelegramBinding
from tests.telegram_bot.conftest import bind, make_customer, reply_to, send


def test_balance_uploads_and_unbind(bot_server, telegram, arlocal, customer):
    user = telegram.user(300, "en")
    bind(telegram, user, customer)
    names = [f"file {i} <{i}>.txt" for i in range(12)]
    for name in names:
        reply_to(telegram, send(telegram, telegram.document(user, os.urandom(600), name=name, mime="text/plain")),
                 "Stored permanently")

    balance = reply_to(telegram, send(telegram, telegram.message(user, text="/balance")), "Account")
    token, account = Token.get_by_id(customer.token_id), User.get_by_id(customer.user_id)
    assert token.key_prefix in balance
    assert f"Account: {format_usd(account.quota)} left" in balance
    assert account.quota < 2_500_000  # twelve uploads were paid from it

    listed = reply_to(telegram, send(telegram, telegram.message(user, text="/uploads")), "Your last")
    assert "Your last 10 uploads" in listed
    rows = list(Upload.select().order_by(Upload.id.desc()).limit(10))
    for n, row in enumerate(rows, 1):
        assert f"{n}. {row.file_name}: " in listed
    assert names[0] not in listed and names[1] not in listed  # the two oldest are not among the last ten
    html = telegram.bot_messages(300)[-1]["html"]
    assert f'<a href="{arlocal.url}/{rows[0].tx_id}">file 11 &lt;11&gt;.txt</a>' in html

    unbound = reply_to(telegram, send(telegram, telegram.message(user, text="/unbind")), "no longer bound")
    assert token.key_prefix in unbound and TelegramBinding.token_of(300) is None
    after = send(telegram, telegram.document(user, b"more", name="after.txt"))
    reply_to(telegram, after, "First send me your API key")
    assert Upload.select().count() == 12
    reply_to(telegram, send(telegram, telegram.message(user, text="/unbind")), "No key is bound")


def test_commands_in_chinese_and_a_key_with_no_limit(bot_server, telegram, database):
    from accounts import create_token, create_user, topup

    owner = create_user("carol@example.com", "password123")
    topup(owner, "3")
    unlimited = create_token(owner, name="all", unlimited=True)
    user = telegram.user(301, "zh-hans")
    send(telegram, telegram.message(user, text=unlimited.key))
    from tests.telegram_bot.conftest import wait_for

    wait_for(lambda: TelegramBinding.token_of(301) == unlimited.token.id, what="the binding")
    balance = reply_to(telegram, send(telegram, telegram.message(user, text="/balance@permachat_test_bot")), "账户")
    assert "无单独额度" in balance and "账户：剩余 $3.00" in balance
    reply_to(telegram, send(telegram, telegram.message(user, text="/uploads")), "还没有上传")
    reply_to(telegram, send(telegram, telegram.message(user, text="/help")), "把文件永久存到 Arweave")
    reply_to(telegram, send(telegram, telegram.message(user, text="hello")), "把文件（文档、图片")


def test_a_deleted_or_disabled_key_says_so(bot_server, telegram, database):

    customer = make_customer("dora@example.com")
    user = telegram.user(302, "en")
    bind(telegram, user, customer)
    Token.update(status="disabled").where(Token.id == customer.token_id).execute()
    reply_to(telegram, send(telegram, telegram.document(user, b"abc", name="a.txt")), "The bound key is disabled")
    Token.delete().where(Token.id == customer.token_id).execute()
    reply_to(telegram, send(telegram, telegram.document(user, b"abc", name="a.txt")), "no longer exists")
    assert TelegramBinding.token_of(302) is None and not Upload.select().exists()
