"""Anthropic's Messages API (``POST /v1/messages``), translated to and from OpenAI chat.

Settings: ``anthropic_version`` (header, default below), ``max_tokens`` (the
default when the client sends none: Anthropic requires one), ``beta`` (sent as
``anthropic-beta``). ``reasoning_effort`` (low/medium/high) or a ``thinking``
object turns on extended thinking, which comes back as ``reasoning_content``.
The request/response translation functions are also used by the inbound
``/v1/messages`` endpoint (:mod:`gateway.formats.messages`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx

from gateway.adaptors._chat import (
    OpenAIWriter,
    append_turn,
    bad_request,
    content_parts,
    content_text,
    function_tools,
    loads,
    max_tokens,
    parse_image,
    stop_list,
    tool_arguments,
    tool_call,
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
    transport_errors,
)

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
THINKING_BUDGET = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
          "tool_use": "tool_calls", "refusal": "content_filter", "model_context_window_exceeded": "length"}
# Error types that mean the account, not the request, is the problem.
_FATAL_TYPES = {"authentication_error", "permission_error", "billing_error"}


def to_anthropic(body: dict[str, Any], model: str, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> dict[str, Any]:
    """An OpenAI chat body as an Anthropic Messages body."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []

    add = functools.partial(append_turn, messages)

    for m in body.get("messages") or []:
        if not isinstance(m, dict):
            raise bad_request("each message must be an object", "messages")
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(content_text(m.get("content")))
        elif role == "user":
            add("user", _blocks(m.get("content")))
        elif role == "assistant":
            blocks = _blocks(m.get("content"))
            for call in m.get("tool_calls") or []:
                blocks.append({"type": "tool_use", "id": call.get("id") or "toolu_0",
                               "name": (call.get("function") or {}).get("name", ""), "input": tool_arguments(call)})
            add("assistant", blocks)
        elif role == "tool":
            content = m.get("content")
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.get("tool_call_id") or ""}
            result["content"] = content if isinstance(content, str) else _blocks(content)
            add("user", [result])
        else:
            raise bad_request(f"unknown message role {role!r}", "messages")
    if not messages:
        raise bad_request("at least one user message is required", "messages")
    out: dict[str, Any] = {"model": model, "messages": messages,
                           "max_tokens": max_tokens(body) or default_max_tokens}
    if any(system):
        out["system"] = "\n\n".join(s for s in system if s)
    if stops := stop_list(body):
        out["stop_sequences"] = stops
    for key in ("temperature", "top_p", "top_k"):
        if isinstance(body.get(key), int | float):
            out[key] = min(float(body[key]), 1.0) if key == "temperature" else body[key]
    if tools := function_tools(body):
        out["tools"] = [{"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
                        for t in tools]
        choice = _tool_choice(body.get("tool_choice"))
        if body.get("parallel_tool_calls") is False and choice.get("type") != "none":
            choice["disable_parallel_tool_use"] = True
        out["tool_choice"] = choice
    thinking = body.get("thinking")
    effort = body.get("reasoning_effort")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive", "disabled"):
        out["thinking"] = thinking
    elif effort in THINKING_BUDGET:
        out["thinking"] = {"type": "enabled", "budget_tokens": THINKING_BUDGET[effort]}
    if (out.get("thinking") or {}).get("type") == "enabled":
        # The budget counts against max_tokens, and thinking refuses a set temperature.
        out["max_tokens"] = with_thinking_room(out["max_tokens"], out["thinking"])
        out.pop("temperature", None)
        out.pop("top_k", None)
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"][:256]}
    _structured(body, out)
    return out


# Claude has no JSON mode: a json_schema response_format becomes one tool the model must call,
# whose input is the answer (Anthropic's own advice); its input is handed back as the message text.
STRUCTURED_TOOL = "structured_output"


def structured(body: dict[str, Any]) -> bool:
    """Whether ``body``'s answer comes back through :data:`STRUCTURED_TOOL` (see :func:`to_anthropic`)."""
    fmt = body.get("response_format")
    return (isinstance(fmt, dict) and fmt.get("type") == "json_schema"
            and isinstance((fmt.get("json_schema") or {}).get("schema"), dict) and not function_tools(body))


def _structured(body: dict[str, Any], out: dict[str, Any]) -> None:
    fmt = body.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") not in ("json_schema", "json_object"):
        return
    if not structured(body):
        # json_object (or a schema beside the client's own tools): ask for it in words.
        out["system"] = "\n\n".join(filter(None, [out.get("system"), "Answer with one JSON object and nothing else."]))
        return
    spec = fmt["json_schema"]
    out["tools"] = [{"name": STRUCTURED_TOOL, "input_schema": spec["schema"],
                     "description": spec.get("description") or f"Give the answer as {spec.get('name') or 'JSON'}."}]
    # Thinking cannot be combined with a forced tool: then the model is told to use it instead.
    forced = (out.get("thinking") or {}).get("type") not in ("enabled", "adaptive")
    out["tool_choice"] = {"type": "tool", "name": STRUCTURED_TOOL} if forced else {"type": "auto"}
    if not forced:
        out["system"] = "\n\n".join(filter(None, [out.get("system"),
                                                   f"Answer by calling the {STRUCTURED_TOOL} tool."]))


def with_thinking_room(limit: int, thinking: dict[str, Any]) -> int:
    """``max_tokens`` raised to leave 1,024 tokens of answer beside a thinking budget."""
    budget = thinking.get("budget_tokens")
    budget = budget if isinstance(budget, int) and not isinstance(budget, bool) and budget > 0 else 0
    return max(limit, budget + 1024)


def sent_max_tokens(body: dict[str, Any], default_max_tokens: int = DEFAULT_MAX_TOKENS) -> int:
    """The ``max_tokens`` :func:`to_anthropic` sends for an OpenAI chat ``body``."""
    limit = max_tokens(body) or default_max_tokens
    thinking = body.get("thinking")
    effort = body.get("reasoning_effort")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive", "disabled"):
        return with_thinking_room(limit, thinking) if thinking.get("type") == "enabled" else limit
    if effort in THINKING_BUDGET:
        return with_thinking_room(limit, {"budget_tokens": THINKING_BUDGET[effort]})
    return limit


def _blocks(content: Any) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in content_parts(content):
        kind = part.get("type")
        if kind in ("text", "input_text"):
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            image = parse_image(part)
            source = ({"type": "base64", "media_type": image.mime, "data": image.b64} if image.data is not None
                      else {"type": "url", "url": image.url})
            blocks.append({"type": "image", "source": source})
        else:
            raise bad_request(f"content parts of type {kind!r} are not supported by Anthropic", "messages")
    return blocks


def _tool_choice(choice: Any) -> dict[str, Any]:
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
        return {"type": "tool", "name": choice["function"]["name"]}
    return {"type": "auto"}


def usage_of(data: dict[str, Any] | None) -> Usage:
    data = data or {}
    cached = _count(data.get("cache_read_input_tokens"))
    written = _count(data.get("cache_creation_input_tokens"))
    # The split by cache lifetime, when given; otherwise every write is a 5-minute one.
    split = data.get("cache_creation") if isinstance(data.get("cache_creation"), dict) else {}
    written_1h = min(_count(split.get("ephemeral_1h_input_tokens")), written)
    prompt = _count(data.get("input_tokens")) + cached + written
    return Usage(prompt_tokens=prompt, completion_tokens=_count(data.get("output_tokens")), cached_tokens=cached,
                 cache_write_tokens=written - written_1h, cache_write_1h_tokens=written_1h)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def from_anthropic(data: dict[str, Any], writer: OpenAIWriter, *, structured: bool = False) -> dict[str, Any]:
    """A Messages API response as a ``chat.completion`` (``structured``: the answer is the forced tool's input)."""
    text, reasoning, calls = [], [], []
    finish = FINISH.get(data.get("stop_reason") or "", "stop")
    for block in data.get("content") or []:
        if block.get("type") == "text":
            text.append(block.get("text", ""))
        elif block.get("type") == "thinking":
            reasoning.append(block.get("thinking", ""))
        elif block.get("type") == "tool_use" and structured and block.get("name") == STRUCTURED_TOOL:
            text = [json.dumps(block.get("input") or {}, ensure_ascii=False)]  # the answer, whatever text preceded it
            finish = "stop"
        elif block.get("type") == "tool_use":
            calls.append(tool_call(block.get("id", ""), block.get("name", ""), block.get("input") or {}))
    return writer.completion(text="".join(text), tool_calls=calls, reasoning="".join(reasoning),
                             finish_reason=finish, usage=usage_of(data.get("usage")))


def failure(status: int, content: bytes, headers: httpx.Headers) -> UpstreamFailure:
    """Anthropic's ``{"type": "error", "error": {"type", "message"}}`` as an :class:`UpstreamFailure`."""
    try:
        err = json.loads(content).get("error") or {}
    except (ValueError, AttributeError):
        err = {}
    kind_name = err.get("type") or ""
    message = err.get("message") or content.decode("utf-8", "replace")[:300] or f"HTTP {status}"
    if kind_name in _FATAL_TYPES or status in (401, 402, 403) or "credit balance" in message:
        kind = FailureKind.FATAL
    elif status in (408, 409, 429) or status >= 500:
        kind = FailureKind.RETRY
    else:
        kind = FailureKind.CLIENT
    retry_after = headers.get("retry-after")
    return UpstreamFailure(f"Anthropic: {message}", kind=kind, status=status,
                           retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
                           code=kind_name or None, error_type="invalid_request_error")


class AnthropicAdaptor(Adaptor):
    name = "anthropic"
    default_base_url = "https://api.anthropic.com"
    supports: ClassVar[frozenset[str]] = frozenset({CHAT})

    @classmethod
    def output_limit(cls, body: dict[str, Any]) -> int:
        # Anthropic answers once (no ``n``); thinking may raise the limit past the client's.
        return sent_max_tokens(body)

    def __init__(self, channel: ChannelConfig, http: httpx.AsyncClient) -> None:
        super().__init__(channel, http)
        self.url = self.base_url.removesuffix("/v1") + "/v1/messages"
        self.headers = {"x-api-key": channel.key,
                        "anthropic-version": str(channel.settings.get("anthropic_version") or API_VERSION)}
        if channel.settings.get("beta"):
            self.headers["anthropic-beta"] = str(channel.settings["beta"])
        self.default_max_tokens = int(channel.settings.get("max_tokens") or DEFAULT_MAX_TOKENS)

    def build(self, request: ChatRequest) -> dict[str, Any]:
        return to_anthropic(request.body, request.upstream_model, self.default_max_tokens)

    async def complete(self, request: ChatRequest) -> ChatResult:
        data = await self.send_native(self.build(request))
        body = from_anthropic(data, OpenAIWriter(request.model, request.request_id), structured=structured(request.body))
        return ChatResult(body=body, usage=usage_of(data.get("usage")))

    def client_headers(self, version: str | None, beta: str | None) -> dict[str, str]:
        """The channel's headers with a Messages client's own ``anthropic-version`` and ``anthropic-beta``.

        Claude Code turns features on with betas (interleaved thinking, context
        management...): they are added to the channel's own, not put in their place.
        """
        headers = dict(self.headers)
        if version and version.strip():
            headers["anthropic-version"] = version.strip()[:64]
        betas = [b.strip() for part in (self.headers.get("anthropic-beta"), beta) if part for b in part.split(",")]
        if betas:
            headers["anthropic-beta"] = ",".join(dict.fromkeys(b for b in betas if b))[:2000]
        return headers

    async def send_native(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        """POST an Anthropic body as is; the Anthropic-shaped answer (used by ``/v1/messages`` too)."""
        with transport_errors():
            response = await self.http.post(self.url, json=dict(body, stream=False), headers=headers or self.headers)
            content = await response.aread()
        if response.status_code >= 400:
            raise failure(response.status_code, content, response.headers)
        data = loads(content, "Anthropic's answer")
        if not isinstance(data, dict):
            raise UpstreamFailure("Anthropic answered with JSON that is not an object", kind=FailureKind.RETRY)
        return data

    async def stream_native(self, body: dict[str, Any],
                            headers: dict[str, str] | None = None) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Anthropic's own ``(event, data)`` stream; an ``error`` event raises."""
        with transport_errors():
            async with self.http.stream("POST", self.url, json=dict(body, stream=True),
                                        headers=headers or self.headers) as response:
                if response.status_code >= 400:
                    raise failure(response.status_code, await response.aread(), response.headers)
                async for event, raw in sse_events(response):
                    data = loads(raw, "an Anthropic stream event")
                    if event == "error" or data.get("type") == "error":
                        err = data.get("error") or {}
                        status = 529 if err.get("type") == "overloaded_error" else 500
                        raise UpstreamFailure(f"Anthropic: {err.get('message') or 'stream error'}",
                                              kind=FailureKind.RETRY, status=status, code=err.get("type"))
                    yield event, data
                    if event == "message_stop":
                        return
        raise UpstreamFailure("Anthropic's stream ended before message_stop", kind=FailureKind.RETRY)

    async def stream(self, request: ChatRequest) -> AsyncIterator[dict[str, Any]]:
        writer = OpenAIWriter(request.model, request.request_id)
        usage: dict[str, Any] = {}
        tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index
        answer_block: int | None = None  # the forced structured-output tool's block: its JSON is the text
        as_answer = structured(request.body)
        finish = "stop"
        async for event, data in self.stream_native(self.build(request)):
            if event == "message_start":
                usage.update((data.get("message") or {}).get("usage") or {})
                yield writer.chunk({"role": "assistant", "content": ""})
            elif event == "content_block_start":
                block = data.get("content_block") or {}
                if block.get("type") == "tool_use" and as_answer and block.get("name") == STRUCTURED_TOOL:
                    answer_block = data.get("index", 0)
                elif block.get("type") == "tool_use":
                    index = tool_index[data.get("index", 0)] = len(tool_index)
                    yield writer.chunk({"tool_calls": [dict(tool_call(block.get("id", ""), block.get("name", ""), ""),
                                                            index=index)]})
            elif event == "content_block_delta":
                delta = data.get("delta") or {}
                kind = delta.get("type")
                if kind == "text_delta":
                    yield writer.chunk({"content": delta.get("text", "")})
                elif kind == "thinking_delta":
                    yield writer.chunk({"reasoning_content": delta.get("thinking", "")})
                elif kind == "input_json_delta" and data.get("index", 0) == answer_block:
                    yield writer.chunk({"content": delta.get("partial_json", "")})
                elif kind == "input_json_delta" and data.get("index", 0) in tool_index:
                    yield writer.chunk({"tool_calls": [{"index": tool_index[data.get("index", 0)],
                                                        "function": {"arguments": delta.get("partial_json", "")}}]})
            elif event == "message_delta":
                usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
                finish = FINISH.get((data.get("delta") or {}).get("stop_reason") or "", "stop")
                if answer_block is not None and finish == "tool_calls":
                    finish = "stop"  # the forced tool was the answer, not a call for the client
            elif event == "message_stop":
                yield writer.chunk({}, finish)
                yield writer.usage_chunk(usage_of(usage))
