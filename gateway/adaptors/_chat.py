"""OpenAI chat shapes shared by the adaptors that translate to another wire format.

Reading: a client's messages (text, ``image_url`` parts incl. data URLs, tool
calls, tool results). Writing: ``chat.completion`` objects and
``chat.completion.chunk`` dicts, with ``reasoning_content`` for thinking output
and a final usage-only chunk, as :mod:`gateway.adaptors.base` expects.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any

from gateway.adaptors.base import FailureKind, UpstreamFailure, Usage


def bad_request(message: str, param: str | None = None) -> UpstreamFailure:
    """A request this provider cannot take: the client hears why, the channel stays healthy."""
    return UpstreamFailure(message, kind=FailureKind.CLIENT, status=400, param=param,
                           error_type="invalid_request_error")


@dataclass(frozen=True)
class Image:
    """An ``image_url`` part: inline bytes (from a data URL) or a remote URL."""

    url: str
    mime: str = ""
    data: bytes | None = None

    @property
    def b64(self) -> str:
        return base64.b64encode(self.data or b"").decode()


def parse_image(part: dict[str, Any]) -> Image:
    raw = part.get("image_url")
    url = raw.get("url") if isinstance(raw, dict) else raw
    if not isinstance(url, str) or not url:
        raise bad_request("an image_url part needs a url", "messages")
    if not url.startswith("data:"):
        return Image(url=url, mime=_guess_mime(url))
    head, _, payload = url.partition(",")
    mime = head[5:].split(";")[0] or "application/octet-stream"
    try:
        data = base64.b64decode(payload, validate=True) if ";base64" in head else payload.encode()
    except (binascii.Error, ValueError):
        raise bad_request("an image data URL is not valid base64", "messages") from None
    return Image(url=url, mime=mime, data=data)


def _guess_mime(url: str) -> str:
    path = url.split("?", 1)[0].lower()
    for ext, mime in ((".png", "image/png"), (".gif", "image/gif"), (".webp", "image/webp")):
        if path.endswith(ext):
            return mime
    return "image/jpeg"


def content_parts(content: Any) -> list[dict[str, Any]]:
    """A message's content as a list of OpenAI parts (a plain string is one text part)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [p for p in content if isinstance(p, dict)]
    raise bad_request("message content must be a string or a list of parts", "messages")


def content_text(content: Any) -> str:
    """The text of a message's content, image parts dropped."""
    return "".join(p.get("text", "") for p in content_parts(content) if p.get("type") in ("text", "input_text"))


def append_turn(turns: list[dict[str, Any]], role: str, items: list[dict[str, Any]], key: str = "content") -> None:
    """Add a turn, merged into the previous one of the same role.

    Anthropic, Gemini and Bedrock want user and assistant turns to alternate
    (OpenAI allows neighbours of one role); empty turns are dropped.
    """
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    elif items:
        turns.append({"role": role, key: items})


def tool_arguments(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call's ``arguments`` string as an object (providers other than OpenAI want JSON, not text)."""
    raw = (call.get("function") or {}).get("arguments") or "{}"
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {"arguments": raw}
    return value if isinstance(value, dict) else {"value": value}


def stop_list(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if isinstance(stop, str):
        return [stop]
    return [s for s in stop or [] if isinstance(s, str) and s]


def max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return int(value) if isinstance(value, int | float) and value > 0 else None


def function_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The client's function tools as ``{"name", "description", "parameters"}``."""
    out = []
    for tool in body.get("tools") or []:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not fn.get("name"):
            raise bad_request("each tool needs a function with a name", "tools")
        out.append({"name": fn["name"], "description": fn.get("description") or "",
                    "parameters": fn.get("parameters") or {"type": "object", "properties": {}}})
    return out


class OpenAIWriter:
    """Builds the OpenAI-shaped answer for one request, streamed or whole."""

    def __init__(self, model: str, request_id: str) -> None:
        self.id = "chatcmpl-" + (request_id or uuid.uuid4().hex)[:32]
        self.model = model
        self.created = int(time.time())

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    def usage_chunk(self, usage: Usage) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": usage.to_openai()}

    def completion(self, *, text: str, tool_calls: list[dict[str, Any]], reasoning: str, finish_reason: str,
                   usage: Usage | None) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not tool_calls else None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        if reasoning:
            message["reasoning_content"] = reasoning
        out: dict[str, Any] = {"id": self.id, "object": "chat.completion", "created": self.created,
                               "model": self.model,
                               "choices": [{"index": 0, "message": message, "finish_reason": finish_reason,
                                            "logprobs": None}]}
        if usage is not None:
            out["usage"] = usage.to_openai()
        return out


def tool_call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {"id": call_id or "call_" + uuid.uuid4().hex[:24], "type": "function",
            "function": {"name": name, "arguments": args}}


def loads(data: str | bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise UpstreamFailure(f"{what} is not JSON: {str(data)[:200]}", kind=FailureKind.RETRY) from None


def embedding_as_requested(vector: list[float], encoding_format: Any) -> list[float] | str:
    """One embedding as the client asked for it: floats, or OpenAI's ``base64`` (little-endian float32).

    The Node SDK asks for base64 by default; handing it floats instead gives
    vectors that are silently wrong, so every adaptor that builds embeddings
    itself goes through here.
    """
    if encoding_format != "base64":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
