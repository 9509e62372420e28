"""Property-based fuzzing of every gateway route, through a real server and a stand-in upstream.

Hypothesis throws arbitrary JSON, mutations of valid requests (a field of the
wrong type, huge numbers, odd Unicode, deep nesting) and broken multipart forms
at the routes. Whatever comes in: never a 5xx; every 4xx is an error object
with a message and a type; and once the request is over no money is held or
lost, and a refused request spent nothing. Derandomized with no example
database, so every run tries the same inputs and CI never flakes.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.models import Token, User

MSGS = [{"role": "user", "content": "Hi"}]
VALID: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": 20},
    "/v1/completions": {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "max_tokens": 20},
    "/v1/messages": {"model": "gpt-4o-mini", "max_tokens": 20, "messages": MSGS},
    "/v1/embeddings": {"model": "text-embedding-3-small", "input": ["hello", "world"]},
    "/v1/images/generations": {"model": "dall-e-3", "prompt": "a cat", "n": 1},
    "/v1/audio/speech": {"model": "tts-1", "voice": "alloy", "input": "Hello"},
    "/v1/moderations": {"input": "fine"},
}
# Fields worth mutating beyond the valid body's own: the ones some route reads.
FIELDS = ["model", "messages", "prompt", "input", "max_tokens", "max_completion_tokens", "n", "stream",
          "stream_options", "system", "tools", "tool_choice", "functions", "stop", "stop_sequences", "temperature",
          "top_p", "thinking", "metadata", "voice", "size", "dimensions", "best_of", "user", "response_format"]
MODELS = ["gpt-4o-mini", "gpt-3.5-turbo-instruct", "text-embedding-3-small", "dall-e-3", "tts-1",
          "omni-moderation-latest", "whisper-1", "gpt-4o-transcribe"]

ODD_TEXT = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=6),  # lone surrogates included
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "\U0001f600", "\u202e", "x" * 3000, "", " ", "gpt-4o-mini"]),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**30, 10**400]),
    st.floats(allow_nan=False, allow_infinity=False),
)
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, ODD_TEXT)
JSON = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
                    max_leaves=8)


@st.composite
def messages_mutation(draw: st.DrawFn) -> Any:
    """A messages list with one message, or one of its content parts, or one of their fields, made odd."""
    message: dict[str, Any] = {"role": draw(st.sampled_from(["user", "assistant", "system", "tool"])),
                               "content": [{"type": "text", "text": "Hi"}]}
    where = draw(st.sampled_from(["message", "field", "part", "part field"]))
    if where == "message":
        return [draw(JSON)]
    if where == "field":
        message[draw(st.sampled_from(["role", "content", "tool_calls", "name"]))] = draw(JSON)
    elif where == "part":
        message["content"] = [draw(JSON)]
    else:
        part = {"type": draw(st.sampled_from(["text", "image", "image_url", "tool_use", "tool_result", "x"]))}
        part[draw(st.sampled_from(["text", "source", "image_url", "input", "content", "id", "type"]))] = draw(JSON)
        message["content"] = [part]
    return [message]


def nested(depth: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


@st.composite
def request_bodies(draw: st.DrawFn, path: str) -> bytes:
    """A request body for ``path``: arbitrary JSON, a mutated valid request, deep nesting, or plain bytes."""
    kind = draw(st.sampled_from(["any", "mutated", "mutated", "mutated", "messages", "deep", "bytes"]))
    if kind == "any":
        return json.dumps(draw(JSON)).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    body = dict(VALID[path])
    if kind == "messages":
        body["messages"] = draw(messages_mutation())
    elif kind == "deep":
        # Past json's own limit (a RecursionError while decoding) or just under it (one while walking).
        body[draw(st.sampled_from(FIELDS))] = nested(draw(st.sampled_from([150, 900, 990])),
                                                     draw(st.sampled_from(["list", "dict"])))
        if draw(st.booleans()):
            return json.dumps(body).encode()[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    else:
        for name in draw(st.lists(st.sampled_from([*VALID[path], *FIELDS]), min_size=1, max_size=3, unique=True)):
            body[name] = draw(st.one_of(JSON, st.sampled_from(MODELS)) if name == "model" else JSON)
    return json.dumps(body).encode()


class Balances:
    """The account's and the key's money, to check that nothing is held or lost once a request is over."""

    def __init__(self, user_id: int, token_id: int) -> None:
        self.user_id, self.token_id = user_id, token_id
        self.total = self.read()[0]

    def read(self) -> tuple[tuple[int, int], tuple[int, int]]:
        user, token = User.get_by_id(self.user_id), Token.get_by_id(self.token_id)
        return (user.quota + user.used_quota, token.remain_quota + token.used_quota), (user.used_quota,
                                                                                         token.used_quota)

    def at_rest(self) -> tuple[int, int]:
        """What was spent, once every hold is settled (the ledger writes in the background)."""
        deadline = time.monotonic() + 5
        while (now := self.read())[0] != self.total:
            assert time.monotonic() < deadline, f"money held or lost: {now[0]} != {self.total}"
            time.sleep(0.01)
        return now[1]


@pytest.fixture
def world(upstream, make_account, price, channel, serve):
    channel(upstream, models=",".join(MODELS))
    for model in MODELS:
        price(model, "1", "2", per_call="0.001")
    acct = make_account(balance="1000000", usd="500000")
    server = serve(max_body_bytes=1_000_000)
    client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {acct.key}"}, timeout=30)
    yield client, Balances(acct.user.id, acct.token.id)
    client.close()


def check(response: httpx.Response, balances: Balances, spent_before: tuple[int, int]) -> tuple[int, int]:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str), error
    spent = balances.at_rest()
    if response.status_code >= 400:
        assert spent == spent_before, "a refused request spent money"
    return spent


FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])


@pytest.mark.parametrize("path", list(VALID))
def test_json_routes_never_fail_on_any_input(world, path):
    client, balances = world

    @FUZZ
    @given(body=request_bodies(path))
    def run(body: bytes) -> None:
        before = balances.at_rest()
        check(client.post(path, content=body, headers={"Content-Type": "application/json"}), balances, before)

    run()


BCHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "


@st.composite
def forms(draw: st.DrawFn) -> tuple[bytes, str]:
    """A multipart body and its Content-Type: odd boundaries, names, repeats, values, and bytes cut or inserted."""
    boundary = draw(st.one_of(st.just("fuzzboundary"), st.text(BCHARS, min_size=1, max_size=90),
                              st.text(max_size=300)))
    fields = [("model", draw(st.sampled_from([b"whisper-1", b"gpt-4o-transcribe", b"tts-1", b"", b"\xff"])), None),
              ("file", draw(st.binary(max_size=64)), "a.wav")]
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.one_of(st.sampled_from(["model", "file", "stream", "language", "prompt", "include[]",
                                               "timestamp_granularities[]"]), ODD_TEXT))
        fields.append((name, draw(st.binary(max_size=20)), draw(st.one_of(st.none(), ODD_TEXT))))
    fields = draw(st.permutations(fields))
    body = b""
    for name, value, filename in fields:
        disposition = f'form-data; name="{name}"' + ("" if filename is None else f'; filename="{filename}"')
        body += (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode("utf-8", "surrogatepass")
                 + value + b"\r\n")
    body += f"--{boundary}--\r\n".encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(max_size=8)) + body[at + draw(st.integers(0, 8)):]
    content_type = draw(st.sampled_from([f"multipart/form-data; boundary={boundary}",
                                         f'multipart/form-data; boundary="{boundary}"', "multipart/form-data",
                                         "application/json", f"multipart/mixed; boundary={boundary}"]))
    return body, content_type


def test_transcriptions_never_fail_on_any_form(world):
    client, balances = world

    @FUZZ
    @given(form=forms())
    def run(form: tuple[bytes, str]) -> None:
        body, content_type = form
        before = balances.at_rest()
        # Only what an HTTP client can send in a header (uvicorn refuses the rest before the gateway runs).
        content_type = "".join(c if " " <= c <= "~" else "?" for c in content_type).strip()
        check(client.post("/v1/audio/transcriptions", content=body, headers={"Content-Type": content_type}),
              balances, before)

    run()
