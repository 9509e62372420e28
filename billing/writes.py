"""Group commit: the gateway's database writes, many per transaction, one batch at a time.

Every request writes twice (its reservation, then its settlement and log row).
A commit is the expensive part, and SQLite allows one writer: threads racing
for its lock fall into its busy handler, which sleeps for whole milliseconds.
So writes queue here; one worker thread at a time runs everything queued in
one transaction, each write in its own savepoint (a refused reservation rolls
back alone). Under load that is one commit for dozens of requests.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from peewee import InterfaceError, OperationalError

from kernel.db import db, drop_after, is_sqlite, run_connected

T = TypeVar("T")
Op = Callable[[], Any]


def _run_batch(ops: list[Op]) -> list[tuple[bool, Any]]:
    results = run_connected(lambda: _batch(ops))
    broken = next((r for ok, r in results if not ok and isinstance(r, OperationalError | InterfaceError)), None)
    if broken is not None:
        drop_after(broken)  # an op met a driver error: do not hand this connection to the next batch
    return results


def _batch(ops: list[Op]) -> list[tuple[bool, Any]]:
    results: list[tuple[bool, Any]] = []
    with db.atomic():
        for op in ops:
            try:
                with db.atomic():
                    results.append((True, op()))
            except Exception as exc:  # handed to the op's caller
                results.append((False, exc))
    return results


class GroupWriter:
    def __init__(self) -> None:
        self._pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def run(self, op: Callable[[], T], *, on_abandon: Callable[[T], None] | None = None) -> T:
        """Run ``op`` in the next batch and return its result (or raise its exception).

        The write happens even if the caller is cancelled meanwhile; ``on_abandon``
        then receives its result, so the caller's side effects can be undone.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((op, future))
        if self._draining is None:
            self._draining = loop.create_task(self._drain(), name="permachat-db-writer")
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if on_abandon is not None:
                future.add_done_callback(
                    lambda f: on_abandon(f.result()) if not f.cancelled() and f.exception() is None else None)
            raise

    @property
    def busy(self) -> bool:
        """Whether writes are queued or a batch is being written."""
        return self._draining is not None or bool(self._pending)

    async def idle(self) -> None:
        """Wait until everything queued so far is written."""
        while self._draining is not None:
            await asyncio.shield(self._draining)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await anyio.to_thread.run_sync(_run_batch, [op for op, _ in batch])
                except Exception as exc:  # the commit itself failed: every op in the batch did
                    results = [(False, exc)] * len(batch)
                for (_, future), (ok, value) in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self._draining = None


writer = GroupWriter()

_inline_connection: sqlite3.Connection | None = None


def inline_connection() -> sqlite3.Connection | None:
    """The event loop thread's own SQLite connection, when a write may run on it now; else None.

    Handing a write to a worker thread and back costs several hundred
    microseconds (two thread wake-ups), and the worker then competes with the
    event loop for the GIL; a reservation on SQLite costs well under a hundred.
    So on SQLite, when no batch of ours is being written in the worker, short
    writes run inline on this connection. Its busy timeout is zero: if anyone
    else holds the write lock, SQLite says so at once and the caller takes the
    queue instead. It never checkpoints the WAL itself (that can take
    milliseconds): :func:`checkpoint` does, in a worker thread. Never on
    PostgreSQL (a network round trip).
    """
    global _inline_connection
    if writer.busy or not is_sqlite():
        return None
    # Peewee keeps each thread's connection in ``_state``; reading it directly
    # skips connect()'s lock and checks, which cost more than the reservation's SQL.
    connection = db.obj._state.conn
    if connection is None:
        db.connect(reuse_if_open=True)
        connection = db.connection()
    if connection is not _inline_connection:
        connection.execute("PRAGMA busy_timeout = 0")
        connection.execute("PRAGMA wal_autocheckpoint = 0")
        _inline_connection = connection
    if connection.in_transaction:  # someone on this thread is mid-transaction: not ours to join
        return None
    return connection


def _is_busy(exc: Exception) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def try_inline(op: Callable[[sqlite3.Cursor], T]) -> tuple[bool, T | None]:
    """Run ``op`` in one transaction on :func:`inline_connection`, if there is one.

    ``op`` gets the bare ``sqlite3`` cursor (peewee's transaction objects cost
    more than the SQL); an exception from it rolls the transaction back.
    Returns ``(False, None)`` when the caller must use :func:`run_write`.
    """
    connection = inline_connection()
    if connection is None:
        return False, None
    cursor = connection.cursor()
    try:
        cursor.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if _is_busy(exc):
            return False, None
        raise
    try:
        result = op(cursor)
    except BaseException:
        connection.rollback()
        raise
    connection.commit()
    return True, result


def try_inline_peewee(op: Callable[[], T]) -> tuple[bool, T | None]:
    """Like :func:`try_inline` for an ``op`` written with peewee, which opens its own transaction."""
    if inline_connection() is None:
        return False, None
    try:
        return True, op()
    except OperationalError as exc:  # the BEGIN found the lock taken: nothing was written
        if _is_busy(exc):
            return False, None
        raise


def checkpoint() -> None:
    """Copy the WAL back into the database file (blocking: call from a worker thread)."""
    if is_sqlite():
        db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")


async def run_write(op: Callable[[], T], *, on_abandon: Callable[[T], None] | None = None) -> T:
    """Run a blocking database write with the next group commit (see :class:`GroupWriter`)."""
    return await writer.run(op, on_abandon=on_abandon)
