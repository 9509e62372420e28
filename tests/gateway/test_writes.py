"""The inline reservation path never blocks the event loop on someone else's write lock."""

from __future__ import annotations

import sqlite3
import time

from billing.writes import try_inline


def test_inline_write_steps_aside_when_the_database_is_locked(settings, database):
    other = sqlite3.connect(settings.database_url[len("sqlite:///"):], isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    started = time.monotonic()
    done, value = try_inline(lambda cursor: 42)
    assert (done, value) == (False, None)
    assert time.monotonic() - started < 0.5, "it must not wait for the lock"
    other.execute("ROLLBACK")
    other.close()
    assert try_inline(lambda cursor: 42) == (True, 42)


def test_inline_write_commits_or_rolls_back_as_a_whole(settings, database):
    from kernel.models import User

    user = User.create(email="inline@example.com", password_hash="x", quota=100)

    def take(cursor, fail):
        cursor.execute('UPDATE "user" SET "quota" = "quota" - 10 WHERE "id" = ?', (user.id,))
        if fail:
            raise RuntimeError("refused halfway")
        return "taken"

    try:
        try_inline(lambda cursor: take(cursor, True))
    except RuntimeError:
        pass
    assert User.get_by_id(user.id).quota == 100, "a failed inline write leaves nothing behind"
    assert try_inline(lambda cursor: take(cursor, False)) == (True, "taken")
    assert User.get_by_id(user.id).quota == 90


def test_usage_log_batch_waits_for_the_lock_in_a_worker_not_on_the_event_loop(settings, database):
    import asyncio
    import threading

    from billing import quota
    from billing.ledger import Entry, Ledger
    from billing.writes import try_inline_peewee
    from kernel.models import RequestLog, User

    user = User.create(email="ledger-lock@example.com", password_hash="x", quota=1000)
    reservation = quota.reserve(user.id, None, 100)
    other = sqlite3.connect(settings.database_url[len("sqlite:///"):], isolation_level=None,
                            check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process is writing

    def touch() -> int:
        with database.atomic():
            return User.update(quota=User.quota).where(User.id == user.id).execute()

    started = time.monotonic()
    assert try_inline_peewee(touch) == (False, None)
    assert time.monotonic() - started < 0.5, "it must not wait for the lock"

    async def scenario() -> float:
        ledger = Ledger()
        row = {c: None for c in ("channel_id", "ttft_ms")} | {
            "request_id": "r-lock", "kind": "relay", "user_id": user.id, "token_id": None, "token_name": "",
            "endpoint": "/v1/chat/completions", "model": "m", "upstream_model": "m", "prompt_tokens": 1,
            "completion_tokens": 1, "cached_tokens": 0, "quota": 0, "latency_ms": 1, "is_stream": False,
            "status_code": 200, "error": "", "client_ip": "127.0.0.1"}
        ledger.add(Entry(row=row, reservation=reservation, cost=40))
        threading.Timer(0.3, lambda: other.execute("ROLLBACK")).start()
        ticks = 0

        async def tick() -> None:  # the event loop keeps running while the batch waits
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.get_running_loop().create_task(tick())
        await ledger.flush()
        ticker.cancel()
        return ticks

    ticks = asyncio.run(scenario())
    other.close()
    assert ticks >= 10, "the loop was blocked while the database was locked"
    assert RequestLog.get(RequestLog.request_id == "r-lock").quota == 40
    assert User.get_by_id(user.id).quota == 960
