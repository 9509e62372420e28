"""Streaming: usage chunks, tools, n, and a client that hangs up mid-stream (over a real socket)."""

from __future__ import annotations

import json
import time

import httpx
import openai

from tests.gateway.helpers import wait_for, wait_logs

LONG = " ".join(f"word{i}" for i in range(400))
MSGS = [{"role": "user", "content": "Tell me a long story"}]


def _setup(upstream, make_account, price, channel, serve):
    channel(upstream)
    price("gpt-4o-mini", "1", "2")
    acct = make_account()
    server = serve()
    return acct, server, openai.OpenAI(base_url=server.url + "/v1", api_key=acct.key, max_retries=0)


def test_usage_chunk_only_when_asked_and_synthesised_when_upstream_omits_it(
        upstream, make_account, price, channel, serve):
    acct, server, client = _setup(upstream, make_account, price, channel, serve)
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 7
    # The gateway always asks upstream for usage.
    assert upstream.state.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    plain = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))
    assert all(c.choices for c in plain) and all(c.usage is None for c in plain)
    assert upstream.state.requests[-1]["body"]["stream_options"] == {"include_usage": True}

    upstream.state.omit_usage = True
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    rows = wait_logs(3)
    assert rows[2].completion_tokens == chunks[-1].usage.completion_tokens and rows[2].quota > 0


def test_tool_call_deltas_and_n(upstream, make_account, price, channel, serve):
    acct, server, client = _setup(upstream, make_account, price, channel, serve)
    upstream.state.replies.append({"tool_call": {"name": "lookup", "arguments": '{"q": "permachat"}'}})
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    with client.chat.completions.stream(model="gpt-4o-mini", messages=MSGS, tools=tools) as stream:
        final = stream.get_final_completion()
    assert json.loads(final.choices[0].message.tool_calls[0].function.arguments) == {"q": "permachat"}
    assert upstream.state.requests[-1]["body"]["tools"] == tools  # passed through untouched
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True, n=2))
    assert {c.choices[0].index for c in chunks if c.choices} == {0, 1}


def test_client_disconnect_cancels_upstream_and_bills_once(upstream, make_account, price, channel, serve):
    acct, server, client = _setup(upstream, make_account, price, channel, serve)
    upstream.state.default_reply = LONG
    upstream.state.delay = 0.02
    before = acct.user.quota
    got = 0
    with httpx.Client(timeout=10) as http:
        with http.stream("POST", server.url + "/v1/chat/completions",
                         headers={"Authorization": f"Bearer {acct.key}"},
                         json={"model": "gpt-4o-mini", "messages": MSGS, "stream": True}) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: "):
                    got += 1
                if got >= 5:
                    break
    hung_up = time.monotonic()
    wait_for(lambda: upstream.state.cancelled == 1, timeout=3)
    assert time.monotonic() - hung_up < 1.0  # the upstream request was cancelled at once
    rows = wait_logs(1)
    time.sleep(0.2)
    rows = wait_logs(1)
    assert len(rows) == 1  # never billed twice
    row = rows[0]
    assert row.status_code == 499 and row.is_stream
    assert 0 < row.completion_tokens < 100 and row.prompt_tokens > 0 and row.quota > 0
    assert acct.refresh().user.quota == before - row.quota


def test_upstream_dropping_mid_stream_ends_with_an_error_and_bills_what_arrived(
        upstream, make_account, price, channel, serve):
    acct, server, client = _setup(upstream, make_account, price, channel, serve)
    upstream.state.disconnect_after = 3
    before = acct.user.quota
    with httpx.Client(timeout=10) as http:
        response = http.post(server.url + "/chat/completions", headers={"Authorization": f"Bearer {acct.key}"},
                             json={"model": "gpt-4o-mini", "messages": MSGS, "stream": True})
    events = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert json.loads(events[-1])["error"]["type"] == "upstream_error"
    assert "[DONE]" not in events
    row = wait_logs(1)[0]
    assert row.status_code == 502 and row.completion_tokens > 0 and row.error
    assert acct.refresh().user.quota == before - row.quota


def test_quiet_upstream_gets_keepalive_comments_the_sdk_ignores(upstream, make_account, price, channel, serve,
                                                                 monkeypatch):
    from gateway.http.routes import ChatEventStream

    monkeypatch.setattr(ChatEventStream, "ping_seconds", 0.05)
    acct, server, client = _setup(upstream, make_account, price, channel, serve)
    upstream.state.default_reply = "slow thinker"
    upstream.state.delay = 0.2
    with httpx.stream("POST", server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {acct.key}"},
                      json={"model": "gpt-4o-mini", "messages": MSGS, "stream": True}, timeout=10) as r:
        raw = r.read().decode()
    assert ": ping\n\n" in raw and raw.endswith("data: [DONE]\n\n")
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip() == "slow thinker"
