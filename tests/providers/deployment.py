"""One permachat deployment with a channel for every provider stand-in, shared by a test module.

Each provider gets three channels so error tests cannot spoil the others: the
main one (model ``P-chat``), one for rate-limit and bad-request errors
(``P-err``, suspended by a 429) and one for a revoked key (``P-dead``, disabled
by it). The client's key holds 100 USD.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import accounts
from kernel.settings import Settings
from tests.conftest import LiveServer, migrate_database
from tests.providers.conftest import Upstream
from tests.upstreams import (
    anthropic_upstream,
    bedrock_upstream,
    cloudflare_upstream,
    gemini_upstream,
    replicate_upstream,
)

BEDROCK_KEY = f"{bedrock_upstream.ACCESS_KEY}|{bedrock_upstream.SECRET_KEY}|{bedrock_upstream.SESSION_TOKEN}"

# type -> (key, upstream model name, base URL suffix, settings)
CHANNELS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "anthropic": (anthropic_upstream.KEY, "claude-sonnet-4-5", "", {}),
    "gemini": (gemini_upstream.KEY, "gemini-2.5-flash", "", {}),
    "bedrock": (BEDROCK_KEY, "anthropic.claude-3-haiku-20240307-v1:0", "", {"region": "us-east-1"}),
    "cloudflare": (cloudflare_upstream.TOKEN, "@cf/meta/llama-3.1-8b-instruct", "/client/v4",
                   {"account_id": cloudflare_upstream.ACCOUNT}),
    "replicate": (replicate_upstream.TOKEN, "meta/meta-llama-3-8b-instruct", "", {}),
}


@dataclass
class Deployment:
    server: LiveServer
    key: str
    user_id: int

    @property
    def url(self) -> str:
        return self.server.url


def start(data_dir: Path, upstreams: dict[str, Upstream]) -> Deployment:
    settings = Settings.from_env({}, data_dir=data_dir, secret_key="test-secret")
    migrate_database(settings.database_url)
    user = accounts.create_user("matrix@example.com", "password123")
    accounts.topup(user, "100")
    key = accounts.create_token(user, name="matrix").key
    for kind, (secret, upstream_model, suffix, extra) in CHANNELS.items():
        base = upstreams[kind].url + suffix
        for role, keys in (("chat", secret), ("err", secret), ("dead", "revoked-key")):
            model = f"{kind}-{role}"
            if kind == "bedrock" and role == "dead":
                keys = f"AKIDREVOKED|{bedrock_upstream.SECRET_KEY}"
            accounts.add_channel(type=kind, name=model, base_url=base, keys=[keys], models=[model],
                                 mapping={model: upstream_model}, settings=extra)
            accounts.set_price(model, input_usd="1", output_usd="2")
    native = CHANNELS["cloudflare"]
    accounts.add_channel(type="cloudflare", name="cf native", base_url=upstreams["cloudflare"].url + "/client/v4",
                         keys=[native[0]], models=["cloudflare-native"], mapping={"cloudflare-native": native[1]},
                         settings={**native[3], "api": "native"})
    accounts.set_price("cloudflare-native", input_usd="1", output_usd="2")
    for kind, model in (("gemini", "text-embedding-004"), ("cloudflare", "@cf/baai/bge-base-en-v1.5")):
        name = f"{kind}-embed"
        accounts.add_channel(type=kind, name=name, base_url=upstreams[kind].url + CHANNELS[kind][2],
                             keys=[CHANNELS[kind][0]], models=[name], mapping={name: model},
                             settings=CHANNELS[kind][3])
        accounts.set_price(name, input_usd="1", output_usd="0")
    from webapp.asgi import create_asgi_app

    server = LiveServer(create_asgi_app(settings)).start()
    return Deployment(server=server, key=key, user_id=user.id)
