"""The one database every package's tables live in.

The proxy is created unbound and bound once at start-up (:func:`bind`), so
models can be imported before anyone knows whether this is SQLite or PostgreSQL.
Peewee is synchronous: async code calls :func:`run_sync`, which runs the work in a
worker thread inside a connection context.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlparse

import anyio.to_thread
from peewee import Database, DatabaseProxy, Model, SqliteDatabase
from playhouse.pool import PooledPostgresqlDatabase

db = DatabaseProxy()

T = TypeVar("T")

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": 1,
    "busy_timeout": 10000,
}


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False


def open_database(url: str) -> Database:
    """Build (not connect) the database a ``sqlite:///`` or ``postgresql://`` URL names."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////abs/path.db, as SQLAlchemy spells them.
        path = unquote(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else unquote(parsed.path)
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # IMMEDIATE: a writer takes the lock when its transaction begins, so two
        # read-then-write transactions cannot deadlock on the upgrade.
        return SqliteDatabase(path or ":memory:", pragmas=SQLITE_PRAGMAS, lock_type="IMMEDIATE",
                              check_same_thread=False)
    if parsed.scheme in ("postgres", "postgresql"):
        return PooledPostgresqlDatabase(
            unquote(parsed.path.lstrip("/")) or "postgres",
            user=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            max_connections=64,
            stale_timeout=300,
            timeout=10,
        )
    raise ValueError(f"unsupported database URL scheme {parsed.scheme!r}")


def bind(url: str) -> Database:
    """Bind the shared proxy to the database at ``url`` and return it."""
    database = open_database(url)
    db.initialize(database)
    _sql_cache.clear()
    return database


_sql_cache: dict[str, str] = {}  # for the bound database; bind() empties it


def sql(statement: str) -> str:
    """A hand-written statement with ``?`` placeholders, as the bound driver spells them."""
    text = _sql_cache.get(statement)
    if text is None:
        text = _sql_cache[statement] = statement.replace("?", db.param)
    return text


def is_sqlite() -> bool:
    return isinstance(db.obj, SqliteDatabase)


def _in_context(fn: Callable[[], T]) -> T:
    # Worker threads are pooled by anyio, so each keeps its own connection open
    # across calls instead of paying a connect (and the SQLite pragmas) per query.
    db.connect(reuse_if_open=True)
    return fn()


async def run_sync(fn: Callable[[], T]) -> T:
    """Run blocking database work in a worker thread that keeps its own connection."""
    return await anyio.to_thread.run_sync(_in_context, fn)
