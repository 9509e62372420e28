"""Reading and checking request bodies: 413 past the size limit, 400s that name the field."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from gateway.errors import BadRequest, BodyTooLarge


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read incrementally so an oversized upload is refused before it is all in memory."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"The request body is {int(declared):,} bytes; the limit is {limit:,} bytes.")
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"The request body is larger than the limit of {limit:,} bytes.")
        parts.append(chunk)
    return b"".join(parts)


def parse_json(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise BadRequest("The request body is empty; send a JSON object.")
    try:
        data = _decoder.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    return data


def _no_constants(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and every upstream) does not.
    raise ValueError(f"{name} is not a JSON value")


# Built once: json.loads with any option builds a new decoder on every call.
_decoder = json.JSONDecoder(parse_constant=_no_constants)


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None or model == "":
        raise BadRequest("you must provide a model parameter", param="model")
    if not isinstance(model, str):
        raise BadRequest("'model' must be a string.", param="model")
    return model


def _int_field(body: dict[str, Any], name: str, low: int, high: int | None = None) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadRequest(f"'{name}' must be an integer {bound}, got {json.dumps(value)}.", param=name)


def validate_chat(body: dict[str, Any]) -> str:
    """Check the fields the gateway relies on; the rest pass through for the upstream to judge."""
    model = require_model(body)
    messages = body.get("messages")
    if messages is None:
        raise BadRequest("Missing required parameter: 'messages'.", param="messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array.", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"'messages[{i}]' must be an object.", param=f"messages[{i}]")
        if not isinstance(message.get("role"), str):
            raise BadRequest(f"Missing required parameter: 'messages[{i}].role'.", param=f"messages[{i}].role")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise BadRequest(f"'messages[{i}].content' must be a string or an array of content parts.",
                             param=f"messages[{i}].content")
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise BadRequest("'stream' must be a boolean.", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object.", param="stream_options")
    _int_field(body, "max_tokens", 1)
    _int_field(body, "max_completion_tokens", 1)
    _int_field(body, "n", 1, 128)
    return model


def validate_completion(body: dict[str, Any]) -> str:
    """The same checks for a legacy ``/completions`` request (``prompt`` instead of ``messages``)."""
    model = require_model(body)
    if body.get("prompt") in (None, "", []):
        raise BadRequest("Missing required parameter: 'prompt'.", param="prompt")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object.", param="stream_options")
    _int_field(body, "max_tokens", 1)
    _int_field(body, "n", 1, 128)
    return model


def wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))
