"""Durable holds: what each running process has reserved, and settling it when a process stops.

A request's reservation is a row in ``hold``, written in the same transaction
that takes the units (:func:`billing.quota.reserve_in`) and deleted in the one
that settles or refunds them (:func:`billing.quota.claim_holds`). So nothing
about money lives only in memory: a process killed mid-request (OOM,
``kill -9``, a host reboot) leaves its rows behind, and this module settles
them.

Every process registers itself in ``serving_process`` and beats a heartbeat
every few seconds. A process is dead when

- its heartbeat is older than ``PERMACHAT_PROCESS_TIMEOUT_SECONDS``, or
- it ran on this machine (same host name and PID namespace) and its PID is no
  longer running, or is this process's own PID (a restarted container): a
  restart on the same host settles its predecessor at once, without waiting.

Settling a dead process's holds (:func:`resolve_process`) bills what its last
checkpoint proved was generated (streams checkpoint every 2 s, see
:class:`billing.ledger.Ledger.checkpoint`), refunds the rest and writes a log
row with status 503 and an error starting ``interrupted``; all in one
transaction that deletes the rows first, so two processes sweeping at once, or
a process wrongly thought dead settling its own requests, cannot move the same
money twice. A clean shutdown settles the process's own leftovers the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket

from billing import quota
from billing.writes import run_write
from kernel.db import db, run_sync, sql
from kernel.models import ServingProcess, utcnow

log = logging.getLogger("permachat.gateway")

HEARTBEAT_SECONDS = 2.0
# When this interpreter started: a row with this process's PID registered before it is a previous
# incarnation's (a container restarted with the same PID), while later ones are other gateways in it (tests).
_BOOTED = utcnow()

_HOLD_COLUMNS = ("id", "process_id", "request_id", "user_id", "token_id", "spender_id", "units", "token_name",
                 "endpoint", "model", "client_ip", "is_stream", "started_at", "checkpoint_units", "prompt_tokens",
                 "completion_tokens", "channel_id")
_CLAIM_PROCESS = 'DELETE FROM "hold" WHERE "process_id" = ? RETURNING {}'.format(
    ", ".join(f'"{c}"' for c in _HOLD_COLUMNS))
_ORPHANS = ('SELECT DISTINCT "process_id" FROM "hold" '
            'WHERE "process_id" NOT IN (SELECT "id" FROM "serving_process")')


def this_host() -> str:
    """The host name and PID namespace: two processes sharing both can judge each other's PIDs."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{namespace}"[:255]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: running
    return True


def resolve_process(process_id: str, why: str) -> list[int]:
    """Settle every hold of ``process_id`` as interrupted and forget the process; returns the charges."""
    with db.atomic():
        cursor = db.execute_sql(sql(_CLAIM_PROCESS), (process_id,))
        rows = [dict(zip(_HOLD_COLUMNS, values, strict=True)) for values in cursor.fetchall()]
        for row in rows:
            if isinstance(row["started_at"], str):  # SQLite hands back text
                row["started_at"] = dt.datetime.fromisoformat(row["started_at"])
        charged = quota.resolve_holds(rows, why) if rows else []
        ServingProcess.delete().where(ServingProcess.id == process_id).execute()
    if rows:
        log.warning("settled %d reservation(s) of process %s as interrupted (%s): %d units billed, %d refunded",
                    len(rows), process_id, why, sum(charged), sum(int(r["units"]) for r in rows) - sum(charged))
    return charged


class Registry:
    """This process's row in ``serving_process``: its heartbeat, and the sweep for dead processes."""

    def __init__(self, *, timeout: float) -> None:
        self.id = os.urandom(16).hex()
        self.host = this_host()
        self.pid = os.getpid()
        self.timeout = timeout
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Register, settle what dead processes left, then keep the heartbeat going."""
        await run_write(self._register)
        await self.sweep()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="permachat-heartbeat")

    async def stop(self) -> None:
        """Stop beating and settle this process's own holds still open (call after the ledger is written)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await run_write(lambda: resolve_process(self.id, f"process {self.pid} shut down before it settled"))
        except Exception:  # the database is gone: the rows stay, and the next process to start settles them
            log.exception("could not settle this process's open reservations at shutdown")

    def _register(self) -> None:
        now = utcnow()
        ServingProcess.insert(id=self.id, host=self.host, pid=self.pid, started_at=now, heartbeat_at=now).execute()

    def _beat(self) -> None:
        if ServingProcess.update(heartbeat_at=utcnow()).where(ServingProcess.id == self.id).execute() == 0:
            # Someone thought this process dead (a long stall) and settled what it held then.
            log.error("this process's heartbeat had lapsed and its reservations were settled by another process; "
                      "registering again")
            self._register()

    async def _run(self) -> None:
        interval = min(HEARTBEAT_SECONDS, self.timeout / 4)
        while True:
            await asyncio.sleep(interval)
            try:
                await run_write(self._beat)
                await self.sweep()
            except Exception:  # the database is briefly away: beat again next time
                log.exception("heartbeat or reservation sweep failed; retrying")

    async def sweep(self) -> int:
        """Settle the holds of every dead process, and of holds whose process is unknown; returns how many processes."""
        dead = await run_sync(self._find_dead)
        for process_id, why in dead:
            await run_write(lambda process_id=process_id, why=why: resolve_process(process_id, why))
        return len(dead)

    def _find_dead(self) -> list[tuple[str, str]]:
        cutoff = utcnow() - dt.timedelta(seconds=self.timeout)
        dead: list[tuple[str, str]] = []
        for row in ServingProcess.select().where(ServingProcess.id != self.id):
            if row.heartbeat_at < cutoff:
                dead.append((row.id, f"process {row.pid} on {row.host.split('/')[0]} stopped answering"))
            elif row.host == self.host and (row.started_at < _BOOTED if row.pid == self.pid else not _pid_alive(row.pid)):
                dead.append((row.id, f"process {row.pid} on this host exited before it settled"))
        dead += [(process_id, "the process that held it is gone")
                 for (process_id,) in db.execute_sql(_ORPHANS).fetchall() if process_id != self.id]
        return dead

