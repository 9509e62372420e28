"""Picking channels: priority, weight, failover before the first byte, suspension, fatal errors."""

from __future__ import annotations

import collections

import openai
import pytest

from gateway.adaptors.openai import OpenAIAdaptor
from gateway.channels import ChannelInfo, ChannelPool, Snapshot
from kernel.models import Channel
from tests.gateway.helpers import wait_for, wait_logs

MSGS = [{"role": "user", "content": "Hi"}]


def _info(id: int, priority: int = 0, weight: int = 1) -> ChannelInfo:
    return ChannelInfo(id=id, type="openai", name=f"c{id}", base_url="http://127.0.0.1:9", keys=("k",),
                       models=frozenset({"m"}), model_mapping={}, priority=priority, weight=weight, settings={},
                       adaptor=OpenAIAdaptor)


def test_priority_first_then_weighted_random_and_never_twice():
    pool = ChannelPool()
    channels = [_info(1, priority=5, weight=1), _info(2, priority=5, weight=9), _info(3, priority=0)]
    pool.replace(Snapshot(channels=channels, by_model={"m": channels}))
    picks = collections.Counter(pool.pick("m", "chat", []).id for _ in range(3000))
    assert set(picks) == {1, 2} and 0.8 < picks[2] / 3000 < 0.97
    assert pool.pick("m", "chat", [1, 2]).id == 3
    assert pool.pick("m", "chat", [1, 2, 3]) is None
    pool.suspend(2, "m", rate_limited=True, retry_after=None)
    assert {pool.pick("m", "chat", []).id for _ in range(50)} == {1}
    assert not pool.is_suspended(2, "other-model")


def _client(server, acct):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=acct.key, max_retries=0)


@pytest.mark.parametrize("status", [500, 429])
def test_failover_before_first_byte_then_suspension(status, make_upstream, make_account, price, channel, serve):
    bad, good = make_upstream(failures=[status] * 10), make_upstream()
    first = channel(bad, priority=10, name="bad")
    channel(good, priority=0, name="good")
    price("gpt-4o-mini")
    acct = make_account()
    server = serve()
    client = _client(server, acct)
    for _ in range(2):
        assert client.chat.completions.create(model="gpt-4o-mini", messages=MSGS).choices[0].message.content
        list(client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))
    assert len(bad.state.requests) == 1  # suspended after its first failure
    assert len(good.state.requests) == 4
    wait_for(lambda: str(status) in Channel.get_by_id(first.id).last_error)
    assert Channel.get_by_id(first.id).status == "enabled"  # suspended, not disabled
    assert all(r.status_code == 200 and r.channel_id != first.id for r in wait_logs(4))


def test_revoked_key_disables_the_channel(make_upstream, make_account, price, channel, serve):
    revoked, good = make_upstream(keys={"sk-other"}), make_upstream()
    first = channel(revoked, priority=10)
    channel(good)
    price("gpt-4o-mini")
    acct = make_account()
    server = serve()
    assert _client(server, acct).chat.completions.create(model="gpt-4o-mini", messages=MSGS).choices
    wait_for(lambda: Channel.get_by_id(first.id).status == "disabled")
    assert "Incorrect API key" in Channel.get_by_id(first.id).disabled_reason


def test_request_errors_are_not_retried_nor_billed(make_upstream, make_account, price, channel, serve):
    one, two = make_upstream(failures=[400]), make_upstream()
    channel(one, priority=10)
    channel(two)
    price("gpt-4o-mini")
    acct = make_account()
    before = acct.user.quota
    server = serve()
    with pytest.raises(openai.BadRequestError) as err:
        _client(server, acct).chat.completions.create(model="gpt-4o-mini", messages=MSGS, temperature=9)
    assert err.value.body["param"] == "temperature" and "temperature" in err.value.message
    assert not two.state.requests
    one.state.failures.append(400)
    with pytest.raises(openai.BadRequestError):
        _client(server, acct).chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
    rows = wait_logs(2)
    assert [r.status_code for r in rows] == [400, 400] and [r.quota for r in rows] == [0, 0]
    assert acct.refresh().user.quota == before


def test_every_channel_failing_is_a_clean_503_and_refunded(make_upstream, make_account, price, channel, serve):
    one, two = make_upstream(failures=[503] * 5), make_upstream(failures=[429] * 5)
    channel(one)
    channel(two)
    price("gpt-4o-mini")
    acct = make_account()
    before = acct.user.quota
    server = serve()
    with pytest.raises(openai.APIStatusError) as err:
        _client(server, acct).chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
    assert err.value.status_code in (502, 503)
    assert len(one.state.requests) == 1 and len(two.state.requests) == 1
    assert wait_logs(1)[0].quota == 0
    assert acct.refresh().user.quota == before


def test_azure_deployment_urls_and_api_key_header(upstream, make_account, price, channel, serve):
    channel(upstream.server.url, type="azure", models="gpt-4o", mapping={"gpt-4o": "my-deployment"},
            settings={"api_version": "2024-06-01"})
    price("gpt-4o")
    acct = make_account()
    server = serve()
    reply = _client(server, acct).chat.completions.create(model="gpt-4o", messages=MSGS)
    assert reply.choices[0].message.content
    seen = upstream.state.requests[-1]
    assert seen["path"] == "/openai/deployments/my-deployment/chat/completions"
    assert seen["query"] == {"api-version": "2024-06-01"}
    assert seen["headers"]["api-key"] == "sk-upstream" and "authorization" not in seen["headers"]


def test_a_channel_suspended_on_one_replica_is_suspended_on_the_other(make_upstream, make_account, price,
                                                                       channel, serve, redis_url):
    bad, good = make_upstream(failures=[500] * 10), make_upstream()
    failing = channel(bad, priority=10, name="bad")
    channel(good, priority=0, name="good")
    price("gpt-4o-mini")
    acct = make_account()
    a, b = serve(redis_url=redis_url), serve(redis_url=redis_url)
    assert _client(a, acct).chat.completions.create(model="gpt-4o-mini", messages=MSGS).choices  # failed over
    assert len(bad.state.requests) == 1
    wait_for(lambda: b.gateway.pool.is_suspended(failing.id, "gpt-4o-mini"))  # it travels through Redis
    for _ in range(3):
        assert _client(b, acct).chat.completions.create(model="gpt-4o-mini", messages=MSGS).choices
    assert len(bad.state.requests) == 1, "the other replica tried the failing channel again"
    assert len(good.state.requests) == 4
