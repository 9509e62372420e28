"""The inline reservation path never blocks the event loop on someone else's write lock."""

from __future__ import annotations

import sqlite3
import time

from gateway.writes import try_inline


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
    from gateway.models import User

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
