"""Moving quota: reserve before spending, settle after, refund when nothing was used.

Every change is one conditional ``UPDATE`` (``... WHERE quota >= x``) whose row
count says whether it happened; that, not a read before the write, is what keeps
concurrent requests from overspending, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from peewee import Case

from gateway.db import db
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


def reserve(user_id: int, token_id: int | None, units: int, *, token_unlimited: bool = False) -> Reservation:
    """Hold ``units`` from the account and, unless unlimited, from the key. All or nothing."""
    if units < 0:
        raise ValueError("cannot reserve a negative amount")
    key_id = None if token_unlimited else token_id
    if units == 0:
        return Reservation(user_id, key_id, 0)
    with db.atomic():
        taken = (User.update(quota=User.quota - units)
                 .where((User.id == user_id) & (User.quota >= units)).execute())
        if taken != 1:
            raise InsufficientQuota("user", units)
        if key_id is not None:
            taken = (Token.update(remain_quota=Token.remain_quota - units)
                     .where((Token.id == key_id) & (Token.remain_quota >= units)).execute())
            if taken != 1:
                # Raising inside atomic() rolls back the account's part too.
                raise InsufficientQuota("token", units)
    return Reservation(user_id, key_id, units)


def settle(reservation: Reservation, actual: int) -> int:
    """Turn a reservation into the actual charge; returns the units charged.

    ``actual`` above the reservation (an underestimated prompt) is taken only as
    far as the balance allows: a balance never goes below zero.
    """
    if reservation.settled:
        raise RuntimeError("reservation settled twice")
    reservation.settled = True
    actual = max(0, actual)
    delta = reservation.units - actual  # > 0: give back; < 0: take more
    charged = actual
    with db.atomic():
        if delta > 0:
            User.update(quota=User.quota + delta).where(User.id == reservation.user_id).execute()
            if reservation.token_id is not None:
                Token.update(remain_quota=Token.remain_quota + delta).where(Token.id == reservation.token_id).execute()
        elif delta < 0:
            extra = -delta
            user = User.get_by_id(reservation.user_id)
            extra = min(extra, max(0, user.quota))
            if reservation.token_id is not None:
                token = Token.get_by_id(reservation.token_id)
                extra = min(extra, max(0, token.remain_quota))
                Token.update(remain_quota=Case(None, [(Token.remain_quota >= extra, Token.remain_quota - extra)], 0)
                             ).where(Token.id == reservation.token_id).execute()
            User.update(quota=Case(None, [(User.quota >= extra, User.quota - extra)], 0)
                        ).where(User.id == reservation.user_id).execute()
            charged = reservation.units + extra
        User.update(used_quota=User.used_quota + charged, request_count=User.request_count + 1
                    ).where(User.id == reservation.user_id).execute()
        Token.update(used_quota=Token.used_quota + charged).where(
            Token.id == (reservation.token_id or -1)).execute()
    return charged


def refund(reservation: Reservation) -> None:
    """Give the whole reservation back (nothing reached the upstream)."""
    if reservation.settled:
        raise RuntimeError("reservation settled twice")
    reservation.settled = True
    if not reservation.units:
        return
    with db.atomic():
        User.update(quota=User.quota + reservation.units).where(User.id == reservation.user_id).execute()
        if reservation.token_id is not None:
            Token.update(remain_quota=Token.remain_quota + reservation.units).where(
                Token.id == reservation.token_id).execute()


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
