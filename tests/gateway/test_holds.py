"""Durable holds in-process, against a real database: what mutation testing showed no test looked at.

The crash tests (test_crash_safety.py) prove the whole story through real
processes; these pin each money move of the hold's life in this process, where
a broken line is seen at once.
"""

from __future__ import annotations

import pytest

import accounts
from billing import quota
from billing.holds import resolve_process
from kernel.models import Channel, Hold, RequestLog, ServingProcess, Token, User, utcnow

PROCESS = "p" * 32


def hold_for(request_id: str, *, stream: bool = True) -> quota.HoldFor:
    return quota.HoldFor(PROCESS, request_id, "key name", "/v1/chat/completions", "gpt-4o-mini", "10.0.0.1", stream)


@pytest.fixture
def money(database):
    user = accounts.create_user("holds@example.com", "password123")
    accounts.topup(user, "1")  # 500,000 units
    token = accounts.create_token(user, usd="0.5").token  # 250,000 units
    ServingProcess.insert(id=PROCESS, host="elsewhere/1", pid=1, started_at=utcnow(), heartbeat_at=utcnow()).execute()
    return user, token


def balances(user, token) -> tuple[int, int]:
    return User.get_by_id(user.id).quota, Token.get_by_id(token.id).remain_quota


def test_a_reservation_is_a_hold_row_until_it_is_settled_or_refunded(money):
    user, token = money
    held = quota.reserve(user.id, token.id, 10_000, hold=hold_for("r1"))
    row = Hold.get_by_id(held.hold_id)
    assert (row.units, row.user_id, row.token_id, row.spender_id, row.request_id) == (10_000, user.id, token.id,
                                                                                        token.id, "r1")
    assert balances(user, token) == (490_000, 240_000)
    quota.refund(held)
    assert not Hold.select().exists() and balances(user, token) == (500_000, 250_000)
    with pytest.raises(RuntimeError, match="settled twice"):
        quota.refund(held)
    settled = quota.reserve(user.id, token.id, 10_000, hold=hold_for("r2"))
    assert quota.settle(settled, 4_000) == 4_000
    assert not Hold.select().exists() and balances(user, token) == (496_000, 246_000)


def test_a_dead_process_s_holds_bill_their_checkpoint_and_refund_the_rest(money):
    user, token = money
    channel = accounts.add_channel(type="openai", name="c", base_url="http://127.0.0.1:9/v1", keys=["k"],
                                   models="gpt-4o-mini")
    streamed = quota.reserve(user.id, token.id, 10_000, hold=hold_for("streamed"))
    waiting = quota.reserve(user.id, token.id, 20_000, hold=hold_for("waiting", stream=False))
    beyond = quota.reserve(user.id, token.id, 1_000, hold=hold_for("beyond"))
    Hold.update(checkpoint_units=3_000, prompt_tokens=40, completion_tokens=25, channel_id=channel.id).where(
        Hold.id == streamed.hold_id).execute()
    Hold.update(checkpoint_units=5_000, channel_id=channel.id).where(Hold.id == beyond.hold_id).execute()  # > held
    before_requests = User.get_by_id(user.id).request_count

    charged = resolve_process(PROCESS, "process 1 on elsewhere stopped answering")

    assert sorted(charged) == [0, 1_000, 3_000]
    assert not Hold.select().exists() and not ServingProcess.select().where(ServingProcess.id == PROCESS).exists()
    assert balances(user, token) == (500_000 - 4_000, 250_000 - 4_000)
    u, t = User.get_by_id(user.id), Token.get_by_id(token.id)
    assert u.used_quota == 4_000 and t.used_quota == 4_000 and u.request_count == before_requests + 3
    assert Channel.get_by_id(channel.id).used_quota == 4_000
    rows = {r.request_id: r for r in RequestLog.select().where(RequestLog.kind == "relay")}
    assert {k: r.quota for k, r in rows.items()} == {"streamed": 3_000, "waiting": 0, "beyond": 1_000}
    row = rows["streamed"]
    assert row.status_code == quota.INTERRUPTED_STATUS == 503
    assert row.error == "interrupted: process 1 on elsewhere stopped answering"
    assert (row.prompt_tokens, row.completion_tokens, row.is_stream, row.channel_id) == (40, 25, True, channel.id)
    assert (row.token_id, row.token_name, row.endpoint, row.model, row.client_ip) == (
        token.id, "key name", "/v1/chat/completions", "gpt-4o-mini", "10.0.0.1")
    assert not rows["waiting"].is_stream

    # The process was only stalled: its own settlement and refund now move nothing.
    assert quota.settle(streamed, 9_000) == 0
    quota.refund(waiting)
    assert balances(user, token) == (496_000, 246_000)
    assert quota.settle_many([(beyond, 500)]) == [0]


def test_an_unlimited_key_s_hold_counts_its_spend_on_the_key(database):
    user = accounts.create_user("unlimited-hold@example.com", "password123")
    accounts.topup(user, "1")
    token = accounts.create_token(user, unlimited=True).token
    ServingProcess.insert(id=PROCESS, host="elsewhere/1", pid=1, started_at=utcnow(), heartbeat_at=utcnow()).execute()
    held = quota.reserve(user.id, token.id, 10_000, token_unlimited=True, hold=hold_for("u"))
    assert Hold.get_by_id(held.hold_id).token_id is None  # nothing was taken from a key limit
    Hold.update(checkpoint_units=2_000).where(Hold.id == held.hold_id).execute()
    assert resolve_process(PROCESS, "gone") == [2_000]
    assert Token.get_by_id(token.id).used_quota == 2_000 and Token.get_by_id(token.id).remain_quota == 0
    assert User.get_by_id(user.id).quota == 498_000


def test_a_settlement_above_the_hold_never_charges_what_was_not_taken(database):
    user = accounts.create_user("empty@example.com", "password123")
    accounts.topup(user, "0.002")  # 1,000 units
    token = accounts.create_token(user).token
    held = quota.reserve(user.id, token.id, 1_000, token_unlimited=True)
    assert User.get_by_id(user.id).quota == 0
    assert quota.settle(held, 5_000) == 1_000, "nothing was left to take beyond the reservation"
    assert User.get_by_id(user.id).quota == 0 and User.get_by_id(user.id).used_quota == 1_000


def test_many_holds_settle_in_one_batch(money):
    user, token = money
    held = [quota.reserve(user.id, token.id, 10, hold=hold_for(f"r{i}")) for i in range(1_001)]  # over 2 chunks
    assert quota.settle_many([(r, 4) for r in held]) == [4] * 1_001
    assert not Hold.select().exists()
    assert balances(user, token) == (500_000 - 4_004, 250_000 - 4_004)
