"""The raw stream fast path's byte handling: cutting SSE reads into payloads, and deciding which pass unparsed.

:class:`SSEPayloads` sees the upstream's bytes as the network delivers them
(any split, any line ending); :func:`plain_payload` decides, by byte tests
alone, whether a payload can go to the client as it is. A mistake in either
one corrupts or drops what the user sees, or what they are billed.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from gateway.adaptors._sse import SSEPayloads, parse_payload
from gateway.adaptors.base import UpstreamFailure
from gateway.relay import plain_payload


def chunk(content: str | None = "Hello", *, finish: str | None = None, **extra) -> bytes:
    """A chat.completion.chunk as OpenAI writes it (compact JSON)."""
    delta = {} if content is None else {"content": content}
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-mini",
            "system_fingerprint": "fp_test",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
    return json.dumps(body, separators=(",", ":")).encode()


USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
         "prompt_tokens_details": {"cached_tokens": 0}}
PAYLOADS = [
    chunk(""),
    chunk("Hel"),
    chunk('lo, "world" \\ ünïcödé 🎉'),  # escaped quotes, a backslash, multi-byte UTF-8 to split inside
    chunk(None, finish="stop"),
    json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": USAGE},
               separators=(",", ":")).encode(),
]


def stream_of(payloads: list[bytes], newline: bytes = b"\n") -> bytes:
    events = b"".join(b"data: " + p + newline + newline for p in payloads)
    return events + b"data: [DONE]" + newline + newline


def feed_all(pieces: list[bytes]) -> tuple[list[bytes], SSEPayloads]:
    events = SSEPayloads()
    out: list[bytes] = []
    for piece in pieces:
        out += events.feed(piece)
        if events.done:
            break
    return out, events


# -- SSEPayloads -----------------------------------------------------------------------


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_one_read_gives_every_payload_and_done(newline):
    out, events = feed_all([stream_of(PAYLOADS, newline)])
    assert out == PAYLOADS
    assert events.done


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_a_split_at_every_byte_boundary_gives_the_same_payloads(newline):
    data = stream_of(PAYLOADS[1:3], newline)
    for cut in range(1, len(data)):
        out, events = feed_all([data[:cut], data[cut:]])
        assert out == PAYLOADS[1:3], f"split at byte {cut}: {data[:cut][-12:]!r} | {data[cut:][:12]!r}"
        assert events.done, f"split at byte {cut}"


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_one_event_split_across_many_reads_at_every_pair_of_boundaries(newline):
    data = b"data: " + PAYLOADS[2] + newline + newline
    for first in range(1, len(data) - 1):
        for second in range(first + 1, len(data)):
            out, _ = feed_all([data[:first], data[first:second], data[second:]])
            assert out == [PAYLOADS[2]], f"cuts at {first} and {second}"


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_byte_by_byte_reads_give_the_same_payloads(newline):
    data = stream_of(PAYLOADS, newline)
    events = SSEPayloads()
    out: list[bytes] = []
    for i in range(len(data)):
        got = events.feed(data[i:i + 1])
        if got:
            # a payload appears exactly when its event's blank line completes
            assert data[:i + 1].endswith(newline + newline)
        out += got
    assert out == PAYLOADS
    assert events.done


def test_payloads_appear_only_when_their_event_is_complete():
    events = SSEPayloads()
    assert events.feed(b"data: " + PAYLOADS[1] + b"\n") == []  # one newline: the event may go on
    assert events.feed(b"\n" + b"data: " + PAYLOADS[2][:10]) == [PAYLOADS[1]]
    assert events.feed(PAYLOADS[2][10:] + b"\n\n") == [PAYLOADS[2]]
    assert not events.done


def test_several_events_in_one_read_keep_their_order_and_the_partial_rest_waits():
    events = SSEPayloads()
    data = b"".join(b"data: " + p + b"\n\n" for p in PAYLOADS[:3])
    assert events.feed(data + b"data: " + PAYLOADS[3][:7]) == PAYLOADS[:3]
    assert events.feed(PAYLOADS[3][7:] + b"\n\ndata: [DONE]\n\n") == [PAYLOADS[3]]
    assert events.done


def test_crlf_with_the_cr_ending_one_read_and_the_lf_starting_the_next():
    events = SSEPayloads()
    # "\r" | "\n\r\n": the event's first line ending is cut in half
    assert events.feed(b"data: " + PAYLOADS[1] + b"\r") == []
    assert events.feed(b"\n\r\n") == [PAYLOADS[1]]
    # "\r\n\r" | "\n": the blank line's CRLF is cut in half
    assert events.feed(b"data: " + PAYLOADS[2] + b"\r\n\r") == []
    assert events.feed(b"\ndata: " + PAYLOADS[3] + b"\r\n\r\n") == [PAYLOADS[2], PAYLOADS[3]]
    # the CR of [DONE]'s line alone, then the rest
    assert events.feed(b"data: [DONE]\r") == []
    assert not events.done
    assert events.feed(b"\n\r\n") == []
    assert events.done


def test_payloads_never_keep_a_carriage_return():
    out, _ = feed_all([stream_of(PAYLOADS, b"\r\n")])
    assert not any(b"\r" in p for p in out)
    assert [json.loads(p) for p in out] == [json.loads(p) for p in PAYLOADS]


def test_a_multi_line_data_event_is_joined_into_one_payload():
    # The spec joins data lines with LF; for JSON a space is the same whitespace and keeps the payload
    # on one line when relayed. Either is right; losing, reordering or merging lines is not.
    lines = [b'{"id":"chatcmpl-1",', b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]',
             b"}"]
    events = SSEPayloads()
    out = events.feed(b"".join(b"data: " + line + b"\n" for line in lines) + b"\n")
    assert len(out) == 1
    assert out[0] in (b"\n".join(lines), b" ".join(lines))
    assert json.loads(out[0]) == {"id": "chatcmpl-1", "choices": [
        {"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}


def test_a_multi_line_event_split_across_reads_gives_one_payload():
    data = b'data: {"a":\ndata:  [1,\ndata: 2]}\n\n'
    for cut in range(1, len(data)):
        events = SSEPayloads()
        out = events.feed(data[:cut]) + events.feed(data[cut:])
        assert len(out) == 1 and json.loads(out[0]) == {"a": [1, 2]}, f"split at {cut}"


def test_data_without_a_space_after_the_colon_and_multi_line_data_over_crlf():
    events = SSEPayloads()
    assert events.feed(b"data:" + PAYLOADS[1] + b"\n\n") == [PAYLOADS[1]]
    out = events.feed(b'data: {"a":\r\ndata: 1}\r\n\r\n')
    assert len(out) == 1 and json.loads(out[0]) == {"a": 1}


def test_comments_event_names_ids_and_retry_lines_are_ignored():
    events = SSEPayloads()
    data = (b": ping\n\n"
            b": OPENROUTER PROCESSING\n\n"
            b"event: message\nid: 7\nretry: 1000\ndata: " + PAYLOADS[1] + b"\n\n"
            b"event: keepalive\n\n"
            b": a comment inside an event\ndata: " + PAYLOADS[2] + b"\n\n"
            b"\n\n"  # stray blank lines
            b"data: [DONE]\n\n")
    assert events.feed(data) == [PAYLOADS[1], PAYLOADS[2]]
    assert events.done


def test_done_stops_and_what_follows_it_in_the_same_read_is_ignored():
    events = SSEPayloads()
    out = events.feed(b"data: " + PAYLOADS[1] + b"\n\ndata: [DONE]\n\n"
                      b"data: " + PAYLOADS[2] + b"\n\ndata: not json at all\n\n"
                      b'data: {"error":{"message":"late"}}\n\n')
    assert out == [PAYLOADS[1]]
    assert events.done


@pytest.mark.parametrize("done", [b"data: [DONE]\n\n", b"data:[DONE]\n\n", b"data: [DONE]\r\n\r\n",
                                  b"event: done\ndata: [DONE]\n\n"])
def test_done_in_its_spellings(done):
    events = SSEPayloads()
    assert events.feed(b"data: " + PAYLOADS[1] + b"\n\n" + done) == [PAYLOADS[1]]
    assert events.done


def test_an_error_event_raises_with_the_upstreams_message():
    events = SSEPayloads()
    assert events.feed(b"data: " + PAYLOADS[1] + b"\n\n") == [PAYLOADS[1]]
    error = {"error": {"message": "The server had an error while processing your request.",
                       "type": "server_error", "param": None, "code": "server_error"}}
    with pytest.raises(UpstreamFailure) as caught:
        events.feed(b"data: " + json.dumps(error).encode() + b"\n\n")
    assert caught.value.message == "The server had an error while processing your request."
    assert caught.value.code == "server_error"


def test_an_error_event_split_across_reads_and_one_with_an_event_line_raise():
    events = SSEPayloads()
    error = b'data: {"error": {"message": "Rate limit reached", "type": "requests"}}\n\n'
    assert events.feed(error[:20]) == []
    with pytest.raises(UpstreamFailure, match="Rate limit reached"):
        events.feed(error[20:])
    with pytest.raises(UpstreamFailure, match="overloaded"):
        SSEPayloads().feed(b'event: error\ndata: {"error":{"message":"overloaded"}}\n\n')


def test_an_error_given_as_a_string_raises_with_that_text():
    with pytest.raises(UpstreamFailure, match="upstream exploded"):
        SSEPayloads().feed(b'data: {"error":"upstream exploded"}\n\n')


def test_a_chunk_with_choices_and_an_error_key_is_not_an_error():
    data = chunk("fine", error=None)
    assert SSEPayloads().feed(b"data: " + data + b"\n\n") == [data]
    # the word "error" inside the text is not the key either
    data = chunk('an "error" happened')
    assert SSEPayloads().feed(b"data: " + data + b"\n\n") == [data]


@pytest.mark.parametrize("line", [b"data: Internal Server Error", b"data: <html>502 Bad Gateway</html>",
                                  b"data: [1, 2]", b'data: "a string"', b"data: null", b"data: 42",
                                  b'data: {"truncated": '])
def test_a_payload_that_is_not_a_json_object_raises(line):
    events = SSEPayloads()
    with pytest.raises(UpstreamFailure):
        events.feed(b"data: " + PAYLOADS[1] + b"\n\n" + line + b"\n\n")


def test_parse_payload():
    assert parse_payload(PAYLOADS[1]) == json.loads(PAYLOADS[1])
    for bad in (b"nope", b"[]", b"{"):
        with pytest.raises(UpstreamFailure):
            parse_payload(bad)


# -- plain_payload -----------------------------------------------------------------------


def spaced(data: bytes) -> bytes:
    """The same chunk as Python's json.dumps writes it by default (a space after ':' and ',')."""
    return json.dumps(json.loads(data)).encode()


@pytest.mark.parametrize("include_usage", [True, False])
@pytest.mark.parametrize("style", [lambda b: b, spaced], ids=["compact", "spaced"])
def test_a_content_chunk_passes_unchanged(include_usage, style):
    for data in (chunk("Hello"), chunk(""), chunk('"usage":null in quotes'), chunk("usage: finish_reason"),
                 chunk(None)):
        data = style(data)
        assert plain_payload(data, include_usage) == data


@pytest.mark.parametrize("include_usage", [True, False])
@pytest.mark.parametrize("style", [lambda b: b, spaced], ids=["compact", "spaced"])
def test_chunks_billing_must_read_are_left_to_the_parser(include_usage, style):
    must_parse = [
        chunk(None, finish="stop"),
        chunk(None, finish="length"),
        chunk("last", finish="stop", usage=None),
        chunk(None, finish="tool_calls"),
        chunk("x", usage=USAGE),  # usage on a chunk that also has content
        json.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": USAGE},
                   separators=(",", ":")).encode(),
        json.dumps({"id": "c", "object": "chat.completion.chunk", "choices": []},
                   separators=(",", ":")).encode(),
        json.dumps({"id": "c", "choices": [], "usage": None}, separators=(",", ":")).encode(),
    ]
    for data in must_parse:
        data = style(data)
        assert plain_payload(data, include_usage) is None, data


def test_a_second_choice_finishing_is_noticed():
    data = json.dumps({"id": "c", "choices": [
        {"index": 0, "delta": {"content": "a"}, "finish_reason": None},
        {"index": 1, "delta": {}, "finish_reason": "stop"}]}, separators=(",", ":")).encode()
    assert plain_payload(data, True) is None
    assert plain_payload(data, False) is None


@pytest.mark.parametrize("style", [lambda b: b, spaced], ids=["compact", "spaced"])
def test_a_null_usage_passes_when_usage_was_asked_for(style):
    data = style(chunk("Hello", usage=None))
    assert b'"usage": null' in data or b'"usage":null' in data
    assert plain_payload(data, True) == data


@pytest.mark.parametrize("style", [lambda b: b, spaced], ids=["compact", "spaced"])
def test_a_null_usage_is_removed_when_usage_was_not_asked_for(style):
    data = style(chunk("Hello", usage=None))
    out = plain_payload(data, False)
    if out is None:  # left to the parser: allowed, as long as the relay then drops it there
        return
    assert b'"usage"' not in out
    expected = json.loads(data)
    del expected["usage"]
    assert json.loads(out) == expected


def test_a_null_usage_in_the_compact_and_spaced_forms_is_removed_not_left_to_the_parser():
    # OpenAI's own framing puts "usage":null last in every chunk; that is the hot path.
    for data in (chunk("Hello", usage=None), spaced(chunk("Hello", usage=None))):
        out = plain_payload(data, False)
        assert out is not None and b'"usage"' not in out
        expected = json.loads(data)
        del expected["usage"]
        assert json.loads(out) == expected


def test_a_null_usage_in_the_middle_of_the_object_is_removed_cleanly():
    body = {"id": "c", "usage": None, "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}],
            "model": "m"}
    for data in (json.dumps(body, separators=(",", ":")).encode(), json.dumps(body).encode()):
        out = plain_payload(data, False)
        if out is not None:
            assert json.loads(out) == {k: v for k, v in body.items() if k != "usage"}
    # first key: nothing before it to take with it
    data = json.dumps({"usage": None, **{k: v for k, v in body.items() if k != "usage"}},
                      separators=(",", ":")).encode()
    out = plain_payload(data, False)
    if out is not None:
        assert json.loads(out) == {k: v for k, v in body.items() if k != "usage"}


def test_a_null_finish_reason_in_both_spacings_passes():
    compact = chunk("Hi")
    assert b'"finish_reason":null' in compact
    assert plain_payload(compact, True) == compact
    assert plain_payload(spaced(compact), True) == spaced(compact)
    assert plain_payload(spaced(chunk(None, finish="stop")), True) is None
    assert b'"finish_reason": "stop"' in spaced(chunk(None, finish="stop"))


# -- sse_events: the named events of Anthropic, Gemini, Cloudflare and Replicate, on the same framing --


class _Reads(httpx.AsyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    async def __aiter__(self):
        for piece in self.pieces:
            yield piece


def named_events(body: bytes, cut: int) -> list[tuple[str, str]]:
    from gateway.adaptors._sse import sse_events

    pieces = [body[i:i + cut] for i in range(0, len(body), cut)]
    response = httpx.Response(200, stream=_Reads(pieces))

    async def collect() -> list[tuple[str, str]]:
        return [pair async for pair in sse_events(response)]

    return asyncio.run(collect())


ANTHROPIC_LIKE = ('event: message_start\ndata: {"type":"message_start"}\n\n'
                  ': ping\n\n'
                  'event: content_block_delta\ndata: {"type":"content_block_delta",\ndata: "text":"你好"}\n\n'
                  'data: {"unnamed":true}\n\n'
                  'event: message_stop\ndata: {"type":"message_stop"}')  # no closing blank line


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("cut", [1, 2, 7, 10_000])
def test_named_events_survive_any_split_and_line_ending(newline, cut):
    body = ANTHROPIC_LIKE.replace("\n", newline).encode()
    assert named_events(body, cut) == [
        ("message_start", '{"type":"message_start"}'),
        ("content_block_delta", '{"type":"content_block_delta",\n"text":"你好"}'),  # data lines joined by LF
        ("message", '{"unnamed":true}'),
        ("message_stop", '{"type":"message_stop"}'),
    ]
