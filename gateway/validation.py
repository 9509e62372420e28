"""Reading and checking request bodies: 413 past the size limit, 400s that name the field.

Every JSON route checks its body here before anything is reserved or sent:
the fields the gateway itself reads (to route, estimate, translate or bill)
must have the type it reads them as, so hostile input is a 400 that says what
is wrong, never a 500 halfway through. Fields the gateway does not read pass
through for the upstream to judge.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from kernel.errors import BadRequest, BodyTooLarge

# Far past the longest output any model offers, and low enough that
# ``MAX_TOKENS * MAX_N`` tokens at any price stay far inside a 64-bit quota.
MAX_TOKENS = 10_000_000
MAX_N = 128
# Deeper than any real request (a tool's JSON schema nests a few dozen levels),
# shallow enough that no recursive walk over the body (estimating, encoding it
# again for the upstream) can exhaust Python's stack.
MAX_DEPTH = 100
MAX_MODEL_LENGTH = 128  # the log's column

Body = dict[str, Any]


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


def parse_json(raw: bytes) -> Body:
    """A JSON object, in valid Unicode, nested at most :data:`MAX_DEPTH` deep, with finite numbers."""
    if not raw.strip():
        raise BadRequest("The request body is empty; send a JSON object.")
    try:
        text = raw.decode(json.detect_encoding(raw))
    except UnicodeDecodeError as exc:
        raise BadRequest(f"The request body is not valid UTF-8: {exc}.") from None
    try:
        data = _decoder.decode(text)
    except RecursionError:
        raise BadRequest(f"The request body nests deeper than {MAX_DEPTH} levels.") from None
    except ValueError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    # Both walks are skipped by a byte scan on ordinary bodies: few brackets, no \uD800-\uDFFF escape.
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if surrogates or text.count("[") + text.count("{") > MAX_DEPTH:
        _walk(data, surrogates)
    return data


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _walk(data: Any, surrogates: bool) -> None:
    """Refuse nesting past :data:`MAX_DEPTH` and (when escapes were seen) lone surrogates; no recursion."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadRequest(f"The request body nests deeper than {MAX_DEPTH} levels.")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if surrogates:
                for text in (key, item):
                    if isinstance(text, str) and not _is_unicode(text):
                        raise BadRequest("The request body holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape "
                                         "without its pair), which is not Unicode text.")
            if isinstance(item, dict | list):
                stack.append((item, depth + 1))


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _no_constants(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and every upstream) does not.
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        # 1e999 would be sent on as Infinity, which is not JSON.
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


# Built once: json.loads with any option builds a new decoder on every call.
_decoder = json.JSONDecoder(parse_constant=_no_constants, parse_float=_finite)


# Field checks ----------------------------------------------------------------------------------

def _show(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_field(body: Body, name: str, low: int, high: int = MAX_TOKENS, *, required: bool = False,
               where: str = "") -> None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"Missing required parameter: '{where}{name}'.", param=where + name)
        return
    if not _is_int(value) or not low <= value <= high:
        raise BadRequest(f"'{where}{name}' must be an integer between {low} and {high:,}, got {_show(value)}.",
                         param=where + name)


def _typed(body: Body, name: str, kinds: tuple[type, ...], what: str, *, required: bool = False,
           nullable: bool = True, where: str = "") -> None:
    value = body.get(name)
    if value is None and (nullable or name not in body):
        if required:
            raise BadRequest(f"Missing required parameter: '{where}{name}'.", param=where + name)
        return
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise BadRequest(f"'{where}{name}' must be {what}, got {_show(value)}.", param=where + name)


def _string(body: Body, name: str, **kwargs: Any) -> None:
    _typed(body, name, (str,), "a string", **kwargs)


def _numbers(body: Body, *names: str) -> None:
    for name in names:
        _typed(body, name, (int, float), "a number")


def _text_or_list(body: Body, name: str, items: Callable[[Any], bool], what: str) -> None:
    """A required ``input``/``prompt``: a non-empty string, or a non-empty list whose items pass ``items``."""
    value = body.get(name)
    if value in (None, "", []):
        raise BadRequest(f"Missing required parameter: '{name}'.", param=name)
    if not isinstance(value, str) and not (isinstance(value, list) and all(items(v) for v in value)):
        raise BadRequest(f"'{name}' must be {what}.", param=name)


def _tokens_or_text(value: Any) -> bool:
    return isinstance(value, str) or _is_int(value) or (
        isinstance(value, list) and bool(value) and all(_is_int(v) for v in value))


def _common(body: Body, *, generates: bool = False) -> str:
    """What every route reads: ``model``, ``stream``, ``stream_options``; ``n`` and the output limits."""
    model = require_model(body)
    _typed(body, "stream", (bool,), "a boolean")
    _typed(body, "stream_options", (dict,), "an object")
    if generates:
        _int_field(body, "max_tokens", 1)
        _int_field(body, "max_completion_tokens", 1)
        _int_field(body, "n", 1, MAX_N)
    return model


def require_model(body: Body) -> str:
    model = body.get("model")
    if model is None or model == "":
        raise BadRequest("you must provide a model parameter", param="model")
    if not isinstance(model, str):
        raise BadRequest("'model' must be a string.", param="model")
    if len(model) > MAX_MODEL_LENGTH:
        raise BadRequest(f"'model' is longer than {MAX_MODEL_LENGTH} characters.", param="model")
    return model


# Routes ----------------------------------------------------------------------------------------

def validate_chat(body: Body) -> str:
    """``/chat/completions``: the fields the relay, the token estimate and the adaptors read."""
    model = _common(body, generates=True)
    messages = body.get("messages")
    if messages is None:
        raise BadRequest("Missing required parameter: 'messages'.", param="messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array.", param="messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise BadRequest(f"'{where}' must be an object.", param=where)
        if not isinstance(message.get("role"), str):
            raise BadRequest(f"Missing required parameter: '{where}.role'.", param=f"{where}.role")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise BadRequest(f"'{where}.content' must be a string or an array of content parts.",
                             param=f"{where}.content")
        for j, part in enumerate(content if isinstance(content, list) else ()):
            at = f"{where}.content[{j}]"
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise BadRequest(f"'{at}' must be an object with a string 'type'.", param=at)
            if part["type"] == "text":
                _string(part, "text", required=True, where=at + ".")
            elif part["type"] == "image_url":
                _typed(part, "image_url", (str, dict), "an object with a 'url'", required=True, where=at + ".")
        _list_of_objects(message, "tool_calls", where=where + ".")
    _list_of_objects(body, "tools")
    _list_of_objects(body, "functions")
    _typed(body, "tool_choice", (str, dict), "a string or an object")
    _stop(body, "stop")
    _numbers(body, "temperature", "top_p", "presence_penalty", "frequency_penalty")
    return model


def _stop(body: Body, name: str) -> None:
    value = body.get(name)
    if value is not None and not isinstance(value, str) and not (
            isinstance(value, list) and all(isinstance(s, str) for s in value)):
        raise BadRequest(f"'{name}' must be a string or an array of strings.", param=name)


def validate_completion(body: Body) -> str:
    """Legacy ``/completions`` (``prompt`` instead of ``messages``), streamed or not."""
    model = _common(body, generates=True)
    _text_or_list(body, "prompt", _tokens_or_text, "a string, an array of strings or an array of token arrays")
    _int_field(body, "best_of", 1, MAX_N)
    _stop(body, "stop")
    _numbers(body, "temperature", "top_p", "presence_penalty", "frequency_penalty")
    return model


def validate_embeddings(body: Body) -> str:
    model = _common(body)
    _text_or_list(body, "input", _tokens_or_text, "a string, an array of strings or an array of token arrays")
    _int_field(body, "dimensions", 1, 1_000_000)
    _string(body, "encoding_format")
    return model


def validate_moderations(body: Body) -> str:
    model = _common(body)
    _text_or_list(body, "input", lambda v: isinstance(v, str) or (isinstance(v, dict) and isinstance(
        v.get("type"), str)), "a string, an array of strings or an array of objects with a 'type'")
    return model


def validate_images(body: Body) -> str:
    model = _common(body)
    _string(body, "prompt", required=True)
    if not body["prompt"]:
        raise BadRequest("Missing required parameter: 'prompt'.", param="prompt")
    _int_field(body, "n", 1, 10)
    for name in ("size", "quality", "style", "response_format"):
        _string(body, name)
    return model


def validate_speech(body: Body) -> str:
    model = _common(body)
    _string(body, "input", required=True)
    if not body["input"]:
        raise BadRequest("Missing required parameter: 'input'.", param="input")
    _typed(body, "voice", (str, dict), "a string or an object", required=True)
    _numbers(body, "speed")
    _string(body, "response_format")
    return model


def validate_messages(body: Body) -> Body:
    """Anthropic's ``/v1/messages``: the fields the translation to OpenAI chat and the estimate read."""
    if body.get("model") is None:
        raise BadRequest("model: Field required", param="model")
    require_model(body)
    if body.get("max_tokens") is None:
        # Anthropic's own wording: its SDKs and clients know it.
        raise BadRequest("max_tokens: Field required (an integer)", param="max_tokens")
    _int_field(body, "max_tokens", 1)
    _typed(body, "stream", (bool,), "a boolean")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array.", param="messages")
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise BadRequest(f"'{where}' must be an object.", param=where)
        # Claude Code puts system instructions mid-conversation (role "system"); Anthropic takes them.
        if message.get("role") not in ("user", "assistant", "system"):
            raise BadRequest(f"'{where}.role' must be 'user', 'assistant' or 'system'.", param=f"{where}.role")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise BadRequest(f"'{where}.content' must be a string or an array of content blocks.",
                             param=f"{where}.content")
        if isinstance(content, list):
            _blocks(content, f"{where}.content")
    system = body.get("system")
    if isinstance(system, list):
        _blocks(system, "system")
    elif system is not None and not isinstance(system, str):
        raise BadRequest("'system' must be a string or an array of text blocks.", param="system")
    _stop(body, "stop_sequences")
    _numbers(body, "temperature", "top_p", "top_k")
    _list_of_objects(body, "tools")
    for name in ("tool_choice", "metadata", "thinking"):
        _typed(body, name, (dict,), "an object")
    thinking = body.get("thinking") or {}
    _string(thinking, "type", where="thinking.")
    _int_field(thinking, "budget_tokens", 1, where="thinking.")
    _string(body.get("metadata") or {}, "user_id", where="metadata.")
    _string(body.get("tool_choice") or {}, "type", where="tool_choice.")
    _string(body.get("tool_choice") or {}, "name", where="tool_choice.")
    return body


_BLOCK_FIELDS: dict[str, tuple[tuple[str, tuple[type, ...], str], ...]] = {
    "image": (("source", (dict,), "an object"),),
    "document": (("source", (dict,), "an object"),),
    "tool_use": (("id", (str,), "a string"), ("name", (str,), "a string"), ("input", (dict,), "an object")),
    "tool_result": (("tool_use_id", (str,), "a string"), ("content", (str, list), "a string or an array of blocks")),
}


def _blocks(blocks: list[Any], where: str) -> None:
    for j, block in enumerate(blocks):
        at = f"{where}.{j}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise BadRequest(f"'{at}' must be a content block: an object with a string 'type'.", param=at)
        # Any block's text is read (joined into a system prompt or a tool's result), whatever its type.
        _typed(block, "text", (str,), "a string", required=block["type"] == "text", nullable=False,
               where=at + ".")
        for name, kinds, what in _BLOCK_FIELDS.get(block["type"], ()):
            _typed(block, name, kinds, what, where=at + ".")
        if block["type"] == "tool_result" and isinstance(block.get("content"), list):
            _blocks(block["content"], at + ".content")


def _list_of_objects(body: Body, name: str, *, where: str = "") -> None:
    value = body.get(name)
    if value is not None and not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
        raise BadRequest(f"'{where}{name}' must be an array of objects.", param=where + name)


def wants_usage(body: Body) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))
