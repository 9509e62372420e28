"""Adaptors by channel type. A new provider adds its import and one line to ``ADAPTORS``.

See :mod:`gateway.adaptors.base` for the protocol every adaptor implements.
"""

from __future__ import annotations

from gateway.adaptors.anthropic import AnthropicAdaptor
from gateway.adaptors.azure import AzureAdaptor
from gateway.adaptors.base import Adaptor
from gateway.adaptors.bedrock import BedrockAdaptor
from gateway.adaptors.cloudflare import CloudflareAdaptor
from gateway.adaptors.gemini import GeminiAdaptor
from gateway.adaptors.openai import DeepSeekAdaptor, GroqAdaptor, OpenAIAdaptor
from gateway.adaptors.replicate import ReplicateAdaptor

ADAPTORS: dict[str, type[Adaptor]] = {
    "openai": OpenAIAdaptor,
    "groq": GroqAdaptor,
    "deepseek": DeepSeekAdaptor,
    "azure": AzureAdaptor,
    "anthropic": AnthropicAdaptor,
    "gemini": GeminiAdaptor,
    "bedrock": BedrockAdaptor,
    "cloudflare": CloudflareAdaptor,
    "replicate": ReplicateAdaptor,
}


def adaptor_class(channel_type: str) -> type[Adaptor] | None:
    """The adaptor for a channel type, or None when no adaptor exists for it (yet)."""
    return ADAPTORS.get(channel_type)
