"""The inline reservation path never blocks the event loop on someone else's write lock."""

from __future__ import annotations

import sqlite3
import time

from gateway.writes import try_inline


def test_inline_write_steps_aside_when_the_database_is_locked(settings, database):
    other = sqlite3.connect(settings.database_url[len("sqlite:///"):], isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    started = time.monotonic()
    done, value = try_inline(lambda: 42)
    assert (done, value) == (False, None)
    assert time.monotonic() - started < 0.5, "it must not wait for the lock"
    other.execute("ROLLBACK")
    other.close()
    assert try_inline(lambda: 42) == (True, 42)
