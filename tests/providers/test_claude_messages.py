"""``POST /v1/messages`` with the ``anthropic`` SDK, served by every provider's channel.

An ``anthropic`` channel gets the request natively (signed thinking blocks come
back intact); the others get it translated to OpenAI chat and back, streaming
included. Billing and logs are those of chat completions.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import anthropic
import httpx
import pytest

from kernel.models import RequestLog
from tests.providers import deployment
from tests.providers.test_matrix import PNG

PROVIDERS = list(deployment.CHANNELS)
TOOLED = ["anthropic", "gemini", "bedrock", "cloudflare"]
TOOL = {"name": "get_weather", "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}


@pytest.fixture(scope="module")
def site(tmp_path_factory, upstream_servers) -> Iterator[deployment.Deployment]:
    dep = deployment.start(tmp_path_factory.mktemp("messages") / "data", upstream_servers)
    yield dep
    dep.server.stop()


@pytest.fixture
def claude(site, upstreams) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=site.url, api_key=site.key, max_retries=0, timeout=20)


CONVERSATION = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                {"role": "user", "content": "again"}]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_messages_plain_system_multi_turn_and_stream(claude, provider):
    expected = "You said: again. System: Be brief. Turn 2."
    msg = claude.messages.create(model=f"{provider}-chat", max_tokens=200, system="Be brief", messages=CONVERSATION)
    assert msg.content[0].text == expected and msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == len(expected.split()) and msg.model == f"{provider}-chat"
    with claude.messages.stream(model=f"{provider}-chat", max_tokens=200, system="Be brief",
                                messages=CONVERSATION) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == expected and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(expected.split())


@pytest.mark.parametrize("provider", PROVIDERS)
def test_messages_image(claude, provider):
    msg = claude.messages.create(model=f"{provider}-chat", max_tokens=200, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": base64.b64encode(PNG).decode()}},
        {"type": "text", "text": "what is it"}]}])
    assert msg.content[0].text == f"I see a image/png image of {len(PNG)} bytes."


@pytest.mark.parametrize("provider", TOOLED)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_messages_tool_use_and_tool_result(claude, provider, stream):
    ask = [{"role": "user", "content": "Paris"}]
    if stream:
        with claude.messages.stream(model=f"{provider}-chat", max_tokens=200, tools=[TOOL], messages=ask) as s:
            first = s.get_final_message()
    else:
        first = claude.messages.create(model=f"{provider}-chat", max_tokens=200, tools=[TOOL], messages=ask)
    use = next(b for b in first.content if b.type == "tool_use")
    assert (use.name, use.input, first.stop_reason) == ("get_weather", {"location": "Paris"}, "tool_use")
    follow = claude.messages.create(model=f"{provider}-chat", max_tokens=200, tools=[TOOL], messages=ask + [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]}])
    assert follow.content[0].text == "The tool said: sunny."


def test_native_anthropic_keeps_signed_thinking(claude, upstreams):
    with claude.messages.stream(model="anthropic-chat", max_tokens=2000, messages=[{"role": "user", "content": "why"}],
                                thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "thinking" and final.content[0].signature.startswith("sig-")
    assert upstreams["anthropic"].last["body"]["thinking"] == {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize("provider", ["gemini", "bedrock"])
def test_translated_thinking_comes_back_as_thinking_blocks(claude, provider):
    msg = claude.messages.create(model=f"{provider}-chat", max_tokens=3000, messages=[{"role": "user", "content": "why"}],
                                 thinking={"type": "enabled", "budget_tokens": 1024})
    assert msg.content[0].type == "thinking" and msg.content[0].thinking == "Thinking about: why"


def test_messages_errors_are_anthropic_shaped(site, claude, upstreams):
    bad = anthropic.Anthropic(base_url=site.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="anthropic-chat", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    r = httpx.post(f"{site.url}/messages", headers={"x-api-key": site.key},
                   json={"model": "gemini-chat", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400
    assert r.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                   "message": "max_tokens: Field required (an integer)"}}
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    upstreams["gemini"].switches.fail_status = 400
    with pytest.raises(anthropic.BadRequestError, match="switched to fail with 400"):
        claude.messages.create(model="gemini-err", max_tokens=10, messages=[{"role": "user", "content": "x"}])


def test_messages_without_v1_and_with_x_api_key_are_billed_and_logged(site):
    r = httpx.post(f"{site.url}/messages", headers={"x-api-key": site.key},
                   json={"model": "bedrock-chat", "max_tokens": 50, "messages": [{"role": "user", "content": "bill"}]})
    assert r.status_code == 200 and r.json()["content"][0]["text"] == "You said: bill. Turn 1."
    request_id = r.headers["request-id"]
    deadline = time.monotonic() + 5
    while (row := RequestLog.get_or_none(RequestLog.request_id == request_id)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert row is not None, "the request is logged"
    assert row.endpoint == "/messages" and row.model == "bedrock-chat" and row.quota > 0
    assert (row.prompt_tokens, row.completion_tokens) == (r.json()["usage"]["input_tokens"], 5)


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_a_stream_cut_mid_way_ends_in_an_anthropic_error_event(claude, upstreams, provider):
    upstreams[provider].switches.break_after = 5
    with pytest.raises(anthropic.APIError, match="mid-stream"):
        with claude.messages.stream(model=f"{provider}-chat", max_tokens=200,
                                    messages=[{"role": "user", "content": "a b c d e f g h"}]) as stream:
            for _ in stream.text_stream:
                pass


CLAUDE_CODE_TURN = [
    {"role": "user", "content": [
        {"type": "document", "title": "notes", "source": {"type": "text", "media_type": "text/plain",
                                                          "data": "The meeting is on Tuesday."}},
        {"type": "search_result", "source": "https://wiki.example/a", "title": "Wiki",
         "content": [{"type": "text", "text": "Tuesday is the second day."}]},
        {"type": "text", "text": "When is it"}]},
    {"role": "system", "content": "<system-reminder>Answer shortly</system-reminder>"},
]


def test_claude_codes_mid_conversation_system_and_rich_blocks_go_to_anthropic_as_sent(claude, upstreams):
    """Claude Code's default shape: a system message after the first turn, a document, a search result."""
    httpx_body = {"model": "anthropic-chat", "max_tokens": 100, "messages": CLAUDE_CODE_TURN}
    msg = claude.messages.create(**httpx_body)
    sent = upstreams["anthropic"].last["body"]
    assert sent["messages"] == CLAUDE_CODE_TURN  # as sent: nothing translated or dropped
    assert "System: <system-reminder>Answer shortly</system-reminder>." in msg.content[0].text


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "anthropic"])
def test_the_same_turn_is_translated_for_other_channels(claude, upstreams, provider):
    msg = claude.messages.create(model=f"{provider}-chat", max_tokens=100, messages=CLAUDE_CODE_TURN)
    text = msg.content[0].text
    assert "The meeting is on Tuesday." in text and "Tuesday is the second day." in text  # both reached the model
    assert "Answer shortly" in text  # the mid-conversation system message, as a system message


def test_a_pdf_by_url_is_refused_only_when_a_channel_cannot_read_it(claude):
    block = {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
    with pytest.raises(anthropic.BadRequestError) as err:
        claude.messages.create(model="gemini-chat", max_tokens=50,
                               messages=[{"role": "user", "content": [block, {"type": "text", "text": "sum up"}]}])
    assert "Anthropic channel" in err.value.message


def test_the_clients_anthropic_version_and_betas_reach_an_anthropic_channel(site, upstreams):
    """Claude Code turns features on with anthropic-beta; the channel's own betas stay."""
    r = httpx.post(site.url + "/v1/messages", timeout=20, json={
        "model": "anthropic-chat", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-api-key": site.key, "anthropic-version": "2023-06-01",
                 "anthropic-beta": "interleaved-thinking-2025-05-14, context-management-2025-06-27"})
    assert r.status_code == 200, r.text
    sent = upstreams["anthropic"].last["headers"]
    assert sent["anthropic-version"] == "2023-06-01"
    assert sent["anthropic-beta"].split(",") == ["interleaved-thinking-2025-05-14", "context-management-2025-06-27"]
    assert sent["x-api-key"] != site.key  # the channel's key, never the client's
