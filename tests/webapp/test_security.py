"""The web app against a hostile visitor, through a real server: huge ids, a forged Host header."""

from __future__ import annotations

import httpx
import pytest

from gateway.accounts import create_user
from tests.webapp.console.web import WebUser

HUGE = "99999999999999999999999"  # past SQLite's 64-bit integers


@pytest.fixture
def admin_web(live_server):
    create_user("root@example.com", "admin password", admin=True)
    web = WebUser(live_server.url)
    web.post("/login", {"email": "root@example.com", "password": "admin password"})
    yield web
    web.close()


@pytest.mark.parametrize("method, path", [
    ("get", f"/c/{HUGE}"), ("get", f"/chat/m/{HUGE}"), ("get", f"/chat/m/{HUGE}/edit"),
    ("post", f"/chat/m/{HUGE}/stop"), ("post", f"/chat/c/{HUGE}/rename"), ("get", f"/chat/c/{HUGE}/export"),
    ("post", f"/admin/users/{HUGE}"), ("post", f"/admin/channels/{HUGE}"), ("post", f"/token/{HUGE}"),
    ("post", f"/chat/shortcuts/{HUGE}/delete"), ("get", "/admin/users/1e30"),
])
def test_huge_ids_in_web_routes_are_not_found(admin_web, method, path):
    response = getattr(admin_web, method)(path)
    assert response.status_code == 404 and "This page does not exist." in response.text


def test_huge_ids_in_forms_and_queries_are_refused_or_ignored(admin_web):
    log = admin_web.get(f"/log?key={HUGE}&page={HUGE}")
    assert log.status_code == 200 and "Usage" in log.text
    assert admin_web.get("/log?key=²&page=²").status_code == 200  # digits to str.isdigit, not to int()
    disabled = admin_web.post("/admin/codes/disable", {"ids": HUGE})
    assert disabled.status_code == 400 and "ids must be code numbers" in disabled.text
    channel = admin_web.post("/admin/channels", {"type": "openai", "name": "big", "base_url": "http://127.0.0.1:9/v1",
                                                 "keys": "sk-x", "models": "m", "priority": HUGE})
    assert channel.status_code == 400 and "priority is too large" in channel.text


@pytest.mark.parametrize("path", ["/docs", "/uploads/ticket"])
def test_a_forged_host_header_is_never_reflected(live_server, admin_web, path):
    evil = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    page = admin_web.http.get(path, headers=evil)
    assert page.status_code == 200 and "evil.example" not in page.text
    # The address the server answered on instead.
    if path == "/docs":
        assert f"{live_server.url}/v1" in page.text
    else:
        assert page.json()["upload_url"] == f"{live_server.url}/arweave/upload"


def test_docs_show_the_public_url_whatever_the_host(settings, database):
    from dataclasses import replace

    from tests.conftest import LiveServer
    from webapp.asgi import create_asgi_app

    server = LiveServer(create_asgi_app(replace(settings, public_url="https://chat.example.com/"))).start()
    try:
        page = httpx.get(server.url + "/docs", headers={"Host": "evil.example"})
    finally:
        server.stop()
    assert "https://chat.example.com/v1" in page.text and "evil.example" not in page.text
