"""Counting tokens: a fast estimate to reserve quota, the real tokenizer when no usage arrives.

The reservation needs a number before the upstream is called and on every
request, so it uses a cheap bound that no tokenizer exceeds: a text's UTF-8
byte count (every BPE or SentencePiece token covers at least one byte), plus
each message's framing and a fixed allowance for images and tool definitions.
A reservation is the request's worst case (see README, "What a request can
cost"), so it may be several times the real price; settling gives back the rest.
Settling uses the upstream's reported usage; only when an upstream reports
none (a stream cut short, a provider that omits it) are tokens counted with
the offline tokenizer (``bpe-openai``, ``o200k_base``), loaded on first use
because it costs about 100 MB of memory that most processes never need.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

# When a request sets no max_tokens, reserve this much output. It bounds what a
# request can cost before the upstream reports usage; settle() charges the truth.
DEFAULT_MAX_OUTPUT = 4096
PER_MESSAGE = 4  # role and separators, as OpenAI counts them
IMAGE_TOKENS = 1600  # Anthropic's largest image (about 1.15 megapixels / 750); OpenAI's high detail is less
# Providers wrap tool definitions in a system prompt of their own (Anthropic's is a few hundred tokens).
TOOLS_OVERHEAD = 1000

# The most output tokens one generated image is billed (gpt-image-1, high quality, 1024x1536).
IMAGE_OUTPUT_TOKENS = 6240
# Speech-to-text models priced per token count about 10-25 audio tokens a second of
# audio, and no format they take carries speech in fewer than about 1,500 bits (190
# bytes) a second: a file holds at most one audio token per 8 bytes, and its transcript
# (about 3 tokens a second of speech) one text token per 32.
AUDIO_BYTES_PER_TOKEN = 8
TRANSCRIPT_BYTES_PER_TOKEN = 32

_encoding: Any = None
_lock = threading.Lock()


def _encoder() -> Any:
    global _encoding
    if _encoding is None:
        with _lock:
            if _encoding is None:
                import bpe_openai

                _encoding = bpe_openai.get_encoding("o200k_base")
    return _encoding


def count(text: str) -> int:
    """Exact tokens of ``text`` (o200k_base). Blocking and slow to load: call from a worker thread."""
    return len(_encoder().encode_ordinary(text)) if text else 0


def _estimate_text(text: str) -> int:
    # Bytes, not characters: a CJK character is three bytes and at most three tokens.
    return len(text.encode("utf-8", "surrogatepass"))


def message_texts(messages: Iterable[Any]) -> tuple[list[str], int]:
    """The texts of chat messages, and how many images they hold."""
    texts: list[str] = []
    images = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict):
                    if part.get("type") == "text" and isinstance(part.get("text"), str):
                        texts.append(part["text"])
                    elif part.get("type") in ("image_url", "input_image", "image"):
                        images += 1
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                texts.append(str(call["function"].get("name", "")) + str(call["function"].get("arguments", "")))
    return texts, images


def _tools_text(body: dict[str, Any]) -> str:
    tools = body.get("tools") or body.get("functions")
    return repr(tools) if tools else ""


def estimate_chat_prompt(body: dict[str, Any]) -> int:
    """An upper bound of a chat request's prompt tokens (no tokenizer)."""
    messages = body.get("messages") or []
    texts, images = message_texts(messages)
    tools = _tools_text(body)
    return (sum(_estimate_text(t) for t in texts) + (_estimate_text(tools) + TOOLS_OVERHEAD if tools else 0)
            + PER_MESSAGE * len(messages) + IMAGE_TOKENS * images + 3)


def count_chat_prompt(body: dict[str, Any]) -> int:
    """Prompt tokens counted with the tokenizer (blocking)."""
    messages = body.get("messages") or []
    texts, images = message_texts(messages)
    return (sum(count(t) for t in texts) + count(_tools_text(body)) + PER_MESSAGE * len(messages)
            + IMAGE_TOKENS * images + 3)


def estimate_input(value: Any) -> int:
    """A high estimate of the tokens of an ``input``/``prompt`` field (string, list of strings or token ids)."""
    if isinstance(value, str):
        return _estimate_text(value)
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return len(value)
        return sum(estimate_input(v) for v in value)
    return 0


def count_input(value: Any) -> int:
    if isinstance(value, str):
        return count(value)
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return len(value)
        return sum(count_input(v) for v in value)
    return 0


def _positive(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def output_limit(body: dict[str, Any]) -> int | None:
    """The largest output limit a chat body sets, or None when it sets none.

    The larger of ``max_completion_tokens`` and ``max_tokens``: a body with both
    is forwarded with both, and which one a provider honours is its business.
    """
    return max(_positive(body.get("max_completion_tokens")), _positive(body.get("max_tokens"))) or None


def with_output_limit(body: dict[str, Any], default: int = DEFAULT_MAX_OUTPUT,
                      field: str = "max_completion_tokens") -> dict[str, Any]:
    """``body`` with an explicit output limit, so that no upstream can generate more than was reserved.

    ``field`` is the adaptor's choice (``Adaptor.limit_field``): OpenAI's
    reasoning models require ``max_completion_tokens`` and refuse ``max_tokens``,
    while some OpenAI-compatible providers know only ``max_tokens``.
    """
    if output_limit(body) is not None:
        return body
    return {**body, field: default}


def choices(body: dict[str, Any]) -> int:
    """How many answers a request generates (and is billed for): ``n``, or ``best_of`` when larger."""
    return max(_positive(body.get("n")), _positive(body.get("best_of")), 1)


def max_output(body: dict[str, Any], default: int = DEFAULT_MAX_OUTPUT) -> int:
    """The output a request may generate: its own limit, else ``default``, times the answers it asks for."""
    return (output_limit(body) or default) * choices(body)
