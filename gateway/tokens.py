"""Counting tokens: a fast estimate to reserve quota, the real tokenizer when no usage arrives.

The reservation needs a number before the upstream is called and on every
request, so it uses a cheap estimate that errs high (a UTF-8 byte count / 3:
about one token per CJK character, 4/3 of the tokens of English text).
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
IMAGE_TOKENS = 1105  # a high-detail 1024x1024 image, the common worst case

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
    return (len(text.encode("utf-8")) + 2) // 3


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
    """A high estimate of a chat request's prompt tokens (no tokenizer)."""
    messages = body.get("messages") or []
    texts, images = message_texts(messages)
    return (sum(_estimate_text(t) for t in texts) + _estimate_text(_tools_text(body))
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


def max_output(body: dict[str, Any]) -> int:
    """The output a request may generate: its own limit, else :data:`DEFAULT_MAX_OUTPUT`, times ``n``."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_OUTPUT
    n = body.get("n") or 1
    return int(limit) * int(n)
