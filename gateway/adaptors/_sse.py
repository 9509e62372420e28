"""Cutting an OpenAI-style SSE byte stream into its ``data:`` payloads, without parsing them.

A stream's chunks mostly reach the client unchanged, so the OpenAI adaptor hands
the relay each payload as the upstream's own bytes (see
:meth:`gateway.adaptors.base.Adaptor.stream_raw`); only the few chunks billing
needs (usage, a finish reason) are ever parsed. What is checked here is what
every chunk needs: the framing, the end (``[DONE]``), an ``error`` event, and
that a payload at least looks like a JSON object.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.adaptors.base import FailureKind, UpstreamFailure


class SSEPayloads:
    """Feed it network reads; it returns the complete events' payloads (a list per read)."""

    def __init__(self) -> None:
        self._rest = b""
        self.done = False  # ``data: [DONE]`` seen: ignore anything after it

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
        out: list[bytes] = []
        for event in events:
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
