"""The bot's tables keep their promises on SQLite and PostgreSQL: one claim per update, one binding per user."""

from __future__ import annotations

import threading

import pytest

from kernel.models import ServingProcess, utcnow
from telegram_bot.models import TelegramBinding, TelegramLease, TelegramUpdate
from tests.conftest import migrate_database


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request, settings):
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else settings.database_url
    database = migrate_database(url)
    yield database
    database.close()


def test_an_update_is_claimed_once_even_by_racing_threads(any_database):
    from kernel.db import run_connected

    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def claim():
        barrier.wait()
        wins.append(run_connected(lambda: TelegramUpdate.claim(42, 1001)))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 7 + [True]
    assert TelegramUpdate.claim(43, 1001), "another bot's update with the same id is another update"
    assert not TelegramUpdate.claim(42, 1001)


def test_old_claims_are_pruned(any_database):
    import datetime as dt

    TelegramUpdate.insert(bot_id=1, update_id=1, received_at=utcnow() - dt.timedelta(days=8)).execute()
    TelegramUpdate.claim(1, 2)
    assert TelegramUpdate.prune(dt.timedelta(days=7)) == 1
    assert [u.update_id for u in TelegramUpdate.select()] == [2]


def test_binding_is_one_row_per_telegram_user(any_database):
    TelegramBinding.bind(7, 100, "en")
    TelegramBinding.bind(7, 200, "zh")
    TelegramBinding.bind(8, 100, "en")
    assert [(b.telegram_user_id, b.token_id, b.language) for b in TelegramBinding.select().order_by(
        TelegramBinding.telegram_user_id)] == [(7, 200, "zh"), (8, 100, "en")]
    assert TelegramBinding.unbind(7) and not TelegramBinding.unbind(7)
    assert TelegramBinding.token_of(7) is None and TelegramBinding.token_of(8) == 100


def test_the_poller_lease_has_one_holder(any_database):
    for owner in ("a" * 32, "b" * 32):
        ServingProcess.insert(id=owner, host="h", pid=1, started_at=utcnow(), heartbeat_at=utcnow()).execute()
    assert TelegramLease.take("a" * 32) and not TelegramLease.take("b" * 32)
    TelegramLease.release("a" * 32)
    assert TelegramLease.take("b" * 32) and not TelegramLease.take("a" * 32)
