"""Moving quota: reserve before spending, settle after, refund when nothing was used.

Every change is one conditional ``UPDATE`` (``... WHERE quota >= x``) whose row
count says whether it happened; that, not a read before the write, is what keeps
concurrent requests from overspending, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from gateway.db import db, sql
from gateway.models import RequestLog, Token, User


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

    @property
    def spender(self) -> int | None:
        return self.spender_id if self.spender_id is not None else self.token_id


# The hot path's statements, written out once: Peewee's query builder costs more
# than SQLite itself here. Identifiers are quoted because "user" is reserved in
# PostgreSQL; ``?`` becomes the driver's placeholder (see gateway.db.sql).
_TAKE_USER = 'UPDATE "user" SET "quota" = "quota" - ? WHERE "id" = ? AND "quota" >= ?'
_TAKE_TOKEN = 'UPDATE "token" SET "remain_quota" = "remain_quota" - ? WHERE "id" = ? AND "remain_quota" >= ?'
_GIVE_USER = 'UPDATE "user" SET "quota" = "quota" + ? WHERE "id" = ?'
_GIVE_TOKEN = 'UPDATE "token" SET "remain_quota" = "remain_quota" + ? WHERE "id" = ?'
_SETTLE_USER = ('UPDATE "user" SET "quota" = "quota" + ?, "used_quota" = "used_quota" + ?, '
                '"request_count" = "request_count" + ? WHERE "id" = ?')
_SETTLE_TOKEN = ('UPDATE "token" SET "remain_quota" = "remain_quota" + ?, "used_quota" = "used_quota" + ? '
                 'WHERE "id" = ?')


def _execute(statement: str, params: tuple) -> int:
    return db.execute_sql(sql(statement), params).rowcount


def _execute_many(statement: str, rows: list[tuple]) -> None:
    if rows:
        cursor = db.cursor()
        cursor.executemany(sql(statement), rows)


def reserve(user_id: int, token_id: int | None, units: int, *, token_unlimited: bool = False) -> Reservation:
    """Hold ``units`` from the account and, unless unlimited, from the key. All or nothing."""
    with db.atomic():
        # Raising inside atomic() rolls back the account's part too.
        return reserve_in(db.cursor(), user_id, token_id, units, token_unlimited=token_unlimited)


def reserve_in(cursor: Any, user_id: int, token_id: int | None, units: int, *,
               token_unlimited: bool = False) -> Reservation:
    """:func:`reserve`'s two conditional UPDATEs on a DB-API ``cursor``, in the caller's transaction.

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
    return Reservation(user_id, key_id, units, spender_id=token_id)


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
        for reservation, actual in items:
            if reservation.settled:
                raise RuntimeError("reservation settled twice")
            reservation.settled = True
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
        _execute(_GIVE_USER, (reservation.units, reservation.user_id))
        if reservation.token_id is not None:
            _execute(_GIVE_TOKEN, (reservation.units, reservation.token_id))


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
