"""One deployment per test module for the chat: the test upstream as a priced channel, funded keys.

Starting the deployment once per module (not per test) keeps the chat's browser
tests fast; each test uses its own browser context, so its own session. A
module declares its fixture as::

    @pytest.fixture(scope="module")
    def chat_app(tmp_path_factory):
        yield from start_deployment(tmp_path_factory)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import accounts
from kernel import db as dbmod
from kernel.settings import Settings
from tests.conftest import LiveServer, migrate_database
from tests.upstreams.openai_upstream import UpstreamState, create_upstream_app
from webapp.chat import free_tier


@dataclass
class ChatDeployment:
    server: LiveServer
    upstream: UpstreamState
    key: str  # a funded key that may use every model
    limited_key: str  # a funded key that may use only gpt-4o-mini
    user_email: str
    password: str

    @property
    def url(self) -> str:
        return self.server.url


def start_deployment(tmp_path_factory) -> Iterator[ChatDeployment]:
    from webapp.asgi import create_asgi_app

    data = tmp_path_factory.mktemp("chat")
    settings = Settings.from_env({}, data_dir=data / "data", secret_key="test-secret")
    database = migrate_database(settings.database_url)
    state = UpstreamState()
    upstream = LiveServer(create_upstream_app(state)).start()
    accounts.add_channel(type="openai", name="test upstream", base_url=upstream.url + "/v1", keys=["sk-upstream"],
                         models="gpt-4o-mini,gpt-4o,o-tiny")
    accounts.set_price("gpt-4o-mini", input_usd="0.15", output_usd="0.60")
    accounts.set_price("gpt-4o", input_usd="2.50", output_usd="10")
    accounts.set_price("o-tiny", input_usd="1", output_usd="1")
    user = accounts.create_user("chatter@example.com", "password123")
    accounts.topup(user, "20")
    key = accounts.create_token(user, name="all models").key
    limited = accounts.create_token(user, name="mini only", models="gpt-4o-mini").key
    free_tier.write_config({"free_models": "gpt-4o-mini", "free_rpm": 100, "free_max_tokens": 256,
                            "free_max_context": 2000, "free_daily_budget_usd": "1"})
    server = LiveServer(create_asgi_app(settings)).start()
    yield ChatDeployment(server, state, key, limited, "chatter@example.com", "password123")
    server.stop()
    upstream.stop()
    database.close()
    dbmod.db.initialize(None)
