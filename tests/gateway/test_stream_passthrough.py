"""Streamed chat relayed as the upstream's own bytes, end to end, against an upstream that frames like OpenAI.

The fast path forwards most chunks unparsed, so what is checked here is what a
user would see if it went wrong: the text the SDK puts together, whether a
usage chunk appears (only when asked, exactly once, with the upstream's
numbers), what the log row and the balance say, and how a mid-stream error
ends the stream. The upstream below imitates real OpenAI where it matters:
``"usage":null`` in every chunk when usage is asked for, a final usage chunk
with ``"choices":[]``, and events written in pieces that do not line up with
event boundaries (optionally with CRLF line endings, or gzip-compressed).
"""

from __future__ import annotations

import asyncio
import json
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.conftest import LiveServer
from tests.gateway.helpers import wait_logs

MODEL = "gpt-4o-mini"
MSGS = [{"role": "user", "content": "Say something with odd characters in it."}]
# Multi-byte UTF-8, escaped quotes, a backslash and a newline: halves of events will cut through them.
REPLY = 'Héllo, "wörld"! C:\\temp → 日本語テキスト 🎉🎉\nSecond line, ending.'
# What the upstream reports; deliberately unlike a local count, so the test can tell which was billed.
PROMPT_TOKENS, COMPLETION_TOKENS, CACHED_TOKENS = 1234, 567, 0
# The price set below is $1 per million input tokens and $2 per million output tokens;
# 500,000 units = $1, so 0.5 unit per input token and 1 unit per output token, rounded up.
EXPECTED_COST = 617 + 567


# -- the upstream ---------------------------------------------------------------------------


@dataclass
class FakeOpenAI:
    """Switches shared by every request to the upstream (set them before the call)."""

    reply: str = REPLY
    split: str = "halves"  # "whole" event per write, "halves", "straddle" (a write = end of one + start of next), "cr"
    crlf: bool = False
    gzip: bool = False
    omit_usage: bool = False  # never report usage, not even "usage":null
    error_after: int | None = None  # after this many content chunks, an {"error": ...} event ends the stream
    error_first: bool = False  # the {"error": ...} event is the stream's first (still HTTP 200)
    multiline_data: bool = False  # each chunk's JSON pretty-printed over several `data:` lines
    after_done: bytes = b""  # written after [DONE] (a well-behaved client stops reading at [DONE])
    comments: bool = False  # ": OPENROUTER PROCESSING"-style comments between events
    pause: float = 0.002  # between writes, so that they reach the gateway as separate reads
    requests: list[dict[str, Any]] = field(default_factory=list)
    completed: int = 0

    def chunks(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks OpenAI would send, in order (error events included)."""
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and not self.omit_usage
        cid, created = "chatcmpl-" + uuid.uuid4().hex[:24], 1_700_000_000

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            out: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created,
                                   "model": body.get("model"), "service_tier": "default",
                                   "system_fingerprint": "fp_test", "choices": choices}
            if include_usage:
                out["usage"] = None  # OpenAI puts this in every chunk once usage is asked for
            out.update(extra)
            return out

        def delta(d: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}]

        error = {"error": {"message": "The server had an error while processing your request. Sorry!",
                           "type": "server_error", "param": None, "code": None}}
        if self.error_first:
            return [error]
        out = [chunk(delta({"role": "assistant", "content": "", "refusal": None}))]
        pieces = [self.reply[i:i + 5] for i in range(0, len(self.reply), 5)]
        for n, piece in enumerate(pieces):
            if self.error_after is not None and n == self.error_after:
                out.append(error)
                return out
            out.append(chunk(delta({"content": piece})))
        out.append(chunk(delta({}, "stop")))
        if include_usage:
            out.append(chunk([], usage={
                "prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}))
        return out

    def events(self, body: dict[str, Any]) -> list[bytes]:
        nl = b"\r\n" if self.crlf else b"\n"
        events = []
        for item in self.chunks(body):
            if self.multiline_data:
                lines = json.dumps(item, ensure_ascii=False, indent=1).encode().split(b"\n")
            else:
                lines = [json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()]
            if self.comments:
                events.append(b": OPENROUTER PROCESSING" + nl + nl)
            events.append(b"".join(b"data: " + line + nl for line in lines) + nl)
        if self.error_after is None and not self.error_first:
            events.append(b"data: [DONE]" + nl + nl)
        return events

    def writes(self, body: dict[str, Any]) -> list[bytes]:
        """The response body cut into the pieces written one by one."""
        events = self.events(body)
        data = b"".join(events)
        cuts: set[int] = set()
        start = 0
        for event in events:
            end = start + len(event)
            if self.split in ("whole", "halves", "cr"):
                cuts.add(end)
            if self.split in ("halves", "straddle", "cr"):
                cuts.add(start + len(event) // 2)
            if self.split == "cr":  # between the CR and the LF of each of the event's last two line endings
                cuts.update((end - 1, end - 3))
            start = end
        bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
        pieces = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        if self.after_done:
            pieces.append(self.after_done)
        return pieces


class _SSEBody(Response):
    def __init__(self, fake: FakeOpenAI, body: dict[str, Any]) -> None:
        self.fake, self.body = fake, body
        self.background = None
        self.raw_headers = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fake = self.fake
        headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
        compressor = None
        if fake.gzip:
            headers.append((b"content-encoding", b"gzip"))
            compressor = zlib.compressobj(wbits=31)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for piece in fake.writes(self.body):
            if compressor is not None:
                piece = compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            await asyncio.sleep(fake.pause)
        tail = compressor.flush() if compressor is not None else b""
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        fake.completed += 1


def fake_openai_app(fake: FakeOpenAI) -> Starlette:
    async def chat(request: Request) -> Response:
        body = json.loads(await request.body())
        fake.requests.append(body)
        assert body.get("stream") is True, "this upstream only streams"
        return _SSEBody(fake, body)

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


@pytest.fixture
def make_fake() -> Iterator[Callable[..., tuple[FakeOpenAI, LiveServer]]]:
    started: list[LiveServer] = []

    def make(**switches: Any) -> tuple[FakeOpenAI, LiveServer]:
        state = FakeOpenAI(**switches)
        server = LiveServer(fake_openai_app(state)).start()
        started.append(server)
        return state, server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def fake(make_fake) -> tuple[FakeOpenAI, LiveServer]:
    return make_fake()


@dataclass
class Setup:
    fake: FakeOpenAI
    account: Any
    server: LiveServer
    client: openai.OpenAI

    def raw(self, **body: Any) -> tuple[int, str]:
        """POST a streamed chat completion with httpx; the status and the whole SSE text."""
        with httpx.Client(timeout=10) as http:
            response = http.post(self.server.url + "/v1/chat/completions",
                                 headers={"Authorization": f"Bearer {self.account.key}"},
                                 json={"model": MODEL, "messages": MSGS, "stream": True, **body})
        return response.status_code, response.text

    def sdk(self, **kwargs: Any) -> list[Any]:
        return list(self.client.chat.completions.create(model=MODEL, messages=MSGS, stream=True, **kwargs))


@pytest.fixture
def setup(fake, make_account, price, channel, serve) -> Setup:
    state, upstream = fake
    channel(upstream.url + "/v1", name="fake openai")
    price(MODEL, "1", "2")
    account = make_account()
    server = serve()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=account.key, max_retries=0, timeout=10)
    return Setup(state, account, server, client)


def sse_payloads(text: str) -> list[str]:
    """The data of each event of an SSE body, checking the gateway's own framing on the way."""
    assert text.endswith("\n\n"), text[-200:]
    out = []
    for event in text[:-2].split("\n\n"):
        if event.startswith(":"):
            continue  # a keep-alive comment
        assert event.startswith("data: ") and "\n" not in event and "\r" not in event, \
            f"not a single-line data event: {event[:300]!r}"
        out.append(event[6:])
    return out


def content_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def usage_chunks(chunks: list[Any]) -> list[Any]:
    return [c for c in chunks if c.usage is not None]


def expect_billed_by_upstream(setup: Setup, before: int, row_index: int = 0, rows: int = 1) -> None:
    row = wait_logs(rows)[row_index]
    assert (row.status_code, row.is_stream, row.error) == (200, True, "")
    assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (
        PROMPT_TOKENS, COMPLETION_TOKENS, CACHED_TOKENS)
    assert row.quota == EXPECTED_COST
    assert setup.account.refresh().user.quota == before - EXPECTED_COST


# -- the reply and the usage chunk -------------------------------------------------------------

SPLITS = [
    pytest.param({"split": "whole"}, id="whole-events"),
    pytest.param({"split": "halves"}, id="halves"),
    pytest.param({"split": "straddle"}, id="straddling-reads"),
    pytest.param({"split": "cr", "crlf": True}, id="crlf-cut-between-cr-and-lf"),
    pytest.param({"split": "straddle", "crlf": True}, id="crlf-straddling"),
    pytest.param({"split": "halves", "gzip": True}, id="gzip"),
    pytest.param({"split": "straddle", "comments": True}, id="comments-between-events"),
]


@pytest.mark.parametrize("switches", SPLITS)
def test_without_usage_asked_the_sdk_gets_the_reply_and_never_a_usage_field(setup, switches):
    for name, value in switches.items():
        setattr(setup.fake, name, value)
    before = setup.account.user.quota
    chunks = setup.sdk()
    assert content_of(chunks) == REPLY
    assert all(c.choices for c in chunks), "a usage-only chunk reached a client that did not ask for usage"
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    # The gateway always asks the upstream for usage, so it can bill exactly.
    assert setup.fake.requests[-1]["stream_options"] == {"include_usage": True}
    expect_billed_by_upstream(setup, before)


@pytest.mark.parametrize("switches", SPLITS)
def test_without_usage_asked_the_raw_sse_has_no_usage_key_and_ends_with_done(setup, switches):
    for name, value in switches.items():
        setattr(setup.fake, name, value)
    status, text = setup.raw()
    assert status == 200
    payloads = sse_payloads(text)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert chunks and all("usage" not in c for c in chunks), [c for c in chunks if "usage" in c]
    assert all(c["choices"] for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == REPLY
    # unchanged apart from the dropped key: ids, fingerprints, service tier
    assert {c["id"] for c in chunks} == {chunks[0]["id"]} and chunks[0]["id"].startswith("chatcmpl-")
    assert all(c["system_fingerprint"] == "fp_test" and c["service_tier"] == "default" for c in chunks)


@pytest.mark.parametrize("switches", SPLITS)
def test_with_usage_asked_exactly_one_usage_chunk_with_the_upstreams_numbers(setup, switches):
    for name, value in switches.items():
        setattr(setup.fake, name, value)
    before = setup.account.user.quota
    chunks = setup.sdk(stream_options={"include_usage": True})
    assert content_of(chunks) == REPLY
    [last] = usage_chunks(chunks)
    assert last is chunks[-1] and last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (
        PROMPT_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS + COMPLETION_TOKENS)
    expect_billed_by_upstream(setup, before)


def test_include_usage_false_is_the_same_as_not_asking(setup):
    setup.fake.split = "straddle"
    status, text = setup.raw(stream_options={"include_usage": False})
    assert status == 200
    payloads = sse_payloads(text)
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all("usage" not in c and c["choices"] for c in chunks)
    assert setup.fake.requests[-1]["stream_options"] == {"include_usage": True}


def test_the_upstreams_writes_really_reach_the_gateway_as_split_reads(setup, monkeypatch):
    """Guards the tests above: the awkward splits must survive the trip over the socket."""
    from gateway.adaptors import _sse

    reads: list[bytes] = []
    feed = _sse.SSEPayloads.feed

    def recording_feed(self: _sse.SSEPayloads, block: bytes) -> list[bytes]:
        reads.append(block)
        return feed(self, block)

    monkeypatch.setattr(_sse.SSEPayloads, "feed", recording_feed)
    setup.fake.split, setup.fake.crlf = "cr", True
    assert content_of(setup.sdk()) == REPLY
    assert b"".join(reads).endswith(b"data: [DONE]\r\n\r\n")
    assert any(r.endswith(b"\r") for r in reads) and any(r.startswith(b"\n") for r in reads)
    assert sum(not r.endswith(b"\n\n") for r in reads) > len(reads) // 4


def test_with_usage_asked_the_raw_sse_keeps_openais_null_usage_and_one_usage_chunk(setup):
    setup.fake.split = "straddle"
    status, text = setup.raw(stream_options={"include_usage": True})
    assert status == 200
    payloads = sse_payloads(text)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    with_usage = [c for c in chunks if c.get("usage")]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1] and chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == PROMPT_TOKENS
    assert chunks[-1]["usage"]["completion_tokens"] == COMPLETION_TOKENS
    assert all("usage" in c and c["usage"] is None for c in chunks[:-1])  # as OpenAI sends them


def test_several_streams_in_a_row_each_bill_the_upstreams_usage(setup):
    setup.fake.split = "straddle"
    before = setup.account.user.quota
    assert content_of(setup.sdk()) == REPLY
    assert content_of(setup.sdk(stream_options={"include_usage": True})) == REPLY
    assert setup.raw()[0] == 200
    rows = wait_logs(3)
    assert [(r.prompt_tokens, r.completion_tokens, r.quota, r.status_code) for r in rows] == [
        (PROMPT_TOKENS, COMPLETION_TOKENS, EXPECTED_COST, 200)] * 3
    assert setup.account.refresh().user.quota == before - 3 * EXPECTED_COST


# -- an upstream that reports no usage ---------------------------------------------------------


@pytest.mark.parametrize("asked", [False, True], ids=["usage-not-asked", "usage-asked"])
def test_an_upstream_without_usage_is_still_billed_by_a_local_count(setup, asked):
    setup.fake.omit_usage = True
    setup.fake.split = "straddle"
    before = setup.account.user.quota
    chunks = setup.sdk(**({"stream_options": {"include_usage": True}} if asked else {}))
    assert content_of(chunks) == REPLY
    row = wait_logs(1)[0]
    assert row.status_code == 200 and row.prompt_tokens > 0
    assert 5 < row.completion_tokens < 100  # counted locally from the relayed text
    assert row.quota > 0 and setup.account.refresh().user.quota == before - row.quota
    if not asked:
        assert usage_chunks(chunks) == [] and all(c.choices for c in chunks)
        return
    [tail] = usage_chunks(chunks)  # synthesised by the gateway
    assert tail is chunks[-1] and tail.choices == []
    assert (tail.usage.prompt_tokens, tail.usage.completion_tokens) == (row.prompt_tokens, row.completion_tokens)
    assert tail.usage.total_tokens == row.prompt_tokens + row.completion_tokens
    assert tail.id == chunks[0].id and tail.model == chunks[0].model


def test_the_synthesised_usage_chunk_is_well_framed_in_the_raw_sse(setup):
    setup.fake.omit_usage = True
    setup.fake.split = "cr"
    setup.fake.crlf = True
    status, text = setup.raw(stream_options={"include_usage": True})
    assert status == 200
    payloads = sse_payloads(text)
    assert payloads[-1] == "[DONE]"
    tail = json.loads(payloads[-2])
    assert tail["object"] == "chat.completion.chunk" and tail["choices"] == []
    assert tail["usage"]["completion_tokens"] > 0
    assert sum(1 for p in payloads[:-1] if json.loads(p).get("usage")) == 1


# -- a mid-stream error -----------------------------------------------------------------------


@pytest.mark.parametrize("switches", [
    pytest.param({"split": "whole"}, id="whole-events"),
    pytest.param({"split": "straddle"}, id="straddling-reads"),
    pytest.param({"split": "cr", "crlf": True}, id="crlf"),
])
def test_an_error_event_mid_stream_ends_the_stream_with_an_error_and_no_done(setup, switches):
    for name, value in switches.items():
        setattr(setup.fake, name, value)
    setup.fake.error_after = 3
    before = setup.account.user.quota
    status, text = setup.raw(stream_options={"include_usage": True})
    assert status == 200  # the stream had started
    payloads = sse_payloads(text)
    assert "[DONE]" not in payloads
    *content, last = [json.loads(p) for p in payloads]
    assert last["error"]["type"] == "upstream_error"
    assert "The server had an error while processing your request. Sorry!" in last["error"]["message"]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in content) == REPLY[:15]
    assert not any(c.get("usage") for c in content)  # no usage chunk for a broken stream
    row = wait_logs(1)[0]
    assert row.status_code == 502 and row.is_stream
    assert "Sorry!" in row.error
    assert row.completion_tokens > 0 and row.prompt_tokens > 0  # what arrived is billed, counted locally
    assert row.completion_tokens != COMPLETION_TOKENS
    assert row.quota > 0 and setup.account.refresh().user.quota == before - row.quota


def test_the_sdk_raises_on_the_error_after_yielding_the_content_before_it(setup):
    setup.fake.split = "halves"
    setup.fake.error_after = 2
    got: list[Any] = []
    with pytest.raises(openai.APIError, match="Sorry!"):
        for item in setup.client.chat.completions.create(model=MODEL, messages=MSGS, stream=True):
            got.append(item)
    assert content_of(got) == REPLY[:10]
    row = wait_logs(1)[0]
    assert row.status_code == 502 and row.completion_tokens > 0


# -- an error before any content -------------------------------------------------------------


def test_an_error_event_before_any_content_is_answered_as_an_error_and_not_billed(setup):
    setup.fake.error_first = True
    before = setup.account.user.quota
    status, text = setup.raw(stream_options={"include_usage": True})
    assert status == 502  # answered as JSON: the stream never started
    assert "Sorry!" in json.loads(text)["error"]["message"]
    row = wait_logs(1)[0]
    assert row.status_code == status and row.quota == 0
    assert setup.account.refresh().user.quota == before


def test_an_error_event_before_any_content_fails_over_to_the_next_channel(make_fake, make_account, price,
                                                                        channel, serve):
    broken, broken_server = make_fake(error_first=True)
    healthy, healthy_server = make_fake(split="straddle")
    channel(broken_server.url + "/v1", name="broken", priority=10)  # tried first
    healthy_channel = channel(healthy_server.url + "/v1", name="healthy")
    price(MODEL, "1", "2")
    account = make_account()
    server = serve()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=account.key, max_retries=0, timeout=10)
    setup = Setup(healthy, account, server, client)
    before = account.user.quota
    chunks = setup.sdk(stream_options={"include_usage": True})
    assert len(broken.requests) == 1 and len(healthy.requests) == 1
    assert content_of(chunks) == REPLY
    assert [c.usage.completion_tokens for c in usage_chunks(chunks)] == [COMPLETION_TOKENS]
    expect_billed_by_upstream(setup, before)
    assert wait_logs(1)[0].channel_id == healthy_channel.id


# -- framing an upstream may legally use ---------------------------------------------------------


def test_bytes_after_done_are_ignored(setup):
    setup.fake.split = "straddle"
    setup.fake.after_done = b"data: this is not json\n\ndata: {\"error\": {\"message\": \"late\"}}\n\n"
    before = setup.account.user.quota
    status, text = setup.raw()
    assert status == 200 and text.endswith("data: [DONE]\n\n") and "late" not in text
    expect_billed_by_upstream(setup, before)


@pytest.mark.parametrize(("asked", "omit_usage"), [(True, False), (False, True), (False, False)],
                         ids=["usage-asked", "upstream-without-usage", "usage-not-asked"])
def test_multi_line_data_events_reach_the_client_as_valid_events(setup, asked, omit_usage):
    """SSE allows one event's data over several ``data:`` lines; the client must still get each chunk whole."""
    setup.fake.multiline_data = True
    setup.fake.omit_usage = omit_usage
    setup.fake.split = "halves"
    before = setup.account.user.quota
    status, text = setup.raw(**({"stream_options": {"include_usage": True}} if asked else {}))
    assert status == 200
    payloads = sse_payloads(text)  # every event a single data line the client can parse
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == REPLY
    if not omit_usage:
        expect_billed_by_upstream(setup, before)
    assert content_of(setup.sdk()) == REPLY
