"""The web app against a hostile visitor, through a real server: huge ids, a forged Host header,
forged proxy headers, and the security headers and cookies every page carries."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from accounts import create_user
from tests.conftest import LiveServer
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


@contextlib.contextmanager
def serving(settings, **changes) -> Iterator[LiveServer]:
    from webapp.asgi import create_asgi_app

    server = LiveServer(create_asgi_app(replace(settings, **changes))).start()
    try:
        yield server
    finally:
        server.stop()


def test_docs_show_the_public_url_whatever_the_host(settings, database):
    with serving(settings, public_url="https://chat.example.com/") as server:
        page = httpx.get(server.url + "/docs", headers={"Host": "evil.example"})
    assert "https://chat.example.com/v1" in page.text and "evil.example" not in page.text


def cookies_of(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def test_pages_tell_the_browser_their_security_policy(live_server):
    page = httpx.get(live_server.url + "/login")
    csp = [d.strip() for d in page.headers["Content-Security-Policy"].split(";")]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:",
                      "frame-ancestors 'none'", "object-src 'none'"):
        assert directive in csp, directive
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "same-origin"
    # Plain HTTP: no HSTS, and no Secure cookie (a browser would drop it and nobody could log in).
    assert "Strict-Transport-Security" not in page.headers
    assert cookies_of(page) and not any("Secure" in c for c in cookies_of(page))


def test_https_through_a_trusted_proxy_gets_hsts_and_secure_cookies(live_server):
    create_user("alice@example.com", "correct horse")
    # As the proxy (127.0.0.1, trusted by default) relays a browser's HTTPS requests. The client
    # here speaks plain HTTP to it, so it would not send Secure cookies back: they go by hand.
    https = {"X-Forwarded-Proto": "https", "Referer": live_server.url.replace("http:", "https:") + "/login"}
    with httpx.Client(base_url=live_server.url, headers=https) as proxy:
        page = proxy.get("/login")
        assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        session = cookies_of(page)[0].split(";")[0]
        logged_in = proxy.post("/login", headers={"Cookie": session}, data={
            "csrf_token": csrf, "email": "alice@example.com", "password": "correct horse"})
    assert logged_in.status_code == 303
    cookies = cookies_of(page) + cookies_of(logged_in)
    assert len(cookies) >= 2 and all("; Secure" in c for c in cookies), cookies
    assert any(c.startswith("remember_token=") for c in cookies)  # the one-year cookie too


def test_forwarded_headers_count_only_from_trusted_proxies(settings, database):
    def register(server: LiveServer, n: int, forwarded_for: str) -> int:
        web = WebUser(server.url)
        try:
            return web.post("/register", {"email": f"r{n}@example.com", "password": "longenough",
                                          "password2": "longenough"},
                            headers={"X-Forwarded-For": forwarded_for}, follow_redirects=False).status_code
        finally:
            web.close()

    with serving(settings, trusted_proxies="", registrations_per_hour=1) as server:
        page = httpx.get(server.url + "/login", headers={"X-Forwarded-Proto": "https"})
        assert "Strict-Transport-Security" not in page.headers
        assert not any("Secure" in c for c in cookies_of(page))
        # A client cannot pose as many addresses to get round the per-address limit.
        assert register(server, 1, "203.0.113.1") == 303
        assert register(server, 2, "203.0.113.2") == 429
    with serving(settings, trusted_proxies="127.0.0.1", registrations_per_hour=1) as server:
        # Behind a trusted proxy each visitor is the address the proxy names.
        assert register(server, 3, "203.0.113.3") == 303
        assert register(server, 4, "203.0.113.4") == 303
        assert register(server, 5, "203.0.113.4") == 429


def test_an_https_public_url_makes_every_cookie_secure(settings, database):
    with serving(settings, public_url="https://chat.example.com") as server:
        page = httpx.get(server.url + "/login")
    assert cookies_of(page) and all("; Secure" in c for c in cookies_of(page))


def test_a_bad_trusted_proxies_setting_is_named():
    from kernel.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="PERMACHAT_TRUSTED_PROXIES: 'proxy.local' is not an IP address"):
        Settings.from_env({"PERMACHAT_TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"})


def test_the_admin_api_answers_huge_and_odd_numbers_without_a_500(live_server):
    from accounts import create_token

    admin = create_user("api@example.com", "admin password", admin=True)
    auth = {"Authorization": f"Bearer {create_token(admin).key}"}
    with httpx.Client(base_url=live_server.url, headers=auth) as api:
        assert api.get(f"/api/channels/{HUGE}").status_code == 404
        assert api.post(f"/api/users/{HUGE}", json={"action": "disable"}).status_code == 404
        for limit in ("²", "-1", "1e3"):
            r = api.get("/api/users", params={"limit": limit})
            assert r.status_code == 400 and r.json()["error"]["message"] == "limit must be a whole number", limit
        assert api.get("/api/users", params={"limit": HUGE}).status_code == 200  # capped at the maximum
