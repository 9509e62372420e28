"""Replicate's predictions API: create (``Prefer: wait``), then poll, or stream its SSE ``urls.stream``.

A chat maps onto a language model's input: the system prompt to
``system_prompt``; one user turn to ``prompt`` as is, a longer conversation to a
``User:``/``Assistant:`` transcript ending in ``Assistant:``; the first image to
``image`` (a URL or data URL); ``max_tokens``, ``temperature``, ``top_p`` and
``stop_sequences`` (comma-separated). Model names are ``owner/name`` or
``owner/name:version``. No tools: Replicate has no function-calling protocol.
Settings: ``poll_seconds`` (most time to wait for a prediction, default 300).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx

from gateway.adaptors._chat import (
    OpenAIWriter,
    bad_request,
    content_parts,
    content_text,
    loads,
    max_tokens,
    parse_image,
    stop_list,
)
from gateway.adaptors._sse import sse_events
from gateway.adaptors.base import (
    CHAT,
    Adaptor,
    ChannelConfig,
    ChatRequest,
    ChatResult,
    FailureKind,
    UpstreamFailure,
    Usage,
    raise_for_status,
    transport_errors,
)

TERMINAL = {"succeeded", "failed", "canceled", "aborted"}
_FLAGGED = ("sensitive", "nsfw", "flagged", "safety")


def to_input(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("tools"):
        raise bad_request("Replicate channels do not support tools (function calling)", "tools")
    system, turns, image = [], [], None
    for m in body.get("messages") or []:
        role = m.get("role") if isinstance(m, dict) else None
        if role in ("system", "developer"):
            system.append(content_text(m.get("content")))
            continue
        if role not in ("user", "assistant"):
            raise bad_request(f"Replicate channels take user and assistant messages, not {role!r}", "messages")
        for part in content_parts(m.get("content")):
            if part.get("type") == "image_url" and image is None:
                image = parse_image(part).url
        turns.append((role, content_text(m.get("content"))))
    if not turns:
        raise bad_request("at least one user message is required", "messages")
    if len(turns) == 1:
        prompt = turns[0][1]
    else:
        prompt = "\n".join(f"{'User' if r == 'user' else 'Assistant'}: {t}" for r, t in turns) + "\nAssistant:"
    out: dict[str, Any] = {"prompt": prompt}
    if any(system):
        out["system_prompt"] = "\n\n".join(s for s in system if s)
    if image:
        out["image"] = image
    if limit := max_tokens(body):
        out["max_tokens"] = limit
    for key in ("temperature", "top_p", "seed"):
        if isinstance(body.get(key), int | float):
            out[key] = body[key]
    if stops := stop_list(body):
        out["stop_sequences"] = ",".join(stops)
    return out


def output_text(output: Any) -> str:
    if isinstance(output, list):
        return "".join(str(o) for o in output)
    return "" if output is None else str(output)


def usage_of(prediction: dict[str, Any], inp: dict[str, Any], text: str) -> Usage:
    metrics = prediction.get("metrics") or {}
    if "input_token_count" in metrics or "output_token_count" in metrics:
        return Usage(prompt_tokens=int(metrics.get("input_token_count") or 0),
                     completion_tokens=int(metrics.get("output_token_count") or 0))
    # Not every model reports tokens: then about four characters a token.
    prompt = len(inp.get("prompt", "")) + len(inp.get("system_prompt", ""))
    return Usage(prompt_tokens=math.ceil(prompt / 4), completion_tokens=math.ceil(len(text) / 4))


def _hit_limit(inp: dict[str, Any], usage: Usage) -> bool:
    """Replicate says nothing of truncation: an answer as long as max_tokens was cut by it."""
    return bool(inp.get("max_tokens")) and usage.completion_tokens >= inp["max_tokens"]


class ReplicateAdaptor(Adaptor):
    name = "replicate"
    default_base_url = "https://api.replicate.com"
    supports: ClassVar[frozenset[str]] = frozenset({CHAT})

    def __init__(self, channel: ChannelConfig, http: httpx.AsyncClient) -> None:
        super().__init__(channel, http)
        self.api = self.base_url.removesuffix("/v1") + "/v1"
        self.headers = {"Authorization": f"Bearer {channel.key}"}
        self.deadline = float(channel.settings.get("poll_seconds") or 300)

    async def _create(self, model: str, inp: dict[str, Any], *, stream: bool) -> dict[str, Any]:
        owner_name, _, version = model.partition(":")
        if version:
            url, body = f"{self.api}/predictions", {"version": version, "input": inp}
        elif owner_name.count("/") == 1:
            url, body = f"{self.api}/models/{owner_name}/predictions", {"input": inp}
        else:
            raise bad_request(f"Replicate models are named owner/name or owner/name:version, not {model!r}", "model")
        if stream:
            body["stream"] = True
        headers = self.headers if stream else self.headers | {"Prefer": "wait"}
        with transport_errors():
            response = await self.http.post(url, json=body, headers=headers)
            await raise_for_status(response)
            return loads(await response.aread(), "Replicate's prediction")

    async def _get(self, prediction: dict[str, Any]) -> dict[str, Any]:
        url = (prediction.get("urls") or {}).get("get") or f"{self.api}/predictions/{prediction.get('id')}"
        with transport_errors():
            response = await self.http.get(url, headers=self.headers)
            await raise_for_status(response)
            return loads(await response.aread(), "Replicate's prediction")

    @staticmethod
    def _failed(prediction: dict[str, Any]) -> str | None:
        """None when it succeeded; "content_filter" when it was flagged; raises otherwise."""
        status = prediction.get("status")
        if status == "succeeded":
            return None
        message = str(prediction.get("error") or status)
        if any(word in message.lower() for word in _FLAGGED):
            return "content_filter"
        raise UpstreamFailure(f"Replicate prediction {status}: {message}", kind=FailureKind.RETRY, status=500)

    async def complete(self, request: ChatRequest) -> ChatResult:
        inp = to_input(request.body)
        prediction = await self._create(request.upstream_model, inp, stream=False)
        delay, until = 0.1, time.monotonic() + self.deadline
        while prediction.get("status") not in TERMINAL:
            if time.monotonic() > until:
                raise UpstreamFailure("the Replicate prediction timed out", kind=FailureKind.RETRY)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
            prediction = await self._get(prediction)
        finish = self._failed(prediction) or "stop"
        text = "" if finish == "content_filter" else output_text(prediction.get("output"))
        usage = usage_of(prediction, inp, text)
        if finish == "stop" and _hit_limit(inp, usage):
            finish = "length"
        body = OpenAIWriter(request.model, request.request_id).completion(
            text=text, tool_calls=[], reasoning="", finish_reason=finish, usage=usage)
        return ChatResult(body=body, usage=usage)

    async def stream(self, request: ChatRequest) -> AsyncIterator[dict[str, Any]]:
        writer = OpenAIWriter(request.model, request.request_id)
        inp = to_input(request.body)
        prediction = await self._create(request.upstream_model, inp, stream=True)
        url = (prediction.get("urls") or {}).get("stream")
        if not url:
            raise bad_request(f"the Replicate model {request.upstream_model} cannot stream", "stream")
        text: list[str] = []
        finish: str | None = None
        with transport_errors():
            async with self.http.stream("GET", url, headers=self.headers | {"Accept": "text/event-stream",
                                                                           "Cache-Control": "no-store"}) as response:
                await raise_for_status(response)
                yield writer.chunk({"role": "assistant", "content": ""})
                async for event, data in sse_events(response):
                    if event == "output":
                        text.append(data)
                        yield writer.chunk({"content": data})
                    elif event == "error":
                        detail = (loads(data, "a Replicate error event") or {}).get("detail") or data
                        if any(word in str(detail).lower() for word in _FLAGGED):
                            finish = "content_filter"
                            break
                        raise UpstreamFailure(f"Replicate: {detail}", kind=FailureKind.RETRY, status=500)
                    elif event == "done":
                        reason = (loads(data or "{}", "a Replicate done event") or {}).get("reason")
                        if reason in ("canceled", "error"):
                            raise UpstreamFailure(f"Replicate prediction {reason}", kind=FailureKind.RETRY, status=500)
                        finish = "stop"
                        break
        if finish is None:
            raise UpstreamFailure("Replicate's stream ended before done", kind=FailureKind.RETRY)
        try:
            prediction = await self._get(prediction)
        except UpstreamFailure:
            prediction = {}  # the answer arrived; bill it by estimate rather than lose it
        usage = usage_of(prediction, inp, "".join(text))
        yield writer.chunk({}, "length" if finish == "stop" and _hit_limit(inp, usage) else finish)
        yield writer.usage_chunk(usage)
