"""Azure OpenAI: OpenAI's bodies at deployment URLs, with an ``api-key`` header.

The deployment is the channel's mapped model name;
``settings["api_version"]`` picks the API version (default below).
"""

from __future__ import annotations

from typing import ClassVar

from gateway.adaptors.base import CHAT, EMBEDDINGS, IMAGES, SPEECH, TRANSCRIPTIONS
from gateway.adaptors.openai import OpenAIAdaptor

DEFAULT_API_VERSION = "2024-10-21"


class AzureAdaptor(OpenAIAdaptor):
    name = "azure"
    default_base_url = ""  # each Azure resource has its own: https://NAME.openai.azure.com
    supports: ClassVar[frozenset[str]] = frozenset({CHAT, EMBEDDINGS, IMAGES, SPEECH, TRANSCRIPTIONS})

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.channel.key}

    def url(self, path: str, upstream_model: str) -> str:
        # The deployment is named by the mapped model, as Azure's portal names it.
        version = self.channel.settings.get("api_version") or DEFAULT_API_VERSION
        base = self.base_url.removesuffix("/openai")
        return f"{base}/openai/deployments/{upstream_model}{path}?api-version={version}"
