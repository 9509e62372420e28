"""Files sent to the bot go to arlocal through the same path as POST /arweave/upload, billed the same."""

from __future__ import annotations

import os
from dataclasses import replace
from urllib.parse import unquote

import httpx

from arweave_store.models import Upload
from kernel.models import RequestLog, Token, User
from tests.telegram_bot.conftest import bind, make_customer, reply_to, send, start_bot


def quota_of(customer) -> tuple[int, int]:
    return User.get_by_id(customer.user_id).quota, Token.get_by_id(customer.token_id).remain_quota


def uploads_logged() -> list[RequestLog]:
    return list(RequestLog.select().where(RequestLog.kind == "upload").order_by(RequestLog.id))


def test_a_document_is_stored_and_billed_exactly_like_the_http_upload(bot_server, telegram, arlocal, customer):
    user = telegram.user(100, "en")
    bind(telegram, user, customer)
    data = os.urandom(5000)
    name, mime = "notes (v2) <draft>.bin", "application/x-test"
    start = quota_of(customer)

    update = send(telegram, telegram.document(user, data, name=name, mime=mime))
    text = reply_to(telegram, update, "Stored permanently")

    row = Upload.get()
    assert arlocal.data(row.tx_id) == data  # the very bytes sent
    assert f"{arlocal.url}/{row.tx_id}" in text
    assert "5,000 B" in text and name in text  # the name, escaped in the HTML, reads as sent
    after_telegram = quota_of(customer)
    charged = start[0] - after_telegram[0]
    assert charged > 0 and f"Cost: {_usd(charged)}" in text
    tags = arlocal.tags(row.tx_id)
    assert tags["Content-Type"] == mime and unquote(tags["File-Name"]) == name

    # The same file through the HTTP door, with the same key.
    response = httpx.post(f"{bot_server.url}/arweave/upload", headers={"Authorization": f"Bearer {customer.key}"},
                          files={"file": (name, data, mime)})
    assert response.status_code == 200, response.text
    after_http = quota_of(customer)
    assert (start[0] - after_telegram[0], start[1] - after_telegram[1]) == (
        after_telegram[0] - after_http[0], after_telegram[1] - after_http[1])
    by_bot, by_http = uploads_logged()
    same = ("kind", "model", "quota", "token_id", "token_name", "user_id", "status_code", "error")
    assert [getattr(by_bot, f) for f in same] == [getattr(by_http, f) for f in same]
    assert (by_bot.endpoint, by_http.endpoint) == ("telegram", "/arweave/upload")
    assert by_bot.quota == charged and by_bot.request_id == row.request_id
    assert [u.cost_quota for u in Upload.select().order_by(Upload.id)] == [charged, charged]


def _usd(units: int) -> str:
    from kernel.money import format_usd

    return format_usd(units)


def test_a_photo_is_stored_at_its_largest_size(bot_server, telegram, arlocal, customer):
    user = telegram.user(101, "en")
    bind(telegram, user, customer)
    small, large = os.urandom(700), os.urandom(3000)
    update = send(telegram, telegram.photo(user, [small, large]))
    reply_to(telegram, update, "Stored permanently")
    row = Upload.get()
    assert arlocal.data(row.tx_id) == large and row.content_type == "image/jpeg"
    assert [c.params["file_id"] for c in telegram.calls_of("getFile")] == [update["message"]["photo"][1]["file_id"]]


def test_a_large_file_shows_its_progress_in_one_message_edited_in_place(bot_server, telegram, arlocal, customer):
    user = telegram.user(102, "en")
    bind(telegram, user, customer)
    data = os.urandom(1536 * 1024)  # over the 1 MB at which progress is shown
    telegram.download_delay = 0.08  # 24 chunks of 64 KiB: about two seconds to download
    update = send(telegram, telegram.document(user, data, name="big.bin"))
    final = reply_to(telegram, update, "Stored permanently", timeout=60)

    replies = [c for c in telegram.calls_of("sendMessage") if c.params.get("reply_parameters")]
    assert len(replies) == 1, "one message for the whole upload, edited, not a new one per step"
    assert "Downloading from Telegram… 0%" in replies[0].params["text"]
    progress_id = next(m["message_id"] for m in telegram.bot_messages(102) if m.get("reply_to"))
    edits = telegram.calls_of("editMessageText")
    assert edits and all(e.params["message_id"] == progress_id for e in edits)
    steps = [e.params["text"] for e in edits]
    assert any(s.startswith("⏳ Downloading") and not s.endswith(" 0%") for s in steps), steps
    assert "⏳ Storing on Arweave…" in steps and "Stored permanently" in steps[-1]
    assert steps.index("⏳ Storing on Arweave…") < len(steps) - 1
    assert f"{arlocal.url}/" in final and "1.5 MB (1,572,864 B)" in final
    assert arlocal.data(Upload.get().tx_id) == data


def test_a_failed_arweave_post_is_refunded_exactly_like_the_http_upload(bot_settings, database, telegram, arlocal,
                                                                       unfunded_wallet):
    customer = make_customer()
    start = quota_of(customer)
    server = start_bot(replace(bot_settings, arweave_wallet=str(unfunded_wallet.path)), telegram)
    try:
        user = telegram.user(103, "en")
        bind(telegram, user, customer)
        update = send(telegram, telegram.document(user, b"some bytes", name="a.txt", mime="text/plain"))
        text = reply_to(telegram, update, "Arweave did not accept the file")
        assert "Nothing was charged" in text and "410" in text
        assert quota_of(customer) == start
        assert not uploads_logged()

        http = httpx.post(f"{server.url}/arweave/upload", headers={"Authorization": f"Bearer {customer.key}"},
                          files={"file": ("a.txt", b"some bytes", "text/plain")})
        assert http.status_code == 502
    finally:
        server.stop()
    assert quota_of(customer) == start and not uploads_logged()
    by_bot, by_http = Upload.select().order_by(Upload.id)
    assert [(u.status, u.cost_quota, u.local_path) for u in (by_bot, by_http)] == [("failed", 0, "")] * 2


def test_an_upload_the_gateway_cannot_take_yet_is_held_and_posted_after_a_restart(bot_settings, database, telegram,
                                                                                   arlocal, customer):
    from tests.arweave_store.test_upload import FlakyGateway
    from tests.telegram_bot.conftest import wait_for

    flaky = FlakyGateway(arlocal.url)
    flaky.down = True  # the post fails: the upload stays received, its quote held
    settings = replace(bot_settings, arweave_gateway=flaky.url)
    first = start_bot(replace(settings, arweave_poll_seconds=3600), telegram)
    first.server.config.app.state.arweave.client.backoff = 0.01
    data = os.urandom(1200)
    try:
        user = telegram.user(104, "en")
        bind(telegram, user, customer)
        update = send(telegram, telegram.document(user, data, name="later.bin"))
        text = reply_to(telegram, update, "has not taken it yet")
        row = Upload.get()
        assert row.status == "received" and f"{flaky.url}/{row.tx_id}" in text
    finally:
        first.stop()
    held = quota_of(customer)
    assert held[0] == 2_500_000 - row.reserved_quota and not uploads_logged()

    flaky.down = False
    second = start_bot(settings, telegram)  # same data directory and database: its tracker posts it
    try:
        wait_for(lambda: Upload.get().status == "posted", what="the re-post")
        assert arlocal.data(row.tx_id) == data
        [logged] = uploads_logged()
        assert (logged.endpoint, logged.quota) == ("telegram", row.reserved_quota)
        assert quota_of(customer) == held
    finally:
        second.stop()
        flaky.server.stop()
