"""The conversation scenarios through a real permachat server, with the ``openai`` SDK, for every provider.

The stand-ins answer as a function of what reached them (see
:mod:`tests.providers.script`), so each assertion shows a translation surviving
both ways: the system prompt, every turn, an image, a tool call and its result,
streamed and not, and each provider's errors as the gateway's.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from kernel.models import Channel
from tests.providers import deployment
from tests.providers.conftest import Upstream

PROVIDERS = list(deployment.CHANNELS)
TOOLED = ["anthropic", "gemini", "bedrock", "cloudflare"]  # Replicate has no function calling
THINKING = ["anthropic", "gemini", "bedrock"]
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
IMAGE = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}


@pytest.fixture(scope="module")
def site(tmp_path_factory, upstream_servers) -> Iterator[deployment.Deployment]:
    dep = deployment.start(tmp_path_factory.mktemp("matrix") / "data", upstream_servers)
    yield dep
    dep.server.stop()


@pytest.fixture
def client(site, upstreams) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{site.url}/v1", api_key=site.key, max_retries=0, timeout=20)


def collect(stream) -> dict:
    """Content, reasoning, tool calls (merged by index), finish reason and usage of a chunk stream."""
    out = {"content": "", "reasoning": "", "calls": {}, "finish": None, "usage": None}
    for chunk in stream:
        if chunk.usage:
            out["usage"] = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            out["content"] += delta.content or ""
            out["reasoning"] += (delta.model_extra or {}).get("reasoning_content") or ""
            for call in delta.tool_calls or []:
                slot = out["calls"].setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                if call.function:
                    slot["name"] += call.function.name or ""
                    slot["arguments"] += call.function.arguments or ""
            out["finish"] = choice.finish_reason or out["finish"]
    return out


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_plain_multi_turn_and_system_prompt(client, upstreams, provider, stream):
    messages = [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "yo"}, {"role": "user", "content": "again"}]
    expected = "You said: again. System: Be brief. Turn 2."
    if not stream:
        r = client.chat.completions.create(model=f"{provider}-chat", messages=messages)
        assert r.choices[0].message.content == expected
        assert r.choices[0].finish_reason == "stop"
        assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens == len(expected.split())
    else:
        got = collect(client.chat.completions.create(model=f"{provider}-chat", messages=messages, stream=True,
                                                     stream_options={"include_usage": True}))
        assert got["content"] == expected and got["finish"] == "stop"
        assert got["usage"].completion_tokens == len(expected.split())


@pytest.mark.parametrize("provider", PROVIDERS)
def test_image_as_data_url(client, provider):
    r = client.chat.completions.create(model=f"{provider}-chat", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": IMAGE}}]}])
    assert r.choices[0].message.content == f"I see a image/png image of {len(PNG)} bytes."


@pytest.mark.parametrize(("provider", "seen"), [("anthropic", "a url image of 0 bytes"),
                                              ("gemini", "a image/png image of 0 bytes"),
                                              ("replicate", "a url image of 0 bytes")])
def test_image_as_a_link(client, provider, seen):
    r = client.chat.completions.create(model=f"{provider}-chat", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}]}])
    assert r.choices[0].message.content == f"I see {seen}."


def test_bedrock_refuses_image_links_clearly(client):
    with pytest.raises(openai.BadRequestError, match="data URLs"):
        client.chat.completions.create(model="bedrock-chat", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}]}])


def test_replicate_polls_a_prediction_that_is_not_done_in_time(client, upstreams):
    upstreams["replicate"].switches.defer = True
    r = client.chat.completions.create(model="replicate-chat", messages=[{"role": "user", "content": "slow"}])
    assert r.choices[0].message.content == "You said: slow. Turn 1."


@pytest.mark.parametrize("provider", TOOLED)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_tool_call_then_tool_result(client, provider, stream):
    ask = [{"role": "user", "content": "Paris"}]
    if stream:
        got = collect(client.chat.completions.create(model=f"{provider}-chat", messages=ask, tools=[WEATHER],
                                                     stream=True))
        assert list(got["calls"]) == [0], "the first tool call has index 0"
        call = got["calls"][0]
        call_id, name, arguments, finish = call["id"], call["name"], call["arguments"], got["finish"]
    else:
        r = client.chat.completions.create(model=f"{provider}-chat", messages=ask, tools=[WEATHER])
        tc = r.choices[0].message.tool_calls[0]
        call_id, name, arguments, finish = tc.id, tc.function.name, tc.function.arguments, r.choices[0].finish_reason
    assert (name, json.loads(arguments), finish) == ("get_weather", {"location": "Paris"}, "tool_calls")
    assert call_id
    follow = ask + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "sunny"}]
    r = client.chat.completions.create(model=f"{provider}-chat", messages=follow, tools=[WEATHER])
    assert r.choices[0].message.content == "The tool said: sunny."


def test_replicate_refuses_tools_clearly(client):
    with pytest.raises(openai.BadRequestError, match="do not support tools"):
        client.chat.completions.create(model="replicate-chat", messages=[{"role": "user", "content": "x"}],
                                       tools=[WEATHER])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_max_tokens_stop_and_safety_finish_reasons(client, provider):
    r = client.chat.completions.create(model=f"{provider}-chat", max_tokens=2,
                                       messages=[{"role": "user", "content": "one two three"}])
    assert (r.choices[0].message.content, r.choices[0].finish_reason) == ("You said:", "length")
    r = client.chat.completions.create(model=f"{provider}-chat", stop=["Turn"],
                                       messages=[{"role": "user", "content": "halt"}])
    assert r.choices[0].message.content.strip() == "You said: halt."
    for stream in (False, True):
        kwargs = {"model": f"{provider}-chat", "messages": [{"role": "user", "content": "trigger:safety"}]}
        if stream:
            assert collect(client.chat.completions.create(stream=True, **kwargs))["finish"] == "content_filter"
        else:
            assert client.chat.completions.create(**kwargs).choices[0].finish_reason == "content_filter"


@pytest.mark.parametrize("provider", THINKING)
def test_extended_thinking_becomes_reasoning_content(client, provider):
    kwargs = {"model": f"{provider}-chat", "reasoning_effort": "low", "messages": [{"role": "user", "content": "why"}]}
    r = client.chat.completions.create(**kwargs)
    assert r.choices[0].message.model_extra["reasoning_content"] == "Thinking about: why"
    assert r.choices[0].message.content == "You said: why. Turn 1."
    got = collect(client.chat.completions.create(stream=True, **kwargs))
    assert got["reasoning"] == "Thinking about: why" and got["content"] == "You said: why. Turn 1."


@pytest.mark.parametrize("provider", PROVIDERS)
def test_upstream_errors_become_the_gateways(client, site, upstreams, provider):
    up: Upstream = upstreams[provider]
    up.switches.fail_status = 400
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=f"{provider}-err", messages=[{"role": "user", "content": "x"}])
    assert "switched to fail with 400" in info.value.message
    up.switches.fail_status, up.switches.retry_after = 429, 1
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=f"{provider}-err", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code in (429, 502, 503)
    up.switches.reset()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=f"{provider}-dead", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code in (502, 503)
    deadline = time.monotonic() + 5  # the gateway records the disabling off the request path
    while Channel.get(Channel.name == f"{provider}-dead").status == "enabled" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Channel.get(Channel.name == f"{provider}-dead").status != "enabled", "a revoked key disables its channel"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_stream_cut_mid_way_ends_in_an_error_after_the_words_that_arrived(client, upstreams, provider):
    upstreams[provider].switches.break_after = 4
    stream = client.chat.completions.create(model=f"{provider}-chat", stream=True,
                                            messages=[{"role": "user", "content": "a b c d e f g h"}])
    seen = ""
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for chunk in stream:
            seen += "".join(c.delta.content or "" for c in chunk.choices)
    assert "You said: a b c d e f g h." not in seen


def test_cloudflare_native_endpoint(client, upstreams):
    r = client.chat.completions.create(model="cloudflare-native", messages=[
        {"role": "system", "content": "Be brief"}, {"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "You said: hi. System: Be brief. Turn 1."
    assert "/ai/run/@cf/meta/llama-3.1-8b-instruct" in upstreams["cloudflare"].last["path"]
    got = collect(client.chat.completions.create(model="cloudflare-native", stream=True, tools=[WEATHER],
                                                 messages=[{"role": "user", "content": "Paris"}]))
    assert got["calls"][0]["name"] == "get_weather" and got["finish"] == "tool_calls"


@pytest.mark.parametrize("provider", ["gemini", "cloudflare"])
def test_embeddings(client, provider):
    r = client.embeddings.create(model=f"{provider}-embed", input=["one two", "three"])
    assert len(r.data) == 2 and r.data[0].embedding[1] == 2.0
    assert r.usage.prompt_tokens > 0


def test_what_reaches_each_upstream(client, upstreams):
    """Spot checks of the wire: auth headers, versions, SigV4, paths and defaults each provider needs."""
    messages = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(model="anthropic-chat", messages=messages)
    sent = upstreams["anthropic"].last
    assert sent["headers"]["anthropic-version"] == "2023-06-01" and sent["body"]["max_tokens"] == 4096
    client.chat.completions.create(model="gemini-chat", messages=messages)
    assert upstreams["gemini"].last["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    client.chat.completions.create(model="bedrock-chat", messages=messages)
    sent = upstreams["bedrock"].last
    assert sent["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDPERMACHATTEST/")
    assert "/us-east-1/bedrock/aws4_request" in sent["headers"]["authorization"]
    assert sent["headers"]["x-amz-security-token"] == "bedrock-session-token"
    client.chat.completions.create(model="replicate-chat", messages=messages)
    assert upstreams["replicate"].last["path"] == "/v1/models/meta/meta-llama-3-8b-instruct/predictions"
    assert upstreams["replicate"].last["headers"]["prefer"] == "wait"


@pytest.mark.parametrize("provider", ["gemini", "cloudflare"])
def test_embeddings_come_as_base64_when_asked(client, provider):
    """The Node SDK asks for base64 by default: floats instead would be decoded into wrong vectors."""
    import base64
    import struct

    floats = client.embeddings.create(model=f"{provider}-embed", input=["one two", "three"], encoding_format="float")
    packed = client.embeddings.create(model=f"{provider}-embed", input=["one two", "three"],
                                      encoding_format="base64")
    for as_float, as_b64 in zip(floats.data, packed.data, strict=True):
        assert isinstance(as_b64.embedding, str)  # the SDK leaves it to the caller when asked explicitly
        raw = base64.b64decode(as_b64.embedding)
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(as_float.embedding, rel=1e-6)


def test_structured_output_is_enforced_on_claude_through_a_forced_tool(client, upstreams):
    import json

    schema = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": True}}
    messages = [{"role": "user", "content": "Paris"}]
    r = client.chat.completions.create(model="anthropic-chat", messages=messages, response_format=fmt)
    sent = upstreams["anthropic"].last["body"]
    assert sent["tools"][0]["input_schema"] == schema
    assert sent["tool_choice"] == {"type": "tool", "name": sent["tools"][0]["name"]}
    choice = r.choices[0]
    assert choice.finish_reason == "stop" and not choice.message.tool_calls
    assert json.loads(choice.message.content) == {"location": "Paris"}
    got = collect(client.chat.completions.create(model="anthropic-chat", messages=messages, response_format=fmt,
                                                 stream=True))
    assert json.loads(got["content"]) == {"location": "Paris"} and not got["calls"] and got["finish"] == "stop"
