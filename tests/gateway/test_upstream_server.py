"""The test upstream is faithful to OpenAI's wire format: the official SDK reads it directly."""

from __future__ import annotations

import json

import httpx
import openai
import pytest


def test_the_sdk_reads_json_stream_tools_and_errors(upstream):
    client = openai.OpenAI(base_url=upstream.base_url, api_key="sk-any", max_retries=0)
    msgs = [{"role": "user", "content": "Hi there"}]
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=msgs, n=2)
    assert [c.message.content for c in reply.choices] == ["Hello! This is the test upstream speaking."] * 2
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens

    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 7
    assert all(c.usage is None for c in chunks[:-1])

    upstream.state.replies.append({"tool_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}})
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    with client.chat.completions.stream(model="gpt-4o-mini", messages=msgs, tools=tools) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert final.choices[0].finish_reason == "tool_calls"

    upstream.state.failures.append(429)
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    assert err.value.response.headers["retry-after"] == "1"
    emb = client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
    assert len(emb.data) == 2 and emb.usage.prompt_tokens == 3


def test_sse_framing_is_byte_exact(upstream):
    with httpx.stream("POST", upstream.base_url + "/chat/completions",
                      json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}) as r:
        raw = r.read()
    assert raw.startswith(b'data: {"id":"chatcmpl-') and raw.endswith(b"\n\ndata: [DONE]\n\n")
    assert b"\r" not in raw
