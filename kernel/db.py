"""The one database every package's tables live in.

The proxy is created unbound and bound once at start-up (:func:`bind`), so
models can be imported before anyone knows whether this is SQLite or PostgreSQL.
Peewee is synchronous: async code calls :func:`run_sync`, which runs the work in a
worker thread inside a connection context.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlparse

import anyio.to_thread
import psycopg2
import psycopg2.extensions
from peewee import Database, DatabaseProxy, InterfaceError, Model, OperationalError, SqliteDatabase
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


# A thread's PostgreSQL connection unused for this long is checked (one SELECT 1) before it is used again.
IDLE_CHECK_SECONDS = 1.0
_thread = threading.local()


def drop_if_cut() -> None:
    """Forget this thread's PostgreSQL connection if the server cut it, so the next use opens another.

    Worker threads keep their connection for ever, and peewee would go on
    handing a dead one out (after a restart, a failover, ``pg_terminate_backend``):
    every later request on that thread failed. psycopg2 marks a connection
    closed once a query found the server gone; a connection idle for
    :data:`IDLE_CHECK_SECONDS` is also asked (a busy one is not: no round trip
    on the hot path), so a cut costs at most the requests that were using the
    connection when it happened.
    """
    database = db.obj
    if not isinstance(database, PooledPostgresqlDatabase) or database.is_closed():
        return
    conn = database.connection()
    now = time.monotonic()
    idle = now - getattr(_thread, "used", now)
    _thread.used = now
    if not conn.closed and idle > IDLE_CHECK_SECONDS and \
            conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
        except psycopg2.Error:
            pass  # psycopg2 has now marked it closed
    if conn.closed:
        database.manual_close()


def connect() -> None:
    """Open (or keep) this thread's connection; a connection the server cut is replaced."""
    drop_if_cut()
    db.connect(reuse_if_open=True)


def drop_after(exc: BaseException) -> None:
    """After a driver error on PostgreSQL, forget this thread's connection whatever state it claims.

    psycopg2 does not always mark a connection the server terminated as closed,
    and a connection used again within :data:`IDLE_CHECK_SECONDS` is not asked:
    dropping it after any operational error costs one new connection and means
    the next call cannot fail the same way.
    """
    database = db.obj
    if (isinstance(exc, OperationalError | InterfaceError) and isinstance(database, PooledPostgresqlDatabase)
            and not database.is_closed()):
        try:
            database.manual_close()
        except Exception:  # noqa: BLE001 - it is being thrown away
            database._state.reset()


def run_connected(fn: Callable[[], T]) -> T:
    """``fn()`` on this thread's connection (replaced first if cut, dropped after a driver error)."""
    connect()
    try:
        return fn()
    except (OperationalError, InterfaceError) as exc:
        drop_after(exc)
        raise


def _in_context(fn: Callable[[], T]) -> T:
    # Worker threads are pooled by anyio, so each keeps its own connection open
    # across calls instead of paying a connect (and the SQLite pragmas) per query.
    return run_connected(fn)


async def run_sync(fn: Callable[[], T]) -> T:
    """Run blocking database work in a worker thread that keeps its own connection."""
    return await anyio.to_thread.run_sync(_in_context, fn)
