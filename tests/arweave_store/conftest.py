"""arlocal (a real Arweave gateway, from npm) on 127.0.0.1, a funded service wallet, and helpers."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from arweave_store.wallet import Wallet, create_wallet
from tests.conftest import LiveServer, free_port

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "tests" / "arlocal" / "launcher.js"
FUNDS = 10**15  # winston minted for the service wallet (1,000 AR)


class Arlocal:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10, trust_env=False)

    def mint(self, address: str, winston: int) -> None:
        self.http.get(f"/mint/{address}/{winston}").raise_for_status()

    def mine(self, blocks: int = 1) -> None:
        self.http.get(f"/mine/{blocks}").raise_for_status()

    def balance(self, address: str) -> int:
        return int(self.http.get(f"/wallet/{address}/balance").text)

    def data(self, tx_id: str) -> bytes:
        response = self.http.get(f"/{tx_id}")
        response.raise_for_status()
        return response.content

    def tags(self, tx_id: str) -> dict[str, str]:
        query = "query($ids: [ID!]) { transactions(ids: $ids) { edges { node { id tags { name value } } } } }"
        edges = self.http.post("/graphql", json={"query": query, "variables": {"ids": [tx_id]}}).json()
        nodes = edges["data"]["transactions"]["edges"]
        return {t["name"]: t["value"] for t in nodes[0]["node"]["tags"]} if nodes else {}

    def find_by_tag(self, name: str, value: str) -> list[str]:
        query = ("query($name: String!, $values: [String!]!) { transactions(tags: [{name: $name, values: $values}]) "
                 "{ edges { node { id } } } }")
        body = self.http.post("/graphql", json={"query": query, "variables": {"name": name, "values": [value]}}).json()
        return [e["node"]["id"] for e in body["data"]["transactions"]["edges"]]


@pytest.fixture(scope="session")
def arlocal(tmp_path_factory) -> Iterator[Arlocal]:
    """One arlocal for the session, started from its own process (so its pid is ours to stop)."""
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "arlocal").is_dir():
        pytest.fail("arlocal is not installed: `make test` runs `npm ci` (needs node and npm)")
    workdir = tmp_path_factory.mktemp("arlocal")  # arlocal writes ./logs into its working directory
    port = free_port()
    log = open(workdir / "arlocal.log", "wb")
    proc = subprocess.Popen([node, str(LAUNCHER), str(port), str(workdir / "db")], cwd=workdir,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/info", timeout=1, trust_env=False).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"arlocal did not start: {(workdir / 'arlocal.log').read_text()[-2000:]}")
        time.sleep(0.1)
    yield Arlocal(url)
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@dataclass
class ServiceWallet:
    path: Path
    wallet: Wallet


@pytest.fixture(scope="session")
def service_wallet(tmp_path_factory, arlocal) -> ServiceWallet:
    path = tmp_path_factory.mktemp("wallet") / "wallet.json"
    wallet = create_wallet(path)
    arlocal.mint(wallet.address, FUNDS)
    return ServiceWallet(path, wallet)


@pytest.fixture(scope="session")
def unfunded_wallet(tmp_path_factory) -> ServiceWallet:
    path = tmp_path_factory.mktemp("poor") / "wallet.json"
    return ServiceWallet(path, create_wallet(path))


@pytest.fixture
def arweave_settings(settings, arlocal, service_wallet):
    """Settings for a deployment that stores on arlocal, confirms after 1 block, follows every 0.1 s."""
    from dataclasses import replace

    return replace(settings, arweave_wallet=str(service_wallet.path), arweave_gateway=arlocal.url,
                   arweave_confirmations=1, arweave_poll_seconds=0.1, arweave_max_bytes=2 * 1024 * 1024)


def start_server(settings) -> LiveServer:
    from webapp.asgi import create_asgi_app

    return LiveServer(create_asgi_app(settings)).start()


@pytest.fixture
def arweave_server(arweave_settings, database) -> Iterator[LiveServer]:
    server = start_server(arweave_settings)
    yield server
    server.stop()


@dataclass
class Customer:
    user_id: int
    token_id: int
    key: str


def make_customer(email: str = "alice@example.com", usd: str = "5", key_usd: str | None = None) -> Customer:
    from accounts import create_token, create_user, topup

    user = create_user(email, "password123")
    if usd:
        topup(user, usd)
    new = create_token(user, name="uploads", usd=key_usd)
    return Customer(user.id, new.token.id, new.key)


@pytest.fixture
def customer(database) -> Customer:
    return make_customer()


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
