"""OpenAI's wire format, and the providers that speak it (Groq, DeepSeek).

Bodies pass through untouched apart from ``model`` and, for streams,
``stream_options.include_usage`` (so usage can be billed exactly).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx

from gateway import http_client
from gateway.adaptors._sse import SSEPayloads, parse_payload
from gateway.adaptors.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    IMAGES,
    MODERATIONS,
    SPEECH,
    TRANSCRIPTIONS,
    Adaptor,
    ChannelConfig,
    ChatRequest,
    ChatResult,
    FailureKind,
    ForwardRequest,
    ForwardResult,
    JSONRequest,
    JSONResult,
    RawChunk,
    UpstreamFailure,
    Usage,
    body_reads,
    raise_for_status,
    read_all,
    transport_errors,
)


class OpenAIAdaptor(Adaptor):
    name = "openai"
    raw_sse = True
    limit_field = "max_completion_tokens"  # OpenAI's reasoning models refuse max_tokens
    default_base_url = "https://api.openai.com/v1"
    supports: ClassVar[frozenset[str]] = frozenset(
        {CHAT, EMBEDDINGS, COMPLETIONS, IMAGES, SPEECH, TRANSCRIPTIONS, MODERATIONS})

    def __init__(self, channel: ChannelConfig, http: httpx.AsyncClient) -> None:
        super().__init__(channel, http)
        self.headers = self.auth_headers()

    def auth_headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.channel.key}"}
        organization = self.channel.settings.get("organization")
        if organization:
            headers["OpenAI-Organization"] = str(organization)
        return headers

    def url(self, path: str, upstream_model: str) -> str:
        """Where ``path`` (``/chat/completions``...) lives on this upstream for this model."""
        return self.base_url + path

    async def complete(self, request: ChatRequest) -> ChatResult:
        body = dict(request.body)
        body["stream"] = False
        body.pop("stream_options", None)
        data = await self._post_json(self.url("/chat/completions", request.upstream_model), body, request.request_id)
        return ChatResult(body=data, usage=Usage.from_openai(data.get("usage")))

    def stream(self, request: ChatRequest) -> AsyncIterator[dict[str, Any]]:
        return self._chunks(self.stream_raw(request, CHAT))

    def stream_completion(self, request: JSONRequest) -> AsyncIterator[dict[str, Any]]:
        return self._chunks(self.stream_raw(request, COMPLETIONS))

    @staticmethod
    async def _chunks(payloads: AsyncIterator[list[bytes]]) -> AsyncIterator[dict[str, Any]]:
        try:
            async for read in payloads:
                for data in read:
                    yield RawChunk(parse_payload(data), data)
        finally:
            await payloads.aclose()  # type: ignore[attr-defined]

    async def stream_raw(self, request: ChatRequest | JSONRequest, endpoint: str) -> AsyncIterator[list[bytes]]:
        body = dict(request.body)
        body["stream"] = True
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        path = "/completions" if endpoint == COMPLETIONS else "/chat/completions"
        events = SSEPayloads()
        with transport_errors():
            response = await http_client.send(self.http, "POST", self.url(path, request.upstream_model),
                                              content=_encode(body), headers=self._headers(request.request_id))
            try:
                await raise_for_status(response)
                async for block in body_reads(response):
                    payloads = events.feed(block)
                    if payloads:
                        yield payloads
                    if events.done:
                        return
            finally:
                await response.aclose()

    async def embed(self, request: JSONRequest) -> JSONResult:
        data = await self._post_json(self.url("/embeddings", request.upstream_model), request.body, request.request_id)
        return JSONResult(body=data, usage=Usage.from_openai(data.get("usage")))

    async def forward(self, request: ForwardRequest) -> ForwardResult:
        headers = self._headers(request.request_id) | {"Content-Type": request.content_type}
        with transport_errors():
            response = await self.http.post(self.url(request.path, request.upstream_model), content=request.content, headers=headers)
            await raise_for_status(response)
            content = await response.aread()
        content_type = response.headers.get("content-type", "application/octet-stream")
        usage = None
        if content_type.startswith("application/json"):
            try:
                usage = Usage.from_openai(json.loads(content).get("usage"))
            except (ValueError, AttributeError):
                usage = None
        return ForwardResult(status=response.status_code, content=content, content_type=content_type, usage=usage)

    def _headers(self, request_id: str) -> dict[str, str]:
        return self.headers | {"Content-Type": "application/json", "X-Request-Id": request_id}

    async def _post_json(self, url: str, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        with transport_errors():
            response = await http_client.send(self.http, "POST", url, content=_encode(body),
                                              headers=self._headers(request_id))
            try:
                await raise_for_status(response)
                content = await read_all(response)
            finally:
                await response.aclose()
        try:
            data = json.loads(content)
        except ValueError:
            raise UpstreamFailure("the upstream answered with something that is not JSON",
                                  kind=FailureKind.RETRY, status=response.status_code) from None
        if not isinstance(data, dict):
            raise UpstreamFailure("the upstream answered with JSON that is not an object", kind=FailureKind.RETRY)
        return RawChunk(data, content)


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class GroqAdaptor(OpenAIAdaptor):
    name = "groq"
    default_base_url = "https://api.groq.com/openai/v1"
    supports: ClassVar[frozenset[str]] = frozenset({CHAT, TRANSCRIPTIONS})


class DeepSeekAdaptor(OpenAIAdaptor):
    name = "deepseek"
    limit_field = "max_tokens"  # DeepSeek documents only max_tokens
    default_base_url = "https://api.deepseek.com/v1"
    supports: ClassVar[frozenset[str]] = frozenset({CHAT, COMPLETIONS})
