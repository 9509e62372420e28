"""Fixtures every test may use: settings in a temp dir, a migrated database, a live server.

Servers run for real (uvicorn on 127.0.0.1, a free port), because streaming and
disconnects can only be tested over a socket.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from kernel import db as dbmod
from kernel.settings import Settings

POSTGRES_URL = os.environ.get("PERMACHAT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated from the developer's environment, data in a temp dir."""
    return Settings.from_env({}, data_dir=tmp_path / "data", secret_key="test-secret")


def migrate_database(url: str):
    from migrations import runner

    database = dbmod.bind(url)
    database.connect(reuse_if_open=True)
    runner(database).up()
    return database


@pytest.fixture
def database(settings: Settings) -> Iterator[object]:
    """The shared proxy bound to a fresh, migrated SQLite file."""
    database = migrate_database(settings.database_url)
    yield database
    database.close()


def postgres_available() -> str | None:
    """None when PostgreSQL answers at 127.0.0.1:5432, else why not."""
    try:
        import psycopg2

        psycopg2.connect(POSTGRES_URL, connect_timeout=2).close()
    except Exception as exc:  # noqa: BLE001 - any failure means "not here"
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}"
    return None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    import psycopg2

    name = f"permachat_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        if dbmod.db.obj is not None:
            dbmod.db.close()
            close_all = getattr(dbmod.db.obj, "close_all", None)
            if close_all:
                close_all()
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def redis_url(tmp_path):
    """A real redis-server on 127.0.0.1 and a free port, with no persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except Exception:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.02)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


class LiveServer:
    """A uvicorn server running an ASGI app in a thread on 127.0.0.1."""

    def __init__(self, app, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # proxy_headers=False as in `permachat serve`: the app decides whom to believe.
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", timeout_graceful_shutdown=5, proxy_headers=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def live_server(settings: Settings, database) -> Iterator[LiveServer]:
    """The whole deployment (webapp.asgi) on a free port, over a migrated SQLite file."""
    from webapp.asgi import create_asgi_app

    server = LiveServer(create_asgi_app(settings)).start()
    yield server
    server.stop()


CHROMIUM = os.environ.get("PERMACHAT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# Module scope: sync Playwright keeps an event loop running in the main thread while it is open,
# which makes asyncio.run() fail in any later test; closing it after each module avoids that.
@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (Playwright's own browsers cannot be downloaded here)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def report_csp_violations(context) -> list[str]:
    """Collect every Content-Security-Policy violation in ``context``'s pages (across navigations)."""
    violations: list[str] = []
    context.expose_function("__permachatCspViolation", lambda text: violations.append(text))
    context.add_init_script("document.addEventListener('securitypolicyviolation', (e) => "
                            "window.__permachatCspViolation(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}"
                            " on ${e.documentURI} (${e.sourceFile}:${e.lineNumber} ${e.sample})`))")
    return violations


@pytest.fixture
def page(browser):
    """A fresh browser context (own cookies) at desktop size, in English.

    The pages must work under their Content-Security-Policy: any violation fails the test.
    """
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    violations = report_csp_violations(context)
    yield context.new_page()
    context.close()
    assert not violations, f"the page broke its Content-Security-Policy: {violations}"
