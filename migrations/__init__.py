"""Numbered schema migrations, applied in order by ``permachat migrate`` (playhouse.migrations).

Each file declares frozen copies of the tables it creates, so a migration keeps
meaning the same thing however the application models change later.

Several processes may start at once (replicas after an upgrade, `serve` beside
`migrate`): :func:`upgrade` applies pending migrations under a lock, so exactly
one of them runs each migration and the others wait, then find nothing to do.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent
# pg_advisory_lock's key: any fixed 64-bit number no other code of this database uses ("permachat" in ASCII).
_PG_LOCK = 0x7065726D61636861


def runner(database):
    """A playhouse.migrations runner over this directory, bound to ``database``."""
    from playhouse.migrations import Runner

    return Runner(database, str(DIRECTORY))


@contextlib.contextmanager
def migration_lock(database) -> Iterator[None]:
    """Hold the database's migration lock: PostgreSQL's advisory lock, or a file lock beside an SQLite file."""
    from peewee import PostgresqlDatabase

    if isinstance(database, PostgresqlDatabase):
        # Session-level: held across the migrations' own transactions, on this thread's connection.
        database.execute_sql("SELECT pg_advisory_lock(%s)", (_PG_LOCK,))
        try:
            yield
        finally:
            database.execute_sql("SELECT pg_advisory_unlock(%s)", (_PG_LOCK,))
        return
    path = getattr(database, "database", "")
    if not path or path == ":memory:" or str(path).startswith("file:"):
        yield  # a private database: nobody else can migrate it
        return
    with open(f"{path}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upgrade(database) -> list[str]:
    """Apply every pending migration under :func:`migration_lock`; returns the names applied by this call."""
    with migration_lock(database):
        return runner(database).up()
