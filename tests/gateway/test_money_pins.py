"""Money paths that nothing noticed when they broke (an audit's surviving mutants), each pinned.

Most go through a real server with the ``openai`` SDK; the two races that only
a second process could produce are made with the database itself (a trigger
that changes a row between the read and the write, exactly as that process
would).
"""

from __future__ import annotations

import sqlite3
import threading
import time

import httpx
import openai

from accounts import create_token, create_user, topup
from billing import quota
from kernel.db import db
from kernel.models import Channel, Hold, RequestLog, Token, User
from tests.gateway.helpers import wait_for, wait_logs

MSGS = [{"role": "user", "content": "Hi"}]


def _client(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=30)


def _settled() -> None:
    wait_for(lambda: not Hold.select().exists(), timeout=10)


def test_the_account_gets_its_units_back_when_the_key_refuses_the_extra_part(database):
    """The key's remaining quota shrinks between reading it and taking the extra (another request on it)."""
    user = create_user("giveback@example.com", "password123")
    topup(user, "1")  # 500,000 units
    token = create_token(user, usd="0.1").token  # 50,000 units
    r = quota.reserve(user.id, token.id, 1_000)
    # As if a concurrent request on the same key took all it had left, just before this settlement's take.
    db.execute_sql('CREATE TRIGGER drain_key BEFORE UPDATE OF "quota" ON "user" '
                   f'BEGIN UPDATE "token" SET "remain_quota" = 0 WHERE "id" = {int(token.id)}; END')
    try:
        charged = quota.settle(r, 5_000)
    finally:
        db.execute_sql("DROP TRIGGER drain_key")
    assert charged == 1_000, "only the reservation could be charged"
    assert User.get_by_id(user.id).quota == 499_000, "the account's part of the refused extra was given back"
    assert User.get_by_id(user.id).used_quota == 1_000 and Token.get_by_id(token.id).used_quota == 1_000


def test_an_unlimited_key_counts_its_spend_and_its_requests(upstream, make_account, price, channel, serve):
    chan = channel(upstream)
    price("gpt-4o-mini")
    acct = make_account("1", unlimited=True)
    server = serve()
    client = _client(server, acct.key)
    for stream in (False, True, False):
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=stream)
        if stream:
            list(answer)
    rows = wait_logs(3)
    _settled()
    spent = sum(r.quota for r in rows)
    acct.refresh()
    assert spent > 0
    assert acct.token.used_quota == spent, "an unlimited key's spend is counted"
    assert acct.token.remain_quota == 0 and acct.token.unlimited  # and nothing taken from a limit
    assert acct.user.used_quota == spent and acct.user.quota == 500_000 - spent
    assert acct.user.request_count == 3
    assert Channel.get_by_id(chan.id).used_quota == spent, "the channel's spend is every unit billed on it"
    assert acct.token.last_used_at is not None, "the key's last use is recorded with its settlement"


def test_a_limited_key_counts_requests_and_channel_spend_per_channel(make_upstream, make_account, price, channel,
                                                                     serve):
    first, second = make_upstream(), make_upstream()
    one = channel(first, priority=10, name="one")
    two = channel(second, priority=0, name="two")
    price("gpt-4o-mini")
    acct = make_account("1", usd="0.5")
    server = serve()
    client = _client(server, acct.key)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    Channel.update(status="disabled").where(Channel.id == one.id).execute()
    server.gateway.pool.drop(one.id)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    rows = wait_logs(3)
    _settled()
    by_channel = {cid: sum(r.quota for r in rows if r.channel_id == cid) for cid in (one.id, two.id)}
    assert all(by_channel.values())
    assert Channel.get_by_id(one.id).used_quota == by_channel[one.id]
    assert Channel.get_by_id(two.id).used_quota == by_channel[two.id]
    acct.refresh()
    assert acct.user.request_count == 3 and acct.token.used_quota == sum(by_channel.values())
    assert acct.token.remain_quota == 250_000 - sum(by_channel.values())


def test_a_capped_settlement_logs_exactly_what_was_charged(upstream, make_account, price, channel, serve):
    """The upstream reports more than was held and the key cannot pay it all: log and balances agree to the unit."""
    channel(upstream)
    # 100 USD per million output tokens: the held 1 output token is 50 units, the 60-word reply ~3,000.
    price("gpt-4o-mini", input_usd="1", output_usd="100")
    acct = make_account("1", usd="0.002")  # the key has 1,000 units
    server = serve()
    reply = " ".join(f"w{i}" for i in range(60))
    answer = httpx.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {acct.key}"},
                        json={"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": 1,
                              "x_upstream": {"reply": reply}}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] == 60  # more than the 1 token held
    row = wait_logs(1)[0]
    _settled()
    acct.refresh()
    assert acct.token.remain_quota == 0, "the key paid all it had"
    assert row.quota == 1_000 == acct.token.used_quota == acct.user.used_quota
    assert acct.user.quota == 500_000 - 1_000


def test_a_reservation_abandoned_while_queued_is_given_back(upstream, make_account, price, channel, serve, settings):
    """The client leaves while its reservation waits for a locked database: once written, it is refunded."""
    channel(upstream)
    price("gpt-4o-mini")
    acct = make_account("1")
    server = serve()
    _client(server, acct.key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)  # warm the key cache
    rows = wait_logs(1)
    _settled()
    spent_before = sum(r.quota for r in rows)
    other = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), isolation_level=None,
                            check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # the reservation cannot be written while this holds the lock
    try:
        try:
            httpx.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {acct.key}"},
                       json={"model": "gpt-4o-mini", "messages": MSGS, "stream": True}, timeout=0.5)
        except httpx.ReadTimeout:
            pass  # the client gave up while its reservation was queued
        time.sleep(0.3)
    finally:
        other.execute("COMMIT")
        other.close()
    rows = wait_logs(2)
    _settled()
    gone = rows[-1]
    assert gone.status_code == 499 and gone.quota == 0 and "went away" in gone.error
    acct.refresh()
    assert acct.user.quota == 500_000 - spent_before, "the abandoned reservation was given back"
    assert len(upstream.state.requests) == 1, "nothing was sent for the abandoned request"


def test_a_settlement_batch_that_fails_is_written_once_entry_by_entry(upstream, make_account, price, channel,
                                                                      serve):
    """One refused entry makes its whole batch fail: every other entry is then written once, not twice."""
    channel(upstream)
    price("gpt-4o-mini")
    acct = make_account("1")
    server = serve()
    ledger = server.gateway.ledger
    calls = []

    def refused_once_in_a_batch() -> None:
        calls.append(1)
        raise ValueError("refused")

    results: list[int] = []

    def burst() -> None:
        client = _client(server, acct.key)
        results.append(len(client.chat.completions.create(model="gpt-4o-mini", messages=MSGS).choices))

    ledger.later(refused_once_in_a_batch)
    threads = [threading.Thread(target=burst) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = wait_logs(6)
    _settled()
    time.sleep(0.3)  # a second write of any entry would come now
    rows = list(RequestLog.select().where(RequestLog.kind == "relay"))
    assert len(rows) == 6 and len({r.request_id for r in rows}) == 6, "an entry was written twice"
    acct.refresh()
    spent = sum(r.quota for r in rows)
    assert acct.user.quota == 500_000 - spent and acct.user.used_quota == spent and acct.user.request_count == 6
    # Tried alone (maybe a passing failure: queued again), in a batch, then on its own, and set aside once.
    assert len(calls) >= 2 and len(ledger.refused) == 1
