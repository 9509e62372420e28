"""Moving quota: reserve before spending, settle after, refund when nothing was used.

Every change is one conditional ``UPDATE`` (``... WHERE quota >= x``) whose row
count says whether it happened; that, not a read before the write, is what keeps
concurrent requests from overspending, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from kernel.db import db, sql
from kernel.models import RequestLog, Token, User, utcnow


class InsufficientQuota(Exception):
    """The account or the key cannot cover the amount; ``which`` says which."""

    def __init__(self, which: str, needed: int) -> None:
        self.which = which  # "user" | "token"
        self.needed = needed
        super().__init__(f"insufficient {which} quota for {needed} units")


@dataclass
class Reservation:
    """Units held back from a user (and a limited key) until the request settles."""

    user_id: int
    token_id: int | None  # None when the key is unlimited (only the account is charged)
    units: int
    settled: bool = False
    spender_id: int | None = None  # the key whose spend is counted, limited or not
    hold_id: str | None = None  # its row in ``hold`` (see :mod:`billing.holds`); None: kept elsewhere or free

    @property
    def spender(self) -> int | None:
        return self.spender_id if self.spender_id is not None else self.token_id


# The hot path's statements, written out once: Peewee's query builder costs more
# than SQLite itself here. Identifiers are quoted because "user" is reserved in
# PostgreSQL; ``?`` becomes the driver's placeholder (see kernel.db.sql).
_TAKE_USER = 'UPDATE "user" SET "quota" = "quota" - ? WHERE "id" = ? AND "quota" >= ?'
_TAKE_TOKEN = 'UPDATE "token" SET "remain_quota" = "remain_quota" - ? WHERE "id" = ? AND "remain_quota" >= ?'
_GIVE_USER = 'UPDATE "user" SET "quota" = "quota" + ? WHERE "id" = ?'
_GIVE_TOKEN = 'UPDATE "token" SET "remain_quota" = "remain_quota" + ? WHERE "id" = ?'
_SETTLE_USER = ('UPDATE "user" SET "quota" = "quota" + ?, "used_quota" = "used_quota" + ?, '
                '"request_count" = "request_count" + ? WHERE "id" = ?')
_SETTLE_TOKEN = ('UPDATE "token" SET "remain_quota" = "remain_quota" + ?, "used_quota" = "used_quota" + ? '
                 'WHERE "id" = ?')


_INSERT_HOLD = ('INSERT INTO "hold" ("id", "process_id", "request_id", "user_id", "token_id", "spender_id", "units", '
                '"token_name", "endpoint", "model", "client_ip", "is_stream", "started_at", "checkpoint_units", '
                '"prompt_tokens", "completion_tokens") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0)')
_CLAIM_CHUNK = 500  # ids per DELETE ... RETURNING (SQLite allows 32,766 parameters; keep statements small)


class HoldFor(NamedTuple):
    """What a hold row records about its request, so a dead process's hold can be logged and settled."""

    process_id: str
    request_id: str
    token_name: str
    endpoint: str
    model: str
    client_ip: str
    is_stream: bool


def _execute(statement: str, params: tuple) -> int:
    return db.execute_sql(sql(statement), params).rowcount


def _execute_many(statement: str, rows: list[tuple]) -> None:
    if rows:
        cursor = db.cursor()
        cursor.executemany(sql(statement), rows)


def reserve(user_id: int, token_id: int | None, units: int, *, token_unlimited: bool = False,
            hold: HoldFor | None = None) -> Reservation:
    """Hold ``units`` from the account and, unless unlimited, from the key. All or nothing.

    With ``hold``, the reservation is also written to the ``hold`` table in the
    same transaction, so it outlives this process (see :mod:`billing.holds`).
    """
    with db.atomic():
        # Raising inside atomic() rolls back the account's part too.
        return reserve_in(db.cursor(), user_id, token_id, units, token_unlimited=token_unlimited, hold=hold)


def reserve_in(cursor: Any, user_id: int, token_id: int | None, units: int, *,
               token_unlimited: bool = False, hold: HoldFor | None = None) -> Reservation:
    """:func:`reserve`'s conditional UPDATEs (and hold row) on a DB-API ``cursor``, in the caller's transaction.

    On :class:`InsufficientQuota` the caller must roll back (the account's part
    may have been taken). The event loop's inline reservation uses this on the
    bare SQLite connection: peewee's transaction objects cost more than the SQL.
    """
    if units < 0:
        raise ValueError("cannot reserve a negative amount")
    key_id = None if token_unlimited else token_id
    if units == 0:
        return Reservation(user_id, key_id, 0, spender_id=token_id)
    cursor.execute(sql(_TAKE_USER), (units, user_id, units))  # psycopg2's execute returns None
    if cursor.rowcount != 1:
        raise InsufficientQuota("user", units)
    if key_id is not None:
        cursor.execute(sql(_TAKE_TOKEN), (units, key_id, units))
        if cursor.rowcount != 1:
            raise InsufficientQuota("token", units)
    hold_id = None
    if hold is not None:
        hold_id = os.urandom(16).hex()
        cursor.execute(sql(_INSERT_HOLD), (hold_id, hold.process_id, hold.request_id, user_id, key_id, token_id, units,
                                           hold.token_name, hold.endpoint, hold.model, hold.client_ip, hold.is_stream,
                                           utcnow()))
    return Reservation(user_id, key_id, units, spender_id=token_id, hold_id=hold_id)


def claim_holds(ids: Iterable[str]) -> set[str]:
    """Delete these hold rows, in the caller's transaction; returns the ids that were still there.

    Deleting is how a settlement, a refund or a dead process's recovery claims a
    hold: whoever deletes the row moves its money, so two of them racing (a
    process wrongly thought dead, and the one recovering it) cannot both.
    """
    ids = list(ids)
    claimed: set[str] = set()
    for start in range(0, len(ids), _CLAIM_CHUNK):
        chunk = ids[start:start + _CLAIM_CHUNK]
        statement = 'DELETE FROM "hold" WHERE "id" IN ({}) RETURNING "id"'.format(", ".join("?" * len(chunk)))
        claimed.update(row[0] for row in db.execute_sql(sql(statement), chunk).fetchall())
    return claimed


def settle(reservation: Reservation, actual: int) -> int:
    """Turn a reservation into the actual charge; returns the units charged.

    ``actual`` above the reservation (an underestimated prompt) is taken only as
    far as the balance allows: a balance never goes below zero.
    """
    return settle_many([(reservation, actual)])[0]


def settle_many(items: list[tuple[Reservation, int]]) -> list[int]:
    """Settle many reservations in one transaction; returns the units charged for each.

    The common case (the charge fits the reservation) is summed per account and
    per key, so a batch of settlements costs one UPDATE per account and key.
    """
    charged: list[int] = []
    users: dict[int, list[int]] = {}  # id -> [give back, used, requests]
    tokens: dict[int, list[int]] = {}  # id -> [give back, used]
    with db.atomic():
        held = [r.hold_id for r, _ in items if r.hold_id is not None]
        claimed = claim_holds(held) if held else set()
        for reservation, actual in items:
            if reservation.settled:
                raise RuntimeError("reservation settled twice")
            reservation.settled = True
            if reservation.hold_id is not None and reservation.hold_id not in claimed:
                # Another process settled it as interrupted (it thought this one dead): its money moved there.
                charged.append(0)
                continue
            actual = max(0, actual)
            if actual > reservation.units:
                # _take_extra takes the part above the reservation itself: nothing to give back.
                actual = reservation.units + _take_extra(reservation, actual - reservation.units)
            give = max(0, reservation.units - actual)
            u = users.setdefault(reservation.user_id, [0, 0, 0])
            u[0] += give
            u[1] += actual
            u[2] += 1
            if reservation.token_id is not None:
                tokens.setdefault(reservation.token_id, [0, 0])[0] += give
            if reservation.spender is not None:
                tokens.setdefault(reservation.spender, [0, 0])[1] += actual
            charged.append(actual)
        _execute_many(_SETTLE_USER, [(g, used, n, uid) for uid, (g, used, n) in users.items()])
        _execute_many(_SETTLE_TOKEN, [(g, used, tid) for tid, (g, used) in tokens.items()])
    return charged


def _take_extra(reservation: Reservation, extra: int) -> int:
    """Take up to ``extra`` more than was reserved, never below zero; returns what was taken."""
    user = User.get_by_id(reservation.user_id)
    extra = min(extra, max(0, user.quota))
    if reservation.token_id is not None:
        token = Token.get_by_id(reservation.token_id)
        extra = min(extra, max(0, token.remain_quota))
    if extra <= 0:
        return 0
    if _execute(_TAKE_USER, (extra, reservation.user_id, extra)) != 1:
        return 0
    if reservation.token_id is not None and _execute(_TAKE_TOKEN, (extra, reservation.token_id, extra)) != 1:
        _execute(_GIVE_USER, (extra, reservation.user_id))
        return 0
    return extra


def refund(reservation: Reservation) -> None:
    """Give the whole reservation back (nothing reached the upstream)."""
    if reservation.settled:
        raise RuntimeError("reservation settled twice")
    reservation.settled = True
    if not reservation.units:
        return
    with db.atomic():
        if reservation.hold_id is not None and not claim_holds([reservation.hold_id]):
            return  # already settled as interrupted by another process
        _execute(_GIVE_USER, (reservation.units, reservation.user_id))
        if reservation.token_id is not None:
            _execute(_GIVE_TOKEN, (reservation.units, reservation.token_id))


def resolve_holds(rows: list[dict[str, Any]], why: str) -> list[int]:
    """Settle claimed hold rows of a process that stopped: bill the checkpoint, refund the rest.

    ``rows`` are the ``hold`` columns of rows the caller has just deleted (in its
    transaction). Each gets a log row whose error starts with ``interrupted``,
    whose ``quota`` is what was charged; returns the units charged for each.
    """
    users: dict[int, list[int]] = {}
    tokens: dict[int, list[int]] = {}
    channels: dict[int, int] = {}
    logs: list[dict[str, Any]] = []
    charged: list[int] = []
    now = utcnow()
    for row in rows:
        units = int(row["units"])
        charge = min(units, max(0, int(row["checkpoint_units"] or 0)))
        u = users.setdefault(row["user_id"], [0, 0, 0])
        u[0] += units - charge
        u[1] += charge
        u[2] += 1
        if row["token_id"] is not None:
            tokens.setdefault(row["token_id"], [0, 0])[0] += units - charge
        if row["spender_id"] is not None:
            tokens.setdefault(row["spender_id"], [0, 0])[1] += charge
        if row["channel_id"] and charge:
            channels[row["channel_id"]] = channels.get(row["channel_id"], 0) + charge
        started = row["started_at"]
        latency = int((now - started).total_seconds() * 1000) if hasattr(started, "year") else 0
        logs.append({"request_id": row["request_id"], "kind": "relay", "user_id": row["user_id"],
                     "token_id": row["spender_id"], "token_name": row["token_name"], "channel_id": row["channel_id"],
                     "endpoint": row["endpoint"], "model": row["model"], "prompt_tokens": row["prompt_tokens"],
                     "completion_tokens": row["completion_tokens"], "quota": charge, "latency_ms": latency,
                     "is_stream": bool(row["is_stream"]), "status_code": INTERRUPTED_STATUS,
                     "error": f"interrupted: {why}"[:2000], "client_ip": row["client_ip"], "created_at": now})
        charged.append(charge)
    _execute_many(_SETTLE_USER, [(g, used, n, uid) for uid, (g, used, n) in users.items()])
    _execute_many(_SETTLE_TOKEN, [(g, used, tid) for tid, (g, used) in tokens.items()])
    _execute_many('UPDATE "channel" SET "used_quota" = "used_quota" + ? WHERE "id" = ?',
                  [(units, cid) for cid, units in channels.items()])
    if logs:
        RequestLog.insert_many(logs).execute()
    return charged


# The log status of a request its process stopped serving (503: the service became unavailable to it).
INTERRUPTED_STATUS = 503


def credit_user(user_id: int, units: int, *, kind: str = "topup", note: str = "") -> None:
    """Add ``units`` to an account (a top-up, a redeemed code) and log it."""
    if units <= 0:
        raise ValueError("a credit must be positive")
    with db.atomic():
        if User.update(quota=User.quota + units).where(User.id == user_id).execute() != 1:
            raise LookupError(f"no user {user_id}")
        RequestLog.create(request_id=uuid.uuid4().hex, kind=kind, user_id=user_id, quota=-units,
                          error=note[:500])


def debit_user(user_id: int, units: int, *, kind: str = "adjust", note: str = "") -> None:
    """Take ``units`` from an account (an admin's correction), never below zero."""
    if units <= 0:
        raise ValueError("a debit must be positive")
    with db.atomic():
        if User.update(quota=User.quota - units).where((User.id == user_id) & (User.quota >= units)).execute() != 1:
            raise InsufficientQuota("user", units)
        RequestLog.create(request_id=uuid.uuid4().hex, kind=kind, user_id=user_id, quota=units, error=note[:500])
