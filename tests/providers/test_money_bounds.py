"""What a request is billed on every provider: cut streams, thinking budgets, cache writes, refused links.

Each test drives the real deployment over HTTP and reads the money from the
database: the log row's tokens and quota, and the account's balance.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

import accounts
from billing import tokens
from kernel.models import Channel, RequestLog, User
from tests.providers import deployment

PROVIDERS = list(deployment.CHANNELS)
LONG = " ".join(f"w{i}" for i in range(300))  # the scripted models echo it back: 300 streamed pieces
READ_BEFORE_LEAVING = 60  # text deltas the client reads before it hangs up


@pytest.fixture(scope="module")
def site(tmp_path_factory, upstream_servers) -> Iterator[deployment.Deployment]:
    dep = deployment.start(tmp_path_factory.mktemp("bounds") / "data", upstream_servers)
    yield dep
    dep.server.stop()


def log_row(request_id: str, timeout: float = 10.0) -> RequestLog:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = RequestLog.get_or_none(RequestLog.request_id == request_id)
        if row is not None:
            return row
        time.sleep(0.05)
    raise AssertionError(f"no log row for request {request_id}")


def leave_messages_stream(site: deployment.Deployment, model: str) -> tuple[str, str]:
    """Stream ``/v1/messages`` and hang up after some text; the request id and the text received."""
    body = {"model": model, "max_tokens": 2000, "stream": True, "messages": [{"role": "user", "content": LONG}]}
    text: list[str] = []
    with httpx.Client(timeout=20) as http, http.stream(
            "POST", site.url + "/v1/messages", json=body, headers={"x-api-key": site.key}) as response:
        assert response.status_code == 200, response.read()
        request_id = response.headers["request-id"]
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            data = json.loads(line[6:])
            assert data["type"] != "message_delta", "the stream ended before the client left"
            if data["type"] == "content_block_delta" and data["delta"].get("type") == "text_delta":
                text.append(data["delta"]["text"])
                if len(text) >= READ_BEFORE_LEAVING:
                    break
    return request_id, "".join(text)


def leave_chat_stream(site: deployment.Deployment, model: str) -> tuple[str, str]:
    """The same over ``/v1/chat/completions``."""
    body = {"model": model, "max_tokens": 2000, "stream": True, "messages": [{"role": "user", "content": LONG}]}
    text: list[str] = []
    with httpx.Client(timeout=20) as http, http.stream(
            "POST", site.url + "/v1/chat/completions", json=body,
            headers={"Authorization": f"Bearer {site.key}"}) as response:
        assert response.status_code == 200, response.read()
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[6:]).get("choices") or ():
                assert not choice.get("finish_reason"), "the stream ended before the client left"
                if (choice.get("delta") or {}).get("content"):
                    text.append(choice["delta"]["content"])
            if len(text) >= READ_BEFORE_LEAVING:
                break
    return request_id, "".join(text)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("inbound", ["messages", "chat"])
def test_a_stream_the_client_leaves_is_billed_for_the_text_it_received(site, upstreams, provider, inbound):
    upstreams[provider].switches.chunk_delay = 0.02  # slow enough that the client leaves mid-answer
    leave = leave_messages_stream if inbound == "messages" else leave_chat_stream
    request_id, received = leave(site, f"{provider}-chat")
    row = log_row(request_id)
    seen = tokens.count(received)
    assert seen >= READ_BEFORE_LEAVING // 2
    # Anthropic's message_start says output_tokens: 1; the bill is what was generated.
    assert row.completion_tokens >= seen, (row.completion_tokens, seen)
    assert row.status_code == 499 and row.prompt_tokens > 0
    # 1 USD per million prompt tokens, 2 per million output: 0.5 and 1 unit a token.
    assert row.quota >= row.prompt_tokens // 2 + row.completion_tokens - 1


def fund(balance_usd: str) -> tuple[str, int]:
    """A fresh account holding ``balance_usd``, and its key."""
    user = accounts.create_user(f"bounds{time.monotonic_ns()}@example.com", "password123")
    accounts.topup(user, balance_usd)
    return accounts.create_token(user, name="bounds").key, user.id


@pytest.mark.parametrize("provider", ["anthropic", "bedrock"])
def test_a_thinking_budget_raising_max_tokens_is_reserved(site, upstreams, provider):
    # The adaptor sends max_tokens = 16,384 + 1,024 for "high" effort: at 2 USD per million
    # output tokens that is 0.035 USD, which 0.01 USD cannot cover, whatever the client's max_tokens says.
    key, user_id = fund("0.01")
    body = {"model": f"{provider}-chat", "max_tokens": 1, "reasoning_effort": "high",
            "messages": [{"role": "user", "content": "think"}]}
    sent_before = len(upstreams[provider].switches.requests)
    r = httpx.post(site.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"},
                   timeout=20)
    assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota", r.text
    assert len(upstreams[provider].switches.requests) == sent_before
    assert User.get_by_id(user_id).quota == 5_000
    # With enough money it goes, and what reached the upstream is what was reserved for.
    key, user_id = fund("1")
    r = httpx.post(site.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"},
                   timeout=20)
    assert r.status_code == 200, r.text
    sent = upstreams[provider].last["body"]
    limit = sent["max_tokens"] if provider == "anthropic" else sent["inferenceConfig"]["maxTokens"]
    assert limit == 16_384 + 1_024


def test_messages_with_a_thinking_budget_on_a_bedrock_channel_reserves_the_raised_limit(site, upstreams):
    key, _ = fund("0.01")
    body = {"model": "bedrock-chat", "max_tokens": 1, "thinking": {"type": "enabled", "budget_tokens": 16_000},
            "messages": [{"role": "user", "content": "think"}]}
    r = httpx.post(site.url + "/v1/messages", json=body, headers={"x-api-key": key}, timeout=20)
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error", r.text
    assert "may cost up to" in r.json()["error"]["message"]


@pytest.mark.parametrize("provider", ["gemini", "bedrock", "cloudflare", "replicate"])
def test_a_request_without_a_limit_is_sent_with_the_limit_it_reserved(site, upstreams, provider):
    r = httpx.post(site.url + "/v1/chat/completions", timeout=20, headers={"Authorization": f"Bearer {site.key}"},
                   json={"model": f"{provider}-chat", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    sent = upstreams[provider].last["body"]
    limit = {"gemini": lambda b: b["generationConfig"]["maxOutputTokens"],
             "bedrock": lambda b: b["inferenceConfig"]["maxTokens"],
             "cloudflare": lambda b: b["max_tokens"],
             "replicate": lambda b: b["input"]["max_tokens"]}[provider](sent)
    assert limit == tokens.DEFAULT_MAX_OUTPUT


def test_anthropic_cache_writes_are_billed_above_the_input_rate(site, upstreams):
    big = "cached context " * 400
    body = {"model": "anthropic-chat", "max_tokens": 50, "messages": [{"role": "user", "content": [
        {"type": "text", "text": big, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "and a question"}]}]}
    r = httpx.post(site.url + "/v1/messages", json=body, headers={"x-api-key": site.key}, timeout=20)
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    written = usage["cache_creation_input_tokens"]
    assert written == 800 and usage["input_tokens"] > 0
    row = log_row(r.headers["request-id"])
    plain = usage["input_tokens"]
    # 1 USD per million input tokens is 0.5 units a token; a 5-minute cache write costs 1.25 times that.
    expected = (plain * 500_000 + written * 625_000 + usage["output_tokens"] * 1_000_000) // 1_000_000
    assert abs(row.quota - expected) <= 2, (row.quota, expected)
    assert row.quota > (plain + written) // 2 + usage["output_tokens"]


def test_a_gemini_403_for_the_clients_file_link_leaves_the_channel_enabled(site, upstreams):
    link = "https://generativelanguage.googleapis.com/v1beta/files/someone-elses-file"
    body = {"model": "gemini-chat", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": link}}]}]}
    r = httpx.post(site.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {site.key}"},
                   timeout=20)
    assert r.status_code == 403 and "permission to access the File" in r.json()["error"]["message"], r.text
    assert Channel.get(Channel.name == "gemini-chat").status == "enabled"
    # The channel still answers everyone else.
    r = httpx.post(site.url + "/v1/chat/completions", timeout=20, headers={"Authorization": f"Bearer {site.key}"},
                   json={"model": "gemini-chat", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("provider", ["anthropic", "bedrock", "gemini"])
@pytest.mark.parametrize("stream", [True, False])
def test_a_request_that_fails_here_before_reaching_the_upstream_bills_nothing(site, upstreams, provider, stream):
    # A malformed tool call that the adaptor cannot translate: it fails before sending anything.
    key, user_id = fund("1")
    body = {"model": f"{provider}-chat", "stream": stream, "messages": [
        {"role": "user", "content": "hi " * 200}, {"role": "assistant", "content": "x", "tool_calls": [5]},
        {"role": "user", "content": "again"}]}
    r = httpx.post(site.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"},
                   timeout=20)
    assert r.status_code == 400 and "tool_calls" in r.json()["error"]["message"], r.text
    assert not upstreams[provider].switches.requests
    deadline = time.monotonic() + 5
    while RequestLog.get_or_none(RequestLog.user_id == user_id, RequestLog.kind == "relay") is None \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert User.get_by_id(user_id).quota == 500_000
    assert all(row.quota == 0 for row in RequestLog.select().where(RequestLog.user_id == user_id,
                                                                    RequestLog.kind == "relay"))


def test_cache_writes_and_reads_are_billed_at_the_prices_the_admin_set(site, upstreams):
    """With cache prices of its own (permachat price set --cache-write ...), a cache write costs that, not 1.25x."""
    from gateway import invalidation

    gateway = site.server.server.config.app.state.gateway
    accounts.set_price("anthropic-chat", input_usd="1", output_usd="2", cache_write_usd="4", cache_write_1h_usd="8",
                       cached_usd="0.1")
    invalidation.announce()  # as the CLI and the admin pages do
    try:
        deadline = time.monotonic() + 10  # the CLI announced it: every process reloads its prices within a second
        while gateway.pool.price("anthropic-chat").cache_write_1h_per_million != 4_000_000:
            assert time.monotonic() < deadline, "the running gateway never saw the new price"
            time.sleep(0.05)
        big = "cached context " * 400
        body = {"model": "anthropic-chat", "max_tokens": 50, "messages": [{"role": "user", "content": [
            {"type": "text", "text": big, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "text", "text": "and a question"}]}]}
        r = httpx.post(site.url + "/v1/messages", json=body, headers={"x-api-key": site.key}, timeout=20)
        assert r.status_code == 200, r.text
        usage = r.json()["usage"]
        written = usage["cache_creation_input_tokens"]
        assert written == 800
        row = log_row(r.headers["request-id"])
        # Per token: input 0.5 units, output 1, a one-hour cache write 8 USD/M = 4 units.
        expected = (usage["input_tokens"] * 500_000 + written * 4_000_000 + usage["output_tokens"] * 1_000_000) \
            // 1_000_000
        assert abs(row.quota - expected) <= 2, (row.quota, expected)
    finally:
        accounts.set_price("anthropic-chat", input_usd="1", output_usd="2")
        invalidation.announce()
        deadline = time.monotonic() + 10
        while gateway.pool.price("anthropic-chat").cache_write_per_million is not None and time.monotonic() < deadline:
            time.sleep(0.05)
