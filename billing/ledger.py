"""Settling and logging in batches, off the request's path.

Each finished request hands one :class:`Entry` (its reservation, what it cost,
its log row) to the :class:`Ledger`; a background task writes whatever has
queued up in one transaction in a worker thread: the settlements, the log rows,
the channels' spend and errors. A log row's ``quota`` is what ``settle``
actually charged in that same transaction, so the log and the balances agree to
the unit. :meth:`Ledger.close` writes everything still queued.

One entry the database refuses must not hold back the others: a batch that
fails is written again one entry at a time, and an entry that fails on its own
while others go in is set aside (:attr:`Ledger.refused`) and logged in full at
ERROR, so the admin can see and settle it. When nothing goes in, the database
is at fault, not an entry: the batch waits and is tried again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from billing import quota
from billing.writes import checkpoint, run_write, try_inline_peewee
from kernel.db import db, run_sync, sql
from kernel.models import RefusedWrite, RequestLog, utcnow

log = logging.getLogger("permachat.gateway")

BATCH = 500
INLINE_BATCH = 100  # a larger batch goes to the worker thread rather than hold up the event loop
CHECKPOINT_SECONDS = 2.0
# Wait this long for more entries before writing a small batch: each batch holds
# the single SQLite writer, and the next request's reservation waits behind it.
COALESCE_SECONDS = 0.025


@dataclass
class Entry:
    """One request's settlement and log row (``row`` holds RequestLog's fields)."""

    row: dict[str, Any]
    reservation: quota.Reservation | None
    cost: int  # units to charge; the row records what was actually charged


class Ledger:
    def __init__(self, process_id: str = "") -> None:
        self.process_id = process_id  # named on what it sets aside
        self._queue: list[Entry | Callable[[], None]] = []
        # hold id -> its latest checkpoint (units, prompt tokens, completion tokens, channel id)
        self._checkpoints: dict[str, tuple[int, int, int, int | None]] = {}
        # What the database refused on its own, with why (kept for the process's life; logged in full).
        self.refused: list[tuple[Entry | Callable[[], None], str]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="permachat-ledger")

    def add(self, entry: Entry) -> None:
        self._queue.append(entry)
        self._wake.set()

    def later(self, fn: Callable[[], None]) -> None:
        """Run a small blocking write (a channel's last error) with the next batch."""
        self._queue.append(fn)
        self._wake.set()

    def checkpoint(self, hold_id: str, units: int, prompt_tokens: int, completion_tokens: int,
                   channel_id: int | None) -> None:
        """Record on a request's hold what it has provably used so far (written with the next batch).

        If the process dies before the request settles, the process that settles
        its hold bills this much and refunds the rest (see :mod:`billing.holds`).
        Only the latest checkpoint of each hold is written.
        """
        self._checkpoints[hold_id] = (units, prompt_tokens, completion_tokens, channel_id)
        self._wake.set()

    async def flush(self) -> None:
        """Write everything queued so far (tests and shutdown)."""
        while self._queue or self._checkpoints:
            await self._write_batch()

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        checkpointed = loop.time()
        while not self._closing:
            await self._wake.wait()
            if len(self._queue) < BATCH and not self._closing:
                await asyncio.sleep(COALESCE_SECONDS)
            self._wake.clear()
            try:
                await self._write_batch()
                if loop.time() - checkpointed > CHECKPOINT_SECONDS:
                    # Inline writes never checkpoint the WAL themselves (see billing.writes).
                    checkpointed = loop.time()
                    await run_sync(checkpoint)
            except Exception:  # keep the writer alive; the batch was re-queued
                log.exception("could not write usage logs; will retry")
                await asyncio.sleep(0.5)
                self._wake.set()

    async def _write_batch(self) -> None:
        batch, self._queue = self._queue[:BATCH], self._queue[BATCH:]
        if self._checkpoints:
            # First in the batch, so a settlement in the same batch deletes the hold after it.
            checkpoints, self._checkpoints = self._checkpoints, {}
            batch.insert(0, _CheckpointWrite(checkpoints))
        if not batch:
            return
        try:
            await _commit(batch)
        except Exception:
            # Nothing of the batch was committed (one transaction).
            _unsettle(batch)
            if len(batch) > 1:
                await self._write_one_by_one(batch)
            elif self._closing:
                # The last chance: keep it in the log rather than fail the shutdown and lose the rest.
                await self._set_aside(batch[0], "refused at shutdown")
            else:
                self._queue[:0] = batch
                raise
        if self._queue:
            self._wake.set()

    async def _write_one_by_one(self, batch: list[Entry | Callable[[], None]]) -> list[tuple[Entry, int]]:
        """Write each item in its own transaction; set aside those the database refuses alone."""
        charged: list[tuple[Entry, int]] = []
        failed: list[tuple[Entry | Callable[[], None], str]] = []
        for item in batch:
            try:
                charged += await _commit([item])
            except Exception as exc:  # noqa: BLE001 - whatever the driver raises, judged below
                _unsettle([item])
                failed.append((item, f"{type(exc).__name__}: {exc}"))
        if failed and len(failed) == len(batch):
            # Nothing went in: the database is down or locked, not one bad entry. Try all again later.
            self._queue[:0] = batch
            raise RuntimeError(f"the database refused all {len(batch)} writes; first: {failed[0][1]}")
        for item, why in failed:
            await self._set_aside(item, why)
        return charged

    async def _set_aside(self, item: Entry | Callable[[], None], why: str) -> None:
        """Log it in full at ERROR, and keep it in ``refused_write`` where the admin sees it (/admin/audit)."""
        self.refused.append((item, why))
        described = _describe(item)
        log.error("usage ledger: the database refused this entry; it is set aside unwritten (%s): %s",
                  why, described)
        reservation = item.reservation if isinstance(item, Entry) else None
        fields = {
            "process_id": self.process_id,
            "request_id": str(item.row.get("request_id", ""))[:64] if isinstance(item, Entry) else "",
            "user_id": reservation.user_id if reservation else None,
            "token_id": reservation.token_id if reservation else None,
            "cost_quota": item.cost if isinstance(item, Entry) else 0,
            "reserved_quota": reservation.units if reservation else 0,
            # ASCII JSON: a NUL or a lone surrogate (what got the entry refused) is escaped, not stored.
            "record": described,
            "error": why.encode("unicode_escape").decode("ascii")[:2000],
        }
        try:
            await run_write(lambda: RefusedWrite.create(**fields))
        except Exception:  # noqa: BLE001 - the log line above already holds everything
            log.exception("usage ledger: could not keep the refused entry in refused_write either")


async def _commit(batch: list[Entry | Callable[[], None]]) -> list[tuple[Entry, int]]:
    done, charged = try_inline_peewee(lambda: _write(batch)) if len(batch) <= INLINE_BATCH else (False, None)
    if not done:
        charged = await run_write(lambda: _write(batch))
    return charged or []


_CHECKPOINT = ('UPDATE "hold" SET "checkpoint_units" = ?, "prompt_tokens" = ?, "completion_tokens" = ?, '
               '"channel_id" = ?, "checkpoint_at" = ? WHERE "id" = ?')


class _CheckpointWrite:
    """A batch's checkpoints, as one of its small writes (a hold already settled matches no row)."""

    def __init__(self, checkpoints: dict[str, tuple[int, int, int, int | None]]) -> None:
        self.checkpoints = checkpoints

    def __call__(self) -> None:
        now = utcnow()
        db.cursor().executemany(sql(_CHECKPOINT), [(*values, now, hold_id)
                                                   for hold_id, values in self.checkpoints.items()])

    def __repr__(self) -> str:
        return f"checkpoints of {len(self.checkpoints)} hold(s)"


def _unsettle(batch: list[Entry | Callable[[], None]]) -> None:
    # settle_many marks reservations settled as it goes; the rollback undid the writes.
    for item in batch:
        if isinstance(item, Entry) and item.reservation is not None:
            item.reservation.settled = False


def _describe(item: Entry | Callable[[], None]) -> str:
    """Everything needed to settle an entry by hand, on one line."""
    if not isinstance(item, Entry):
        return repr(item)
    reservation = item.reservation
    held = {} if reservation is None else {"held_units": reservation.units, "user_id": reservation.user_id,
                                           "token_id": reservation.token_id}
    return json.dumps({"cost_units": item.cost, **held, "row": item.row}, default=str, ensure_ascii=True)


# Every column but the id; Relay._row fills each one except the time.
_LOG_COLUMNS = tuple(f.column_name for f in RequestLog._meta.sorted_fields if f.name != "id")
_INSERT_LOG = 'INSERT INTO "request_log" ({}) VALUES ({})'.format(
    ", ".join(f'"{c}"' for c in _LOG_COLUMNS), ", ".join(["?"] * len(_LOG_COLUMNS)))
_CHANNEL_SPEND = 'UPDATE "channel" SET "used_quota" = "used_quota" + ? WHERE "id" = ?'
_TOKEN_USED = 'UPDATE "token" SET "last_used_at" = ? WHERE "id" = ?'


def without_nul(value: Any) -> Any:
    """``value`` with any NUL character replaced: PostgreSQL refuses NUL in text (an upstream's error may hold one)."""
    return value.replace("\x00", "\ufffd") if type(value) is str and "\x00" in value else value


def _insert_logs(rows: list[dict[str, Any]]) -> None:
    # Written out rather than through insert_many: building that query cost
    # more than the insert itself on the hot path.
    if not rows:
        return
    now = utcnow()
    values = [tuple(row.get("created_at") or now if c == "created_at" else without_nul(row[c]) for c in _LOG_COLUMNS)
              for row in rows]
    db.cursor().executemany(sql(_INSERT_LOG), values)


def _write(batch: list[Entry | Callable[[], None]]) -> list[tuple[Entry, int]]:
    entries = [item for item in batch if isinstance(item, Entry)]
    channel_spend: dict[int, int] = {}
    tokens_used: set[int] = set()
    with db.atomic():
        for item in batch:
            if not isinstance(item, Entry):
                item()
        for entry in entries:
            entry.row["quota"] = 0
        settled = [e for e in entries if e.reservation is not None]
        for entry, units in zip(settled, quota.settle_many([(e.reservation, e.cost) for e in settled]), strict=True):
            entry.row["quota"] = units
        for entry in entries:
            channel_id = entry.row.get("channel_id")
            if channel_id and entry.row["quota"]:
                channel_spend[channel_id] = channel_spend.get(channel_id, 0) + entry.row["quota"]
            if entry.row.get("token_id"):
                tokens_used.add(entry.row["token_id"])
        _insert_logs([entry.row for entry in entries])
        cursor = db.cursor()
        if channel_spend:
            cursor.executemany(sql(_CHANNEL_SPEND), [(units, cid) for cid, units in channel_spend.items()])
        if tokens_used:
            now = utcnow()
            cursor.executemany(sql(_TOKEN_USED), [(now, tid) for tid in sorted(tokens_used)])
    return [(entry, entry.row["quota"]) for entry in entries]
