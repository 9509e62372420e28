"""Every request holds its worst case before it reaches an upstream, and pays nothing when nothing was sent."""

from __future__ import annotations

import concurrent.futures

import httpx

from kernel.models import RequestLog
from tests.gateway.helpers import wait_logs

MSGS = [{"role": "user", "content": "Hi"}]


def post(server, key: str, path: str, **kwargs) -> httpx.Response:
    return httpx.post(server.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=20, **kwargs)


def test_the_larger_of_two_output_limits_is_reserved(upstream, make_account, price, channel, serve):
    channel(upstream)
    price("gpt-4o-mini", "1", "100")  # 100 USD per million output tokens: 100,000 of them cost 10 USD
    acct = make_account("1")
    server = serve()
    body = {"model": "gpt-4o-mini", "messages": MSGS, "max_completion_tokens": 1, "max_tokens": 100_000}
    for stream in (False, True):
        r = post(server, acct.key, "/v1/chat/completions", json=body | {"stream": stream})
        assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota", r.text
        assert "may cost up to $10.00" in r.json()["error"]["message"]
    assert not upstream.state.requests
    assert acct.refresh().user.quota == 500_000


def test_a_request_without_a_limit_is_sent_the_limit_it_reserved(upstream, make_account, price, channel, serve):
    channel(upstream)
    price("gpt-4o-mini", "1", "100")
    acct = make_account("1")
    server = serve(default_max_tokens=300)
    for stream in (False, True):
        r = post(server, acct.key, "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MSGS,
                                                                  "stream": stream})
        assert r.status_code == 200, r.text
        sent = upstream.state.requests[-1]["body"]
        # OpenAI's reasoning models refuse max_tokens: the limit goes as max_completion_tokens.
        assert sent["max_completion_tokens"] == 300 and "max_tokens" not in sent
    # 300 output tokens at 100 USD a million is 0.03 USD: an account with 0.02 cannot start one.
    poor = make_account("0.02")
    r = post(server, poor.key, "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MSGS})
    assert r.status_code == 429, r.text


def audio(size: int) -> dict:
    return {"files": {"file": ("a.mp3", b"\xff\xfb" + b"a" * (size - 2), "audio/mpeg")}}


def test_a_token_priced_transcription_holds_its_worst_case_on_the_key(upstream, make_account, price, channel,
                                                                       serve):
    channel(upstream, models="gpt-4o-transcribe")
    price("gpt-4o-transcribe", "6", "10")
    capped = make_account("10", usd="0.01")
    server = serve()
    # 200 KB may hold 25,600 audio tokens: 0.15 USD, more than the key's 0.01.
    r = post(server, capped.key, "/v1/audio/transcriptions", data={"model": "gpt-4o-transcribe"},
             **audio(200_000))
    assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota", r.text
    assert not upstream.state.requests
    # A small file fits: the key's counters move by what it cost.
    r = post(server, capped.key, "/v1/audio/transcriptions", data={"model": "gpt-4o-transcribe"}, **audio(2_000))
    assert r.status_code == 200, r.text
    row = wait_logs(1)[-1]
    assert row.quota > 0
    capped.refresh()
    assert capped.token.used_quota == row.quota and capped.token.remain_quota == 5_000 - row.quota


def test_an_account_with_almost_nothing_cannot_run_parallel_transcriptions(upstream, make_account, price,
                                                                            channel, serve):
    channel(upstream, models="gpt-4o-transcribe")
    price("gpt-4o-transcribe", "6", "10")
    acct = make_account("0.000002")  # one unit
    server = serve()

    def one(_: int) -> int:
        return post(server, acct.key, "/v1/audio/transcriptions", data={"model": "gpt-4o-transcribe"},
                    **audio(50_000)).status_code

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(one, range(10)))
    assert statuses == [429] * 10
    assert not upstream.state.requests
    assert acct.refresh().user.quota == 1


def test_a_channel_that_cannot_be_reached_bills_nothing(make_account, price, channel, serve):
    channel("http://127.0.0.1:99999/v1")  # not a port: nothing can leave this process
    price("gpt-4o-mini", "1", "2")
    acct = make_account("1")
    server = serve()
    for stream in (True, False):
        r = post(server, acct.key, "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MSGS,
                                                                  "stream": stream})
        assert r.status_code == 502 and "cannot reach the upstream" in r.json()["error"]["message"], r.text
    rows = wait_logs(2)
    assert [(row.quota, row.prompt_tokens) for row in rows] == [(0, 0), (0, 0)]
    server.stop()
    assert acct.refresh().user.quota == 500_000


def test_a_body_that_cannot_be_sent_bills_nothing(upstream, make_account, price, channel, serve):
    channel(upstream)
    price("gpt-4o-mini", "1", "2")
    acct = make_account("1")
    server = serve()
    raw = b'{"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "a \\ud800 b"}]}'
    r = httpx.post(server.url + "/v1/chat/completions", content=raw, timeout=20,
                   headers={"Authorization": f"Bearer {acct.key}", "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert not upstream.state.requests
    server.stop()
    assert acct.refresh().user.quota == 500_000
    assert sum(row.quota for row in RequestLog.select().where(RequestLog.kind == "relay")) == 0


def test_a_channel_whose_request_cannot_be_built_bills_nothing(upstream, make_account, price, serve):
    import accounts

    # A key pasted with a typographic quote cannot go in an HTTP header: the request fails
    # here, after the reservation and before anything reaches the upstream.
    accounts.add_channel(type="openai", name="smart quote", base_url=upstream.base_url, keys=["sk-upstream\u2019"],
                         models="gpt-4o-mini")
    price("gpt-4o-mini", "1", "2")
    acct = make_account("1")
    server = serve()
    for stream in (True, False):
        r = post(server, acct.key, "/v1/chat/completions", json={"model": "gpt-4o-mini", "stream": stream,
                                                                  "messages": [{"role": "user", "content": "hi " * 500}]})
        assert r.status_code != 200, r.text
    assert not upstream.state.requests
    server.stop()
    assert acct.refresh().user.quota == 500_000
    assert sum(row.quota for row in RequestLog.select().where(RequestLog.kind == "relay")) == 0


def test_a_transcription_goes_to_the_model_its_channel_maps_it_to(upstream, make_account, price, channel, serve):
    channel(upstream, models="speech", mapping={"speech": "gpt-4o-transcribe"})
    price("speech", "6", "10")
    acct = make_account("1")
    server = serve()
    r = post(server, acct.key, "/v1/audio/transcriptions", data={"model": "speech", "language": "en"},
             **audio(3_000))
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "transcribed 3000 bytes with gpt-4o-transcribe"
    row = wait_logs(1)[-1]
    assert (row.model, row.upstream_model) == ("speech", "gpt-4o-transcribe") and row.quota > 0
