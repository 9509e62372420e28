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

from gateway.db import db, is_sqlite

T = TypeVar("T")
Op = Callable[[], Any]


def _run_batch(ops: list[Op]) -> list[tuple[bool, Any]]:
    db.connect(reuse_if_open=True)
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


def try_inline(op: Callable[[sqlite3.Cursor], T]) -> tuple[bool, T | None]:
    """Run a short write right here, in the event loop, when that is cheaper and cannot block.

    Handing a write to a worker thread and back costs several hundred
    microseconds (two thread wake-ups); a reservation on SQLite costs well under
    a hundred. So on SQLite, when no batch of ours is being written, ``op`` runs
    inline in one transaction on the loop thread's own connection, whose busy
    timeout is zero: if anyone else holds the write lock, SQLite says so at once
    and the caller takes the queue instead. ``op`` gets the bare ``sqlite3``
    cursor (peewee's transaction objects cost more than the SQL); an exception
    from it rolls the transaction back. Never on PostgreSQL (a network round trip).
    Returns ``(False, None)`` when the caller must use :func:`run_write`.
    """
    global _inline_connection
    if writer.busy or not is_sqlite():
        return False, None
    db.connect(reuse_if_open=True)
    connection = db.connection()
    if connection is not _inline_connection:
        connection.execute("PRAGMA busy_timeout = 0")
        _inline_connection = connection
    if connection.in_transaction:  # someone on this thread is mid-transaction: not ours to join
        return False, None
    cursor = connection.cursor()
    try:
        cursor.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return False, None
        raise
    try:
        result = op(cursor)
    except BaseException:
        connection.rollback()
        raise
    connection.commit()
    return True, result


async def run_write(op: Callable[[], T], *, on_abandon: Callable[[T], None] | None = None) -> T:
    """Run a blocking database write with the next group commit (see :class:`GroupWriter`)."""
    return await writer.run(op, on_abandon=on_abandon)
