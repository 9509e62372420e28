"""The fake Bot API server behaves like Telegram's: python-telegram-bot, the reference client, works with it,
and our client maps its answers as Telegram's would be mapped."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import telegram as ptb

from telegram_bot.api import BotAPI
from telegram_bot.errors import BadRequest, Conflict, NotFound, Unauthorized
from tests.telegram_bot.conftest import TOKEN


def test_python_telegram_bot_drives_the_fake(telegram):
    async def scenario():
        bot = ptb.Bot(TOKEN, base_url=f"{telegram.base_url}/bot", base_file_url=f"{telegram.base_url}/file/bot")
        async with bot:  # initialize() calls getMe
            me = await bot.get_me()
            assert (me.id, me.username, me.is_bot) == (123456789, "permachat_test_bot", True)
            user = telegram.user(9, "en")
            update = telegram.document(user, b"the bytes of a file", name="a.txt")
            telegram.queue(update)
            updates = await bot.get_updates(timeout=1)
            assert [u.update_id for u in updates] == [update["update_id"]]
            document = updates[0].message.document
            assert (document.file_name, document.file_size) == ("a.txt", 19)
            file = await bot.get_file(document.file_id)
            assert bytes(await file.download_as_bytearray()) == b"the bytes of a file"
            sent = await bot.send_message(9, "<b>bold</b> &amp; plain", parse_mode="HTML",
                                          reply_to_message_id=updates[0].message.message_id)
            assert sent.text == "bold & plain" and sent.chat.id == 9
            edited = await bot.edit_message_text("<i>new</i>", chat_id=9, message_id=sent.message_id,
                                                 parse_mode="HTML")
            assert edited.text == "new"
            with pytest.raises(ptb.error.BadRequest, match="not modified"):
                await bot.edit_message_text("<i>new</i>", chat_id=9, message_id=sent.message_id, parse_mode="HTML")
            with pytest.raises(ptb.error.BadRequest, match="parse entities"):
                await bot.send_message(9, "<script>x</script>", parse_mode="HTML")
            assert await bot.delete_message(9, sent.message_id) is True
            with pytest.raises(ptb.error.BadRequest, match="not found"):
                await bot.delete_message(9, sent.message_id)
            # Confirmed by the next offset: gone for good.
            assert await bot.get_updates(offset=update["update_id"] + 1, timeout=0) == ()
            assert telegram.updates == []
            assert await bot.set_webhook("https://example.org/hook", secret_token="s3cret",
                                         allowed_updates=["message"])
            info = await bot.get_webhook_info()
            assert info.url == "https://example.org/hook" and info.allowed_updates == ("message",)
            with pytest.raises(ptb.error.Conflict, match="webhook is active"):
                await bot.get_updates(timeout=0)
            assert await bot.delete_webhook()
        wrong = ptb.Bot("1:" + "z" * 35, base_url=f"{telegram.base_url}/bot")
        with pytest.raises(ptb.error.InvalidToken):
            await wrong.get_me()

    asyncio.run(scenario())


def test_our_client_maps_telegrams_answers(telegram):
    async def scenario():
        api = BotAPI(TOKEN, telegram.base_url)
        wrong = BotAPI("1:" + "z" * 35, telegram.base_url)
        try:
            assert (await api.get_me()).username == "permachat_test_bot"
            with pytest.raises(Unauthorized) as info:
                await wrong.get_me()
            assert info.value.error_code == 401 and "z" * 35 not in str(info.value)
            with pytest.raises(NotFound):
                await api.call("noSuchMethod")
            with pytest.raises(BadRequest, match="invalid file_id"):
                await api.get_file("nope")
            file_id = telegram.add_file(b"x" * 200_000)
            file = await api.get_file(file_id)
            assert b"".join([chunk async for chunk in api.download(file.file_path)]) == b"x" * 200_000
            with pytest.raises(NotFound):
                _ = [chunk async for chunk in api.download("documents/gone.bin")]

            # A long poll waits for the next update, and ends as soon as one comes.
            started = time.monotonic()
            assert await api.get_updates(offset=None, timeout=1, allowed_updates=["message"]) == []
            assert time.monotonic() - started >= 0.9
            later = telegram.message(telegram.user(5), text="hi")
            threading.Timer(0.3, telegram.queue, [later]).start()
            started = time.monotonic()
            updates = await api.get_updates(offset=None, timeout=10, allowed_updates=["message"])
            assert [u.update_id for u in updates] == [later["update_id"]] and time.monotonic() - started < 5
            assert updates[0].message.text == "hi" and updates[0].message.sender.language_code == "en"

            # Two pollers: the first is ended with 409, as Telegram does.
            first = asyncio.ensure_future(api.get_updates(offset=later["update_id"] + 1, timeout=3,
                                                          allowed_updates=["message"]))
            await asyncio.sleep(0.3)
            second = asyncio.ensure_future(api.get_updates(offset=later["update_id"] + 1, timeout=1,
                                                           allowed_updates=["message"]))
            with pytest.raises(Conflict, match="terminated by other getUpdates"):
                await first
            assert await second == []
        finally:
            await api.aclose()
            await wrong.aclose()

    asyncio.run(scenario())
