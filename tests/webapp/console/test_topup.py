"""``/topup``: redeeming codes once and only once, clear messages, rate limit, admin text."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from accounts import RedeemError, create_codes, create_user, redeem_code, set_topup_info
from kernel.models import RedemptionCode, RequestLog, User
from tests.conftest import migrate_database
from tests.webapp.console.conftest import text_of


def test_redeem_credits_the_balance_and_logs_it(alice, user):
    [code] = create_codes("5", name="b1")
    r = alice.post("/topup", data={"code": "  " + code.upper() + " "})
    assert r.status_code == 200
    assert "$5.00 added to your balance" in text_of(r.data)
    assert User.get_by_id(user.id).quota == 2_500_000
    row = RedemptionCode.get(RedemptionCode.name == "b1")
    assert (row.status, row.redeemed_by_id) == ("redeemed", user.id)
    assert RequestLog.get(RequestLog.user_id == user.id).kind == "topup"
    assert alice.get("/topup.json").get_json()["balance_usd"] == "$5.00"


def test_used_expired_disabled_and_unknown_codes_get_clear_messages(alice, user):
    used, expired, disabled = create_codes("1", count=3)
    redeem_code(user.id, used)
    RedemptionCode.update(expires_at=dt.datetime(2000, 1, 1)).where(
        RedemptionCode.code_prefix == expired[:8]).execute()
    RedemptionCode.update(status="disabled").where(RedemptionCode.code_prefix == disabled[:8]).execute()
    for code, status, message in [(used, 409, "already been redeemed"), (expired, 409, "has expired"),
                                  (disabled, 409, "has been disabled"), ("f" * 32, 400, "does not exist")]:
        r = alice.post("/topup", data={"code": code})
        assert r.status_code == status and message in text_of(r.data), code
    assert User.get_by_id(user.id).quota == 500_000


def test_failed_redemptions_are_rate_limited(alice, user):
    [good] = create_codes("1")
    for _ in range(5):
        alice.post("/topup", data={"code": "0" * 32})
    r = alice.post("/topup", data={"code": good})
    assert r.status_code == 429 and "Too many failed attempts" in text_of(r.data)
    assert User.get_by_id(user.id).quota == 0


def race_for_one_code(database, accounts: list[User]) -> list[object]:
    """Every account redeems the same code at the same moment, each on its own connection."""
    [code] = create_codes("3")
    barrier = threading.Barrier(len(accounts))
    results: list[object] = []

    def attempt(user_id: int) -> None:
        database.connect(reuse_if_open=True)
        barrier.wait()
        try:
            results.append(redeem_code(user_id, code))
        except RedeemError as exc:
            results.append(exc.reason)
        finally:
            database.close()

    threads = [threading.Thread(target=attempt, args=(u.id,)) for u in accounts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_one_code_redeemed_by_many_threads_credits_once(database, user):
    others = [create_user(f"u{i}@example.com", "password123") for i in range(7)]
    results = race_for_one_code(database, [user, *others])
    assert sorted(map(str, results)) == ["1500000"] + ["redeemed"] * 7
    assert sum(u.quota for u in User.select()) == 1_500_000
    assert RequestLog.select().where(RequestLog.kind == "topup").count() == 1


@pytest.mark.postgres
def test_one_code_redeemed_concurrently_on_postgresql_credits_once(postgres_url):
    database = migrate_database(postgres_url)
    accounts = [create_user(f"pg{i}@example.com", "password123") for i in range(16)]
    results = race_for_one_code(database, accounts)
    assert sorted(map(str, results)) == ["1500000"] + ["redeemed"] * 15
    assert sum(u.quota for u in User.select()) == 1_500_000
    assert RequestLog.select().where(RequestLog.kind == "topup").count() == 1


def test_topup_page_shows_the_admins_text_and_rate(alice):
    assert "1 USD = 8 CNY" in text_of(alice.get("/topup").data)
    set_topup_info(text="Pay by bank transfer to ACME.\nThen mail us.", cny_per_usd="7.2")
    page = text_of(alice.get("/topup").data)
    assert "Pay by bank transfer to ACME." in page and "1 USD = 7.2 CNY" in page
