"""What the stand-in models answer, shared by every test upstream.

Each upstream parses its provider's wire format into these neutral turns and
asks :func:`answer`; the reply is a deterministic function of what arrived, so
a test can see through the gateway whether the system prompt, every turn, an
image or a tool result survived translation. :class:`Switches` are the knobs a
test turns on one upstream: fail with a status, rate-limit, slow or cut streams.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Part:
    kind: str  # text | image | tool_call | tool_result
    text: str = ""
    mime: str = ""
    size: int = 0
    name: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    call_id: str = ""


@dataclass
class Turn:
    role: str  # user | assistant
    parts: list[Part]

    def text(self) -> str:
        return " ".join(p.text for p in self.parts if p.kind == "text").strip()


@dataclass
class Reply:
    text: str = ""
    tool_name: str = ""
    tool_args: dict[str, Any] = field(default_factory=dict)
    thinking: str = ""
    stop: str = "end"  # end | length | stop_sequence | tool | blocked
    stop_sequence: str = ""
    input_tokens: int = 0
    output_tokens: int = 0

    def pieces(self) -> list[str]:
        """The reply text as it streams: one word (with its trailing space) at a time."""
        return re.findall(r"\S+\s*", self.text) or ([self.text] if self.text else [])


def words(text: str) -> int:
    return len(text.split())


def answer(system: str, turns: list[Turn], tools: list[str], *, max_tokens: int | None = None,
           stop: list[str] | None = None, thinking: bool = False) -> Reply:
    """The scripted model: answers depend only on what it was sent."""
    last = turns[-1] if turns else Turn("user", [])
    said = last.text()
    reply = Reply()
    results = [p for p in last.parts if p.kind == "tool_result"]
    images = [p for p in last.parts if p.kind == "image"]
    if "trigger:safety" in said:
        reply.stop = "blocked"
    elif results:
        reply.text = f"The tool said: {results[-1].text}."
    elif tools:
        reply.tool_name, reply.tool_args, reply.stop = tools[0], {"location": said}, "tool"
    elif images:
        reply.text = f"I see a {images[0].mime} image of {images[0].size} bytes."
    else:
        turn_no = sum(1 for t in turns if t.role == "user")
        reply.text = f"You said: {said}." + (f" System: {system}." if system else "") + f" Turn {turn_no}."
    if thinking and reply.stop != "blocked":
        reply.thinking = f"Thinking about: {said}"
    for seq in stop or ():
        if seq and seq in reply.text:
            reply.text, reply.stop, reply.stop_sequence = reply.text.split(seq, 1)[0], "stop_sequence", seq
            break
    if max_tokens is not None and words(reply.text) > max_tokens:
        reply.text, reply.stop = " ".join(reply.text.split()[:max_tokens]), "length"
    reply.input_tokens = words(system) + sum(
        words(p.text) + (1 if p.kind == "image" else 0) for t in turns for p in t.parts) + 1
    reply.output_tokens = words(reply.text) + words(reply.thinking) + (5 if reply.tool_name else 0)
    return reply


@dataclass
class Switches:
    """Failure knobs of one upstream, and a record of what it received."""

    fail_status: int | None = None
    fail_times: int = -1  # how many requests fail; -1: every one
    retry_after: int = 1
    chunk_delay: float = 0.0  # seconds between streamed events
    break_after: int | None = None  # cut a stream after this many events
    break_with_error: bool = False  # at the cut, send the provider's in-stream error event instead
    defer: bool = False  # answer later even when asked to wait (Replicate's Prefer: wait running out)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def failing(self) -> int | None:
        if self.fail_status is None or self.fail_times == 0:
            return None
        if self.fail_times > 0:
            self.fail_times -= 1
        return self.fail_status

    def reset(self) -> None:
        self.fail_status, self.fail_times, self.retry_after = None, -1, 1
        self.chunk_delay, self.break_after, self.break_with_error, self.defer = 0.0, None, False, False
        self.requests.clear()

    async def pace(self, sent: int) -> bool:
        """Wait between events; False once the stream should break."""
        if self.break_after is not None and sent >= self.break_after:
            return False
        if self.chunk_delay:
            await asyncio.sleep(self.chunk_delay)
        return True


class BrokenStream(Exception):
    """Raised inside a streaming body to drop the connection mid-stream, as a crashed upstream does."""
