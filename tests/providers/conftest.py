"""The five provider stand-ins, each running for the whole session on its own loopback port.

Tests get a :class:`Upstream` (its URL and its :class:`Switches`); the switches
are reset before every test so one test's failures never leak into the next.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import LiveServer
from tests.providers.script import Switches

PROVIDERS = ("anthropic", "gemini", "bedrock", "cloudflare", "replicate")


@dataclass
class Upstream:
    name: str
    url: str
    switches: Switches
    module: object

    @property
    def last(self) -> dict:
        """The last request this upstream received (headers and parsed body)."""
        return self.switches.requests[-1]


@pytest.fixture(scope="session")
def upstream_servers() -> Iterator[dict[str, Upstream]]:
    servers, upstreams = [], {}
    for name in PROVIDERS:
        module = importlib.import_module(f"tests.upstreams.{name}_upstream")
        switches = Switches()
        server = LiveServer(module.create_app(switches)).start()
        servers.append(server)
        upstreams[name] = Upstream(name, server.url, switches, module)
    yield upstreams
    for server in servers:
        server.stop()


@pytest.fixture
def upstreams(upstream_servers: dict[str, Upstream]) -> dict[str, Upstream]:
    for upstream in upstream_servers.values():
        upstream.switches.reset()
    return upstream_servers
