"""Hostile JSON on every route: a 400 in OpenAI's error shape that says what is wrong, and no money moved."""

from __future__ import annotations

import json

import httpx
import pytest

MSGS = [{"role": "user", "content": "Hi"}]
CHAT = {"model": "gpt-4o-mini", "messages": MSGS}
COMPLETION = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"}
MESSAGES = {"model": "gpt-4o-mini", "max_tokens": 10, "messages": MSGS}
EMBEDDING = {"model": "text-embedding-3-small", "input": "hello"}
IMAGE = {"model": "dall-e-3", "prompt": "a cat"}
SPEECH = {"model": "tts-1", "voice": "alloy", "input": "Hello"}
MODERATION = {"input": "fine"}

ROUTES = {"/v1/chat/completions": CHAT, "/v1/completions": COMPLETION, "/v1/messages": MESSAGES,
          "/v1/embeddings": EMBEDDING, "/v1/images/generations": IMAGE, "/v1/audio/speech": SPEECH,
          "/v1/moderations": MODERATION}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# (path, raw body, what the error message says)
CASES = [
    # /v1/messages: wrong types where the translation reads them
    ("/v1/messages", {**MESSAGES, "messages": "hi"}, "'messages' must be a non-empty array."),
    ("/v1/messages", {**MESSAGES, "max_tokens": "10"}, "'max_tokens' must be an integer between 1 and"),
    ("/v1/messages", {**MESSAGES, "max_tokens": 10**30}, "'max_tokens' must be an integer between 1 and"),
    ("/v1/messages", {**MESSAGES, "system": 5}, "'system' must be a string or an array of text blocks."),
    ("/v1/messages", {**MESSAGES, "system": [{"type": "text", "text": 5}]}, "'system.0.text' must be a string"),
    ("/v1/messages", {**MESSAGES, "stream": "yes"}, "'stream' must be a boolean"),
    ("/v1/messages", {**MESSAGES, "messages": [{"role": "user", "content": [5]}]},
     "'messages.0.content.0' must be a content block"),
    ("/v1/messages", {**MESSAGES, "messages": [{"role": "user", "content": [{"type": "tool_result",
                                                                             "content": 7}]}]},
     "'messages.0.content.0.content' must be a string or an array of blocks"),
    ("/v1/messages", {**MESSAGES, "thinking": {"type": "enabled", "budget_tokens": "lots"}},
     "'thinking.budget_tokens' must be an integer"),
    ("/v1/messages", {**MESSAGES, "tools": [{"name": "x"}, 3]}, "'tools' must be an array of objects."),
    ("/v1/messages", {**MESSAGES, "tool_choice": "any"}, "'tool_choice' must be an object"),
    ("/v1/messages", {**MESSAGES, "metadata": {"user_id": 5}}, "'metadata.user_id' must be a string"),
    # non-stream /v1/completions had no checks at all
    ("/v1/completions", {**COMPLETION, "max_tokens": -5}, "'max_tokens' must be an integer between 1 and"),
    ("/v1/completions", {**COMPLETION, "max_tokens": "lots"}, "'max_tokens' must be an integer between 1 and"),
    ("/v1/completions", {**COMPLETION, "n": 0}, "'n' must be an integer between 1 and 128"),
    ("/v1/completions", {**COMPLETION, "prompt": {"a": 1}}, "'prompt' must be a string, an array of strings"),
    ("/v1/completions", {**COMPLETION, "stream": "yes"}, "'stream' must be a boolean"),
    # huge numbers
    ("/v1/chat/completions", {**CHAT, "max_tokens": 10**30}, "'max_tokens' must be an integer between 1 and"),
    ("/v1/chat/completions", {**CHAT, "max_completion_tokens": 2**63}, "'max_completion_tokens' must be an"),
    ("/v1/chat/completions", {**CHAT, "n": 10**20}, "'n' must be an integer between 1 and 128"),
    ("/v1/chat/completions", '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "temperature": 1e999}', "out of range"),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "tool_calls": 5}]},
     "'messages[0].tool_calls' must be an array of objects."),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": [5]}]},
     "'messages[0].content[0]' must be an object with a string 'type'."),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": [{"type": "text", "text": None}]}]},
     "Missing required parameter: 'messages[0].content[0].text'."),
    ("/v1/messages", {**MESSAGES, "messages": [{"role": "user", "content": [{"type": "image", "text": None}]}]},
     "'messages.0.content.0.text' must be a string"),
    ("/v1/chat/completions", {**CHAT, "model": "m" * 1000}, "'model' is longer than 128 characters."),
    ("/v1/embeddings", {**EMBEDDING, "input": [[1, 2], "x", None]}, "'input' must be a string, an array"),
    ("/v1/embeddings", {**EMBEDDING, "dimensions": -1}, "'dimensions' must be an integer"),
    ("/v1/images/generations", {**IMAGE, "prompt": ["a", "cat"]}, "'prompt' must be a string"),
    ("/v1/images/generations", {**IMAGE, "n": 10**30}, "'n' must be an integer between 1 and 10"),
    ("/v1/audio/speech", {**SPEECH, "input": 5}, "'input' must be a string"),
    ("/v1/moderations", {"input": 5}, "'input' must be a string, an array"),
    ("/v1/moderations", {"input": "x", "model": ["a"]}, "'model' must be a string."),
    # invalid Unicode, in every route
    *[(path, json.dumps({**body, "user": "\ud800"}), "lone UTF-16 surrogate") for path, body in ROUTES.items()],
    *[(path, json.dumps(body).encode()[:-1] + b', "user": "\xed\xa0\x80"}', "not valid UTF-8")
      for path, body in ROUTES.items()],
    # nesting that would exhaust the stack, in every route
    *[(path, json.dumps(body)[:-1] + f', "user": {nested(100_000)}}}', "nests deeper than 100 levels")
      for path, body in ROUTES.items()],
    *[(path, json.dumps(body)[:-1] + f', "user": {nested(500)}}}', "nests deeper than 100 levels")
      for path, body in ROUTES.items()],
    ("/v1/embeddings", json.dumps({**EMBEDDING, "input": json.loads(nested(800))}), "nests deeper than 100"),
]


@pytest.fixture
def world(upstream, make_account, price, channel, serve):
    channel(upstream, models="gpt-4o-mini,text-embedding-3-small,dall-e-3,tts-1,omni-moderation-latest,"
                             "gpt-3.5-turbo-instruct")
    for model in ("gpt-4o-mini", "text-embedding-3-small", "gpt-3.5-turbo-instruct", "omni-moderation-latest"):
        price(model)
    price("dall-e-3", "0", "0", per_call="0.04")
    price("tts-1", "15", "0")
    acct = make_account()
    server = serve()
    return server, acct, upstream


def test_hostile_bodies_are_400s_that_say_why(world):
    # One server for every case (a server per case would take half a minute); every miss is listed.
    server, acct, upstream = world
    before = acct.refresh().user.quota, acct.token.remain_quota, acct.token.used_quota
    misses = []
    for path, body, message in CASES:
        raw = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
        r = httpx.post(server.url + path, content=raw, headers={"Authorization": f"Bearer {acct.key}",
                                                              "Content-Type": "application/json"})
        error = r.json().get("error") if r.headers.get("content-type") == "application/json" else None
        if r.status_code != 400 or not isinstance(error, dict) or error.get("type") != "invalid_request_error" \
                or message not in error.get("message", ""):
            misses.append((path, raw[:80], r.status_code, r.text[:200]))
    assert not misses, "\n".join(map(str, misses))
    assert not upstream.state.requests, "nothing reached the upstream"
    assert (acct.refresh().user.quota, acct.token.remain_quota, acct.token.used_quota) == before


def test_the_valid_bodies_the_cases_start_from_are_served(world):
    server, acct, upstream = world
    for path, body in ROUTES.items():
        r = httpx.post(server.url + path, json=body, headers={"Authorization": f"Bearer {acct.key}"})
        assert r.status_code == 200, (path, r.text)
    # Deep but sane nesting (a tool's JSON schema) and surrogate pairs (an emoji, escaped) are fine.
    schema: dict = {"type": "object"}
    for _ in range(30):
        schema = {"type": "object", "properties": {"x": schema}}
    body = {**CHAT, "user": "\U0001f600", "tools": [{"type": "function", "function": {"name": "f",
                                                                                      "parameters": schema}}]}
    r = httpx.post(server.url + "/v1/chat/completions", content=json.dumps(body).encode(),
                   headers={"Authorization": f"Bearer {acct.key}", "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert upstream.state.requests[-1]["body"]["user"] == "\U0001f600"
