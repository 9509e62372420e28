"""Money through the relay: reservations under concurrency, prices, the logs adding up."""

from __future__ import annotations

import concurrent.futures

import httpx
import openai
import pytest

from kernel.models import Option, RequestLog
from tests.gateway.helpers import wait_logs

MSGS = [{"role": "user", "content": "Hi"}]


def test_concurrent_requests_never_overspend_and_logs_add_up(upstream, make_account, price, channel, serve):
    channel(upstream)
    price("gpt-4o-mini", "10", "100")  # 100 USD per million output tokens
    # max_tokens=1000 reserves ~0.1 USD each: a key with 0.35 USD can hold only a few at once.
    acct = make_account("5", usd="0.35")
    upstream.state.delay = 0.02
    server = serve()
    body = {"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": 1000}

    def one(i: int) -> int:
        stream = i % 2 == 0
        with httpx.Client(timeout=20) as http:
            r = http.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {acct.key}"},
                          json=body | {"stream": stream})
            if r.status_code == 200:
                return 200
            assert r.json()["error"]["code"] == "insufficient_quota", r.text
            return r.status_code

    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        statuses = list(pool.map(one, range(24)))
    ok = statuses.count(200)
    assert 1 <= ok < 24 and set(statuses) <= {200, 429}
    rows = wait_logs(ok)
    server.stop()  # a clean shutdown writes every queued row
    acct.refresh()
    charged = sum(r.quota for r in RequestLog.select().where(RequestLog.kind == "relay"))
    assert acct.token.remain_quota >= 0 and acct.user.quota >= 0
    assert 175_000 - acct.token.remain_quota == charged
    assert 5 * 500_000 - acct.user.quota == charged
    assert len(rows) == ok and all(r.quota > 0 for r in rows)


def test_a_model_without_price_is_refused_unless_a_default_is_set(upstream, make_account, channel, serve):
    channel(upstream)
    acct = make_account()
    server = serve()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=acct.key, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert "no price" in err.value.message
    Option.write("default_price", {"input": "1", "output": "1"})
    server.stop()
    server = serve()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=acct.key, max_retries=0)
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MSGS).choices
    assert wait_logs(1)[0].quota > 0


def test_insufficient_quota_is_429_insufficient_quota(upstream, make_account, price, channel, serve):
    channel(upstream)
    price("gpt-4o-mini", "1000", "1000")
    acct = make_account(balance="0.01")
    server = serve()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=acct.key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert err.value.code == "insufficient_quota" and "max_tokens" in err.value.message
    assert not upstream.state.requests
