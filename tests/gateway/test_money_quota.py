"""Quota is integer units; reservations never let concurrency overspend."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from accounts import create_token, create_user, topup
from billing import quota
from kernel.db import db
from kernel.models import RequestLog, Token, User
from kernel.money import MoneyError, cost_of_tokens, format_usd, parse_usd, usd_to_units


def test_units_and_usd():
    assert usd_to_units("1") == 500_000 and usd_to_units(Decimal("0.000002")) == 1
    assert format_usd(625_000) == "$1.25" and format_usd(2) == "$0.000004" and format_usd(0) == "$0.00"
    assert cost_of_tokens(1, 1_250_000) == 2  # 1.25 units rounds up, never down to free
    assert cost_of_tokens(1_000_000, 1_250_000) == 1_250_000
    for bad in ("abc", "-1", "NaN", "1e20"):
        with pytest.raises(MoneyError):
            parse_usd(bad)


def test_reserve_settle_refund(database):
    user = create_user("q@example.com", "password123")
    topup(user, "1")
    token = create_token(user, usd="0.5").token
    r = quota.reserve(user.id, token.id, 100_000)
    assert User.get_by_id(user.id).quota == 400_000 and Token.get_by_id(token.id).remain_quota == 150_000
    assert quota.settle(r, 30_000) == 30_000
    assert User.get_by_id(user.id).quota == 470_000 and Token.get_by_id(token.id).remain_quota == 220_000
    with pytest.raises(RuntimeError):
        quota.settle(r, 1)
    r = quota.reserve(user.id, token.id, 200_000)
    quota.refund(r)
    assert Token.get_by_id(token.id).remain_quota == 220_000
    with pytest.raises(quota.InsufficientQuota) as info:
        quota.reserve(user.id, token.id, 220_001)
    assert info.value.which == "token"
    assert User.get_by_id(user.id).quota == 470_000, "a refused key reservation leaves the account untouched"
    assert RequestLog.select().where(RequestLog.kind == "topup").count() == 1


def test_a_charge_above_the_reservation_is_taken_once_and_never_below_zero(database):
    user = create_user("extra@example.com", "password123")
    topup(user, "1")  # 500,000 units
    token = create_token(user, usd="0.5").token  # 250,000 units
    r = quota.reserve(user.id, token.id, 1_000)
    # The upstream reported more than was reserved (an underestimated prompt).
    assert quota.settle(r, 4_000) == 4_000
    assert User.get_by_id(user.id).quota == 496_000
    assert Token.get_by_id(token.id).remain_quota == 246_000
    assert User.get_by_id(user.id).used_quota == 4_000 and Token.get_by_id(token.id).used_quota == 4_000
    nothing_reserved = quota.reserve(user.id, token.id, 0)
    assert quota.settle(nothing_reserved, 700) == 700
    assert User.get_by_id(user.id).quota == 495_300 and Token.get_by_id(token.id).remain_quota == 245_300
    r = quota.reserve(user.id, token.id, 1_000)
    assert quota.settle(r, 10**9) == 245_300, "capped at what the key had left"
    assert Token.get_by_id(token.id).remain_quota == 0 and User.get_by_id(user.id).quota == 250_000


def test_concurrent_reservations_never_overspend(database):
    user = create_user("c@example.com", "password123")
    topup(user, "1")  # 500,000 units: room for exactly 5 reservations of 100,000
    wins, losses = [], []

    def worker():
        with db.connection_context():
            try:
                wins.append(quota.reserve(user.id, None, 100_000, token_unlimited=True))
            except quota.InsufficientQuota:
                losses.append(1)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 5 and len(losses) == 15
    assert User.get_by_id(user.id).quota == 0
