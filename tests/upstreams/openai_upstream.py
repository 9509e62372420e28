"""A small upstream that speaks OpenAI's wire format, for tests and the benchmark.

Faithful where clients look: ``chat.completion`` objects, SSE chunks framed as
``data: {...}\\n\\n`` ending in ``data: [DONE]\\n\\n``, a usage chunk only when
``stream_options.include_usage`` is set, tool-call deltas, ``n`` > 1, errors as
``{"error": {...}}``, 429 with ``Retry-After``. Also embeddings, completions,
images, speech (binary), transcriptions (multipart), moderations, models, and
Azure's deployment paths (``/openai/deployments/{name}/...``).

Start it::

    from tests.upstreams.openai_upstream import UpstreamState, create_upstream_app
    from tests.conftest import LiveServer
    state = UpstreamState(replies=["Hello there!"])
    server = LiveServer(create_upstream_app(state)).start()   # base URL: server.url + "/v1"

Switches, all on :class:`UpstreamState` (shared by every request) or per
request in a body field ``"x_upstream": {...}`` (it passes through the gateway
untouched) or ``x-upstream-*`` headers (direct calls):

- ``reply`` / ``state.replies``: the text to answer (replies are used in turn,
  then ``state.default_reply``); a reply may be ``{"tool_call": {"name", "arguments"}}``;
- ``fail`` / ``state.failures``: answer with this HTTP status (queue: one per request);
  429 carries ``Retry-After``; 401 is "invalid_api_key"; ``message`` replaces the error's text;
- ``delay``: seconds between stream chunks (slow streams);
- ``wait``: seconds a stream (or a non-stream answer) sends nothing at all, not even its headers
  (a model thinking first);
- ``disconnect_after``: drop the connection after this many content chunks;
- ``malformed``: a 200 whose JSON body is cut short, or a stream whose chunk after
  the first is not JSON (a broken upstream or proxy);
- ``omit_usage``: never report usage (JSON or stream);
- ``state.keys``: when non-empty, only these bearer keys are accepted (401 otherwise).

``state.requests`` records every request (path, headers, body); ``state.cancelled``
counts streams whose client (the gateway) went away before the end, and waiting
answers (``wait``) it left before they came.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

DEFAULT_REPLY = "Hello! This is the test upstream speaking."


@dataclass
class UpstreamState:
    replies: list[Any] = field(default_factory=list)
    default_reply: str = DEFAULT_REPLY
    failures: list[int] = field(default_factory=list)
    delay: float = 0.0
    wait: float = 0.0
    disconnect_after: int | None = None
    omit_usage: bool = False
    keys: set[str] = field(default_factory=set)
    models: list[str] = field(default_factory=lambda: ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"])
    record: bool = True
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    started: int = 0
    finished: int = 0
    cancelled: int = 0

    def next_reply(self) -> Any:
        return self.replies.pop(0) if self.replies else self.default_reply


@dataclass
class Switches:
    reply: Any
    fail: int | None
    delay: float
    disconnect_after: int | None
    omit_usage: bool
    message: str | None = None
    wait: float = 0.0
    malformed: bool = False


def _switches(state: UpstreamState, request: Request, body: dict[str, Any]) -> Switches:
    opts = dict(body.pop("x_upstream", None) or {})
    for name, value in request.headers.items():
        if name.startswith("x-upstream-"):
            key = name[len("x-upstream-"):].replace("-", "_")
            opts[key] = value if key == "reply" else json.loads(value)
    fail = opts.get("fail")
    if fail is None and state.failures:
        fail = state.failures.pop(0)
    return Switches(reply=opts["reply"] if "reply" in opts else None, fail=int(fail) if fail else None,
                    delay=float(opts.get("delay", state.delay)),
                    disconnect_after=opts.get("disconnect_after", state.disconnect_after),
                    omit_usage=bool(opts.get("omit_usage", state.omit_usage)), message=opts.get("message"),
                    wait=float(opts.get("wait", state.wait)), malformed=bool(opts.get("malformed", False)))


def error(status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
          param: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type, "param": param, "code": code}},
                        status_code=status, headers=headers)


def failure(status: int, message: str | None = None) -> JSONResponse:
    if message is not None:
        return error(status, message, type="invalid_request_error" if status < 500 else "server_error")
    if status == 429:
        return error(429, "Rate limit reached for requests", type="requests", code="rate_limit_exceeded",
                     headers={"Retry-After": "1"})
    if status == 401:
        return error(401, "Incorrect API key provided.", code="invalid_api_key")
    if status == 400:
        return error(400, "Invalid value for 'temperature'.", param="temperature", code="invalid_value")
    return error(status, "The server had an error while processing your request.", type="server_error")


def words(text: str) -> list[str]:
    """Split a reply into token-like pieces (a word with its leading space)."""
    pieces: list[str] = []
    for i, word in enumerate(text.split(" ")):
        pieces.append(word if i == 0 else " " + word)
    return [p for p in pieces if p]


def count_prompt(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
        total += len(str(content or "").split()) + 4
    return total + 3


async def _hung_up_within(request: Request, seconds: float) -> bool:
    """Wait ``seconds``; True as soon as the client disconnects meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    return False


def create_upstream_app(state: UpstreamState | None = None) -> Starlette:
    """The upstream as a Starlette app; ``app.state.upstream`` is its :class:`UpstreamState`."""
    state = state or UpstreamState()

    async def read(request: Request) -> tuple[dict[str, Any], Switches | None, Response | None]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return {}, None, error(400, "We could not parse the JSON body of your request.")
        if state.record:
            state.requests.append({"path": request.url.path, "query": dict(request.query_params),
                                   "headers": dict(request.headers), "body": body})
        key = request.headers.get("authorization", "").removeprefix("Bearer ") or request.headers.get("api-key", "")
        if state.keys and key not in state.keys:
            return body, None, failure(401)
        sw = _switches(state, request, body)
        if sw.fail:
            return body, sw, failure(sw.fail, sw.message)
        return body, sw, None

    async def chat(request: Request) -> Response:
        body, sw, refused = await read(request)
        if refused is not None:
            return refused
        assert sw is not None
        if not body.get("messages"):
            return error(400, "Missing required parameter: 'messages'.", param="messages")
        reply = sw.reply if sw.reply is not None else state.next_reply()
        n = int(body.get("n") or 1)
        model = body.get("model", "gpt-4o-mini")
        prompt_tokens = count_prompt(body)
        if body.get("stream"):
            return _Stream(state, body, sw, reply, n, model, prompt_tokens)  # type: ignore[return-value]
        if sw.wait and await _hung_up_within(request, sw.wait):
            state.cancelled += 1  # the client (the gateway) went away while the "model" thought
            return Response(status_code=499)
        if sw.malformed:  # a broken proxy or upstream: 200, JSON content type, not JSON
            return Response(b'{"id": "chatcmpl-broken", "choices": [', media_type="application/json")
        choices = []
        completion = 0
        for i in range(n):
            if isinstance(reply, dict) and "tool_call" in reply:
                call = reply["tool_call"]
                message = {"role": "assistant", "content": None, "tool_calls": [{
                    "id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]}}]}
                finish = "tool_calls"
                completion += len(words(call["arguments"])) + 1
            else:
                message = {"role": "assistant", "content": str(reply), "refusal": None}
                finish = "stop"
                completion += len(words(str(reply)))
            choices.append({"index": i, "message": message, "logprobs": None, "finish_reason": finish})
        data: dict[str, Any] = {"id": "chatcmpl-" + uuid.uuid4().hex, "object": "chat.completion",
                                "created": int(time.time()), "model": model, "choices": choices,
                                "system_fingerprint": "fp_test"}
        if not sw.omit_usage:
            data["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                             "total_tokens": prompt_tokens + completion,
                             "prompt_tokens_details": {"cached_tokens": 0}}
        return JSONResponse(data)

    async def embeddings(request: Request) -> Response:
        body, sw, refused = await read(request)
        if refused is not None:
            return refused
        inputs = body.get("input")
        if inputs is None:
            return error(400, "Missing required parameter: 'input'.", param="input")
        items = inputs if isinstance(inputs, list) and not all(isinstance(i, int) for i in inputs) else [inputs]
        prompt = sum(len(str(i).split()) for i in items)
        data = [{"object": "embedding", "index": i, "embedding": [round(0.1 * (i + k), 3) for k in range(8)]}
                for i, _ in enumerate(items)]
        out: dict[str, Any] = {"object": "list", "data": data, "model": body.get("model")}
        if sw is not None and not sw.omit_usage:
            out["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
        return JSONResponse(out)

    async def completions(request: Request) -> Response:
        body, sw, refused = await read(request)
        if refused is not None:
            return refused
        reply = str(sw.reply if sw and sw.reply is not None else state.next_reply())
        prompt = len(str(body.get("prompt", "")).split())
        if body.get("stream"):
            return _CompletionStream(state, body, sw, reply, int(body.get("n") or 1),  # type: ignore[return-value]
                                     body.get("model"), prompt)
        return JSONResponse({"id": "cmpl-" + uuid.uuid4().hex, "object": "text_completion", "created": int(time.time()),
                             "model": body.get("model"), "choices": [{"text": reply, "index": 0, "logprobs": None,
                                                                      "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": prompt, "completion_tokens": len(words(reply)),
                                       "total_tokens": prompt + len(words(reply))}})

    async def images(request: Request) -> Response:
        body, _, refused = await read(request)
        if refused is not None:
            return refused
        n = int(body.get("n") or 1)
        return JSONResponse({"created": int(time.time()),
                             "data": [{"url": f"https://example.invalid/image-{i}.png"} for i in range(n)]})

    async def speech(request: Request) -> Response:
        body, _, refused = await read(request)
        if refused is not None:
            return refused
        return Response(b"ID3\x03\x00fake-mp3:" + str(body.get("input", "")).encode(), media_type="audio/mpeg")

    async def transcriptions(request: Request) -> Response:
        if state.record:
            state.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": None})
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return error(400, "Missing required parameter: 'file'.", param="file")
        size = len(await upload.read())
        text = f"transcribed {size} bytes with {form.get('model')}"
        if str(form.get("model")).startswith("gpt-4o"):
            # As OpenAI reports the token-priced transcription models' usage.
            audio_tokens = max(1, size // 10)
            return JSONResponse({"text": text, "usage": {
                "type": "tokens", "input_tokens": audio_tokens + 3,
                "input_token_details": {"text_tokens": 3, "audio_tokens": audio_tokens},
                "output_tokens": len(words(text)), "total_tokens": audio_tokens + 3 + len(words(text))}})
        return JSONResponse({"text": text, "usage": {"type": "duration", "seconds": 1}})

    async def moderations(request: Request) -> Response:
        body, _, refused = await read(request)
        if refused is not None:
            return refused
        return JSONResponse({"id": "modr-" + uuid.uuid4().hex, "model": body.get("model"),
                             "results": [{"flagged": False, "categories": {}, "category_scores": {}}]})

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                         "owned_by": "test"} for m in state.models]})

    routes = []
    for prefix in ("/v1", "", "/openai/deployments/{deployment}"):
        routes += [
            Route(prefix + "/chat/completions", chat, methods=["POST"]),
            Route(prefix + "/embeddings", embeddings, methods=["POST"]),
            Route(prefix + "/completions", completions, methods=["POST"]),
            Route(prefix + "/images/generations", images, methods=["POST"]),
            Route(prefix + "/audio/speech", speech, methods=["POST"]),
            Route(prefix + "/audio/transcriptions", transcriptions, methods=["POST"]),
            Route(prefix + "/moderations", moderations, methods=["POST"]),
        ]
    routes += [Route("/v1/models", models, methods=["GET"]), Route("/models", models, methods=["GET"])]
    app = Starlette(routes=routes)
    app.state.upstream = state
    return app


class _Stream(Response):
    """The SSE body of a streamed chat completion, as OpenAI frames it."""

    def __init__(self, state: UpstreamState, body: dict[str, Any], sw: Switches, reply: Any, n: int, model: str,
                 prompt_tokens: int) -> None:
        self.state, self.body, self.sw, self.reply, self.n = state, body, sw, reply, n
        self.model, self.prompt_tokens = model, prompt_tokens
        self.background = None
        self.raw_headers = []

    def chunks(self) -> list[dict[str, Any]]:
        cid, created = "chatcmpl-" + uuid.uuid4().hex, int(time.time())

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            out = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": self.model,
                   "system_fingerprint": "fp_test", "choices": choices}
            if (self.body.get("stream_options") or {}).get("include_usage") and not self.sw.omit_usage:
                out["usage"] = None
            out.update(extra)
            return out

        out, completion = [], 0
        for i in range(self.n):
            out.append(chunk([{"index": i, "delta": {"role": "assistant", "content": "", "refusal": None},
                               "logprobs": None, "finish_reason": None}]))
        if isinstance(self.reply, dict) and "tool_call" in self.reply:
            call = self.reply["tool_call"]
            for i in range(self.n):
                out.append(chunk([{"index": i, "delta": {"tool_calls": [{
                    "index": 0, "id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                    "function": {"name": call["name"], "arguments": ""}}]}, "logprobs": None, "finish_reason": None}]))
                for piece in words(call["arguments"]):
                    completion += 1
                    out.append(chunk([{"index": i, "delta": {"tool_calls": [{"index": 0, "function": {
                        "arguments": piece}}]}, "logprobs": None, "finish_reason": None}]))
            finish = "tool_calls"
        else:
            for piece in words(str(self.reply)):
                for i in range(self.n):
                    completion += 1
                    out.append(chunk([{"index": i, "delta": {"content": piece}, "logprobs": None,
                                       "finish_reason": None}]))
            finish = "stop"
        for i in range(self.n):
            out.append(chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": finish}]))
        if (self.body.get("stream_options") or {}).get("include_usage") and not self.sw.omit_usage:
            out.append(chunk([], usage={"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                                        "total_tokens": self.prompt_tokens + completion,
                                        "prompt_tokens_details": {"cached_tokens": 0},
                                        "completion_tokens_details": {"reasoning_tokens": 0}}))
        return out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        state.started += 1
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.get_running_loop().create_task(watch())
        if self.sw.wait:
            # A model that thinks before it answers: nothing is sent until then, not even headers.
            try:
                await asyncio.wait_for(gone.wait(), self.sw.wait)
                state.cancelled += 1
                watcher.cancel()
                return
            except TimeoutError:
                pass
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8")]})
        try:
            for sent, item in enumerate(self.chunks()):
                if self.sw.disconnect_after is not None and sent >= self.sw.disconnect_after + 1:
                    raise ConnectionAbortedError("x_upstream.disconnect_after: dropping the connection")
                if self.sw.malformed and sent == 2:
                    await send({"type": "http.response.body", "more_body": True, "body": b"data: {not json\n\n"})
                if gone.is_set():
                    state.cancelled += 1
                    return
                await send({"type": "http.response.body", "more_body": True,
                            "body": b"data: " + json.dumps(item, separators=(",", ":")).encode() + b"\n\n"})
                if self.sw.delay:
                    try:
                        await asyncio.wait_for(gone.wait(), self.sw.delay)
                    except TimeoutError:
                        pass
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
            state.finished += 1
        finally:
            watcher.cancel()


class _CompletionStream(_Stream):
    """The SSE body of a streamed legacy completion (``object: text_completion``)."""

    def chunks(self) -> list[dict[str, Any]]:
        cid, created = "cmpl-" + uuid.uuid4().hex, int(time.time())

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return {"id": cid, "object": "text_completion", "created": created, "model": self.model,
                    "choices": choices, **extra}

        out, completion = [], 0
        for piece in words(str(self.reply)):
            for i in range(self.n):
                completion += 1
                out.append(chunk([{"text": piece, "index": i, "logprobs": None, "finish_reason": None}]))
        for i in range(self.n):
            out.append(chunk([{"text": "", "index": i, "logprobs": None, "finish_reason": "stop"}]))
        if (self.body.get("stream_options") or {}).get("include_usage") and not self.sw.omit_usage:
            out.append(chunk([], usage={"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                                        "total_tokens": self.prompt_tokens + completion}))
        return out
