"""Fixtures for the gateway: a test upstream, an account with a key, the deployment on a socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

import accounts
from kernel.models import Token, User
from tests.conftest import LiveServer
from tests.upstreams.openai_upstream import UpstreamState, create_upstream_app


@dataclass
class Upstream:
    server: LiveServer
    state: UpstreamState

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"


@pytest.fixture
def make_upstream() -> Iterator[Callable[..., Upstream]]:
    started: list[LiveServer] = []

    def make(**state_fields) -> Upstream:
        state = UpstreamState(**state_fields)
        server = LiveServer(create_upstream_app(state)).start()
        started.append(server)
        return Upstream(server, state)

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def upstream(make_upstream) -> Upstream:
    return make_upstream()


@dataclass
class Account:
    user: User
    key: str
    token: Token

    def refresh(self) -> Account:
        self.user = User.get_by_id(self.user.id)
        self.token = Token.get_by_id(self.token.id)
        return self


@pytest.fixture
def make_account(database) -> Callable[..., Account]:
    counter = iter(range(1, 10_000))

    def make(balance: str = "10", **token_args) -> Account:
        user = accounts.create_user(f"user{next(counter)}@example.com", "password123")
        accounts.topup(user, balance)
        new = accounts.create_token(user, **token_args)
        return Account(User.get_by_id(user.id), new.key, new.token)

    return make


@pytest.fixture
def price() -> Callable[..., None]:
    def set_price(model: str, input_usd: str = "1", output_usd: str = "2", per_call: str | None = None) -> None:
        accounts.set_price(model, input_usd=input_usd, output_usd=output_usd, per_call_usd=per_call)

    return set_price


@pytest.fixture
def channel(database) -> Callable[..., object]:
    def add(upstream: Upstream | str, *, models: str = "gpt-4o-mini", type: str = "openai", name: str = "",
            **kwargs):
        base = upstream if isinstance(upstream, str) else upstream.base_url
        return accounts.add_channel(type=type, name=name or f"{type} test", base_url=base, keys=["sk-upstream"],
                                    models=models, **kwargs)

    return add


@pytest.fixture
def serve(settings, database) -> Iterator[Callable[..., LiveServer]]:
    """Start the whole deployment; call it after creating channels and prices."""
    from webapp.asgi import create_asgi_app

    started: list[LiveServer] = []

    def start(**overrides) -> LiveServer:
        app_settings = settings if not overrides else type(settings).from_env(
            {}, data_dir=settings.data_dir, secret_key="test-secret", **overrides)
        app = create_asgi_app(app_settings)
        server = LiveServer(app).start()
        server.gateway = app.state.gateway  # type: ignore[attr-defined]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
