"""A stand-in for Replicate's predictions API.

Built from Replicate's HTTP API docs: ``POST /v1/models/{owner}/{name}/predictions``
(and ``POST /v1/predictions`` with a ``version``), ``Prefer: wait`` for a
synchronous answer, ``GET /v1/predictions/{id}`` to poll (``starting`` ->
``processing`` -> ``succeeded``/``failed``), ``POST .../cancel``, and the SSE
``urls.stream`` (``event: output`` / ``done`` / ``error``, each with an ``id``).
Language models take ``prompt``, ``system_prompt``, ``max_tokens``,
``stop_sequences`` (comma-separated) and an optional ``image``; ``output`` is a
list of string pieces; ``metrics`` counts tokens. Errors are problem+json
(``{"title", "detail", "status"}``). The ``replicate`` SDK drives it in the tests.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.providers.script import BrokenStream, Part, Reply, Switches, Turn, answer

TOKEN = "r8_test_token"
TITLES = {400: "Bad request", 401: "Unauthenticated", 402: "Payment required", 404: "Not found",
          422: "Input validation failed", 429: "Request was throttled", 500: "Internal server error"}
_TURN = re.compile(r"^(User|Assistant):[ ]?", re.MULTILINE)


@dataclass
class Prediction:
    id: str
    model: str
    input: dict[str, Any]
    reply: Reply
    polls: int = 0
    status: str = "starting"
    data: dict[str, Any] = field(default_factory=dict)


def error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"title": TITLES.get(status, "Error"), "detail": detail, "status": status},
                        status_code=status, headers=headers, media_type="application/problem+json")


def _turns(prompt: str, image: str | None) -> list[Turn]:
    """A transcript of ``User:``/``Assistant:`` lines is several turns; anything else is one."""
    pieces = _TURN.split(prompt)
    turns: list[Turn] = []
    if len(pieces) == 1:
        turns = [Turn("user", [Part("text", text=prompt.strip())])]
    else:
        for role, text in zip(pieces[1::2], pieces[2::2], strict=True):
            if text.strip():
                turns.append(Turn("user" if role == "User" else "assistant", [Part("text", text=text.strip())]))
    if image and turns:
        head, _, data = image.partition(",")
        mime = head[5:].split(";")[0] if image.startswith("data:") else "url"
        turns[-1].parts.append(Part("image", mime=mime, size=len(base64.b64decode(data)) if data else 0))
    return turns


def create_app(switches: Switches | None = None) -> Starlette:
    switches = switches or Switches()
    predictions: dict[str, Prediction] = {}

    def view(p: Prediction, base: str) -> dict[str, Any]:
        done = p.status == "succeeded"
        out: dict[str, Any] = {
            "id": p.id, "model": p.model, "version": "v" + "0" * 12, "input": p.input, "logs": "",
            "output": p.reply.pieces() if done else (p.reply.pieces()[:1] if p.status == "processing" else None),
            "data_removed": False, "error": p.data.get("error"), "status": p.status,
            "created_at": "2025-01-01T00:00:00.000Z", "started_at": None, "completed_at": None,
            "urls": {"get": f"{base}/v1/predictions/{p.id}", "cancel": f"{base}/v1/predictions/{p.id}/cancel",
                     "stream": f"{base}/v1/stream/{p.id}", "web": f"https://replicate.com/p/{p.id}"},
        }
        if p.status in ("succeeded", "failed"):
            out["completed_at"] = "2025-01-01T00:00:01.000Z"
            out["metrics"] = {"predict_time": 0.01, "input_token_count": p.reply.input_tokens,
                              "output_token_count": p.reply.output_tokens}
        return out

    def finish(p: Prediction) -> None:
        if p.reply.stop == "blocked":
            p.status, p.data["error"] = "failed", "The input or output was flagged as sensitive. (E005)"
        else:
            p.status = "succeeded"

    async def create(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return error(401, "You did not pass a valid authentication token")
        try:
            body = await request.json()
        except ValueError:
            return error(400, "The request body is not valid JSON")
        switches.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
        status = switches.failing()
        if status == 429:
            return error(429, f"Request was throttled. Expected available in {switches.retry_after} second.",
                         {"retry-after": str(switches.retry_after)})
        if status:
            return error(status, f"switched to fail with {status}")
        inp = body.get("input")
        if not isinstance(inp, dict) or not isinstance(inp.get("prompt"), str):
            return JSONResponse({"title": "Input validation failed", "status": 422, "detail": "- input: prompt is required",
                                 "invalid_fields": [{"type": "required", "field": "input.prompt",
                                                     "description": "prompt is required"}]}, status_code=422)
        stops = [s for s in (inp.get("stop_sequences") or "").split(",") if s]
        reply = answer(inp.get("system_prompt") or "", _turns(inp["prompt"], inp.get("image")), [],
                       max_tokens=inp.get("max_tokens"), stop=stops)
        path = request.path_params
        model = f"{path['owner']}/{path['name']}" if "owner" in path else body.get("version", "")
        p = Prediction(id=uuid.uuid4().hex[:26], model=model, input=inp, reply=reply)
        predictions[p.id] = p
        if request.headers.get("prefer", "").startswith("wait") and not body.get("stream") and not switches.defer:
            finish(p)
        base = str(request.base_url).rstrip("/")
        return JSONResponse(view(p, base), status_code=201)

    async def get(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return error(401, "You did not pass a valid authentication token")
        p = predictions.get(request.path_params["id"])
        if p is None:
            return error(404, "The requested resource could not be found.")
        p.polls += 1
        if p.status == "starting":
            p.status = "processing"
        elif p.status == "processing":
            finish(p)
        return JSONResponse(view(p, str(request.base_url).rstrip("/")))

    async def cancel(request: Request) -> Response:
        p = predictions.get(request.path_params["id"])
        if p is None:
            return error(404, "The requested resource could not be found.")
        p.status = "canceled"
        return JSONResponse(view(p, str(request.base_url).rstrip("/")))

    async def stream(request: Request) -> Response:
        p = predictions.get(request.path_params["id"])
        if p is None:
            return error(404, "The requested resource could not be found.")
        return StreamingResponse(_events(p, switches), media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})

    async def _events(p: Prediction, switches: Switches) -> AsyncIterator[bytes]:
        stamp = int(time.time())
        events = []
        for i, piece in enumerate(p.reply.pieces()):
            data = "\n".join(f"data: {line}" for line in piece.split("\n"))
            events.append(f"event: output\nid: {stamp}:{i}\n{data}\n\n")
        finish(p)
        if p.status == "failed":
            events = [f"event: error\nid: {stamp}:0\ndata: {json.dumps({'detail': p.data['error']})}\n\n"]
        else:
            events.append(f"event: done\nid: {stamp}:{len(events)}\ndata: {{}}\n\n")
        for sent, event in enumerate(events):
            if not await switches.pace(sent):
                if not switches.break_with_error:
                    raise BrokenStream("cut by the test")
                yield f"event: error\nid: {stamp}:x\ndata: {json.dumps({'detail': 'prediction failed'})}\n\n".encode()
                return
            yield event.encode()

    return Starlette(routes=[
        Route("/v1/models/{owner}/{name}/predictions", create, methods=["POST"]),
        Route("/v1/predictions", create, methods=["POST"]),
        Route("/v1/predictions/{id}", get, methods=["GET"]),
        Route("/v1/predictions/{id}/cancel", cancel, methods=["POST"]),
        Route("/v1/stream/{id}", stream, methods=["GET"]),
    ])
