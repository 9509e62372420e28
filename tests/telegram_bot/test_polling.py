"""Polling mode: updates come by getUpdates, one process polls at a time, and each update counts once."""

from __future__ import annotations

import os
import time
from dataclasses import replace

from arweave_store.models import Upload
from kernel.models import RequestLog
from telegram_bot.models import TelegramLease
from tests.telegram_bot.conftest import reply_to, start_bot, wait_for


def test_polling_handles_updates_and_a_second_process_waits_for_the_lease(bot_settings, database, telegram,
                                                                          arlocal, customer):
    settings = replace(bot_settings, telegram_mode="polling", telegram_webhook_secret="")
    first = start_bot(settings, telegram)
    second = None
    try:
        user = telegram.user(400, "en")
        key = telegram.message(user, text=customer.key)
        telegram.queue(key)
        wait_for(lambda: any("is bound" in t for t in telegram.texts(400)), what="the binding, by polling")
        data = os.urandom(2500)
        document = telegram.document(user, data)
        telegram.queue(document)
        reply_to(telegram, document, "Stored permanently")
        assert arlocal.data(Upload.get().tx_id) == data
        wait_for(lambda: not telegram.updates, what="the updates to be confirmed by the next offset")

        first_bot = first.server.config.app.state.telegram
        owner = first.server.config.app.state.gateway.registry.id
        assert first_bot.poller.polling and TelegramLease.get_by_id("poller").owner == owner

        second = start_bot(settings, telegram)
        second_bot = second.server.config.app.state.telegram
        second_bot.poller.idle = 0.2  # look at the lease often, so the takeover below is quick
        time.sleep(1.5)
        assert not second_bot.poller.polling, "a second process polled while the first held the lease"
        assert telegram.most_polls_at_once == 1 and telegram.conflicts == 0

        first.stop()  # a clean stop gives the lease back
        first = None
        wait_for(lambda: second_bot.poller.polling, what="the second process to take over")
        assert TelegramLease.get_by_id("poller").owner == second.server.config.app.state.gateway.registry.id
        telegram.queue(document)  # an update delivered again (as after a takeover) is not handled again
        help_update = telegram.message(user, text="/help")
        telegram.queue(help_update)
        reply_to(telegram, help_update, "permanent storage on Arweave")
        time.sleep(0.3)
        assert Upload.select().count() == 1 and RequestLog.select().where(RequestLog.kind == "upload").count() == 1
    finally:
        for server in (first, second):
            if server is not None:
                server.stop()
    assert TelegramLease.get_by_id("poller").owner == ""


def test_a_lease_of_a_process_that_is_gone_is_taken(database):
    from kernel.models import ServingProcess, utcnow

    ServingProcess.insert(id="a" * 32, host="h", pid=1, started_at=utcnow(), heartbeat_at=utcnow()).execute()
    assert TelegramLease.take("a" * 32)
    assert not TelegramLease.take("b" * 32), "the lease of a registered process was taken"
    assert TelegramLease.take("a" * 32)  # its owner keeps it
    ServingProcess.delete().execute()  # stopped, or died and was swept
    assert TelegramLease.take("b" * 32)
    TelegramLease.release("a" * 32)  # not the owner: nothing changes
    assert TelegramLease.get_by_id("poller").owner == "b" * 32
