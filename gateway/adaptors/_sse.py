"""Server-sent events from an upstream: one framing, read two ways.

:class:`SSEFrames` cuts a byte stream into events as the network delivers it
(CRLF, LF or a lone CR as line ends, an event split across reads). On it:

- :class:`SSEPayloads`, the OpenAI relay's hot path: each event's ``data:``
  payload as the upstream's own bytes, unparsed (see
  :meth:`gateway.adaptors.base.Adaptor.stream_raw`); only the few chunks billing
  needs (usage, a finish reason) are ever parsed. What is checked here is what
  every chunk needs: the end (``[DONE]``), an ``error`` event, and that a
  payload at least looks like a JSON object.
- :func:`sse_events`, for the providers that name their events (Anthropic,
  Gemini, Cloudflare, Replicate): ``(event, data)`` pairs, decoded.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from gateway.adaptors.base import FailureKind, UpstreamFailure


class SSEFrames:
    """Feed it network reads; it returns the complete events in them, each its lines joined by LF."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, block: bytes) -> list[bytes]:
        if self._rest:
            block = self._rest + block
        held = b""
        if b"\r" in block:
            # The spec allows CRLF, LF and a lone CR as line ends. A CR that ends this
            # read waits, as its LF may start the next one; not after another CR (CRLF
            # framing never has two in a row, so both end lines).
            if block.endswith(b"\r") and not block.endswith(b"\r\r"):
                block, held = block[:-1], b"\r"
            block = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events = block.split(b"\n\n")
        self._rest = events.pop() + held
        return events

    def close(self) -> list[bytes]:
        """The last event, when the stream ended without the blank line that closes it."""
        rest, self._rest = self._rest.replace(b"\r", b"").strip(b"\n"), b""
        return [rest] if rest else []


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` pairs of an SSE body (``message`` when unnamed); comments and empty events skipped."""
    frames = SSEFrames()
    async for block in response.aiter_bytes():
        for event in frames.feed(block):
            named = _named(event)
            if named is not None:
                yield named
    for event in frames.close():
        named = _named(event)
        if named is not None:
            yield named


def _named(event: bytes) -> tuple[str, str] | None:
    """One event's name and data (its data lines joined by LF, as the spec says); None without data."""
    name, data = "", []
    for line in event.decode("utf-8", "replace").split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    return (name or "message", "\n".join(data)) if data else None


class SSEPayloads(SSEFrames):
    """Feed it network reads; it returns the complete events' payloads (a list per read)."""

    def __init__(self) -> None:
        super().__init__()
        self.done = False  # ``data: [DONE]`` seen: ignore anything after it

    def feed(self, block: bytes) -> list[bytes]:  # type: ignore[override]
        out: list[bytes] = []
        for event in super().feed(block):
            if event.startswith(b"data: {") and b"\n" not in event:
                data = event[6:]  # the usual event: one data line holding an object
            else:
                data = _data_of(event)
                if data is None:
                    continue  # a comment (": ping"), an event name alone, a blank line
            if data == b"[DONE]":
                self.done = True
                break
            if b'"error"' in data or data[:1] != b"{" or data.rstrip()[-1:] != b"}":
                _check(data)
            out.append(data)
        return out


def _data_of(event: bytes) -> bytes | None:
    """The data of one SSE event on one line; None when it has no data line.

    The spec joins an event's data lines with newlines. In JSON a newline can
    only be whitespace between tokens (one inside a string is escaped), so they
    are joined with spaces instead: the payload then stays one ``data:`` line
    when it is relayed.
    """
    parts = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value.startswith(b" ") else value)
    if not parts:
        return None
    return b" ".join(parts).strip()


def parse_payload(data: bytes) -> dict[str, Any]:
    """A payload's JSON object; a payload that is not one is the upstream's failure."""
    try:
        chunk = json.loads(data)
    except ValueError:
        raise UpstreamFailure(f"the upstream sent a line that is not JSON: {data[:200]!r}",
                              kind=FailureKind.RETRY) from None
    if not isinstance(chunk, dict):
        raise UpstreamFailure(f"the upstream sent a chunk that is not a JSON object: {data[:200]!r}",
                              kind=FailureKind.RETRY)
    return chunk


def _check(data: bytes) -> None:
    """Raise for a payload that is not a JSON object, or that is an upstream's error event."""
    chunk = parse_payload(data)
    if "error" in chunk and "choices" not in chunk:
        err = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
        raise UpstreamFailure(str(err.get("message") or "upstream stream error"),
                              kind=FailureKind.RETRY, code=err.get("code"))
