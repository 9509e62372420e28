"""Who gets in, against a real server: system accounts, redirects after login, logout, login guessing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

import accounts
from accounts import AccountError, create_token, create_user
from arweave_store.models import Upload
from kernel.models import RequestLog, User
from tests.conftest import LiveServer
from tests.webapp.console.conftest import text_of
from tests.webapp.console.web import WebUser

FREE_TIER_EMAIL = "free-tier@permachat.invalid"
SYSTEM_ROLE = "system"
HOSTILE_NEXT = ["/\t/evil.example", "/\n/evil.example", "/ /evil.example", "/\\evil.example", "/\\/evil.example",
                "//evil.example", "///evil.example", "https://evil.example/", "http:evil.example",
                "javascript:alert(1)", "/%5Cevil.example", "/%2F/evil.example", "/%09/evil.example",
                "\t//evil.example", " //evil.example", "/\x00/evil.example", "/\u3000/evil.example",
                "\\\\evil.example", "/.\\evil.example"]


def cookie_of(response: httpx.Response, name: str) -> str | None:
    """The Set-Cookie header of ``name`` as sent (attributes included), else None."""
    return next((h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")), None)


def logged_in(base_url: str, cookies: dict[str, str]) -> bool:
    with httpx.Client(base_url=base_url, cookies=cookies, timeout=15) as c:
        r = c.get("/token")
        return r.status_code == 200 and "API keys" in r.text


def login_as(base_url: str, email: str, password: str) -> WebUser:
    web = WebUser(base_url)
    r = web.post("/login", {"email": email, "password": password})
    assert r.status_code == 200 and str(r.url).endswith("/token"), text_of(r.text)
    return web


# --- item 6: the free tier's account -----------------------------------------------------------

def test_the_free_tier_account_is_made_by_migrating_and_nobody_can_take_it(live_server, settings):
    system = User.get_or_none(User.email == FREE_TIER_EMAIL)
    assert system is not None and system.role == SYSTEM_ROLE, "exists before any visit"
    create_user("taken@example.com", "password123")
    web = WebUser(live_server.url)

    def refusal(email: str) -> httpx.Response:
        return web.post("/register", {"email": email, "password": "password123", "password2": "password123"})

    taken = refusal("taken@example.com")
    assert taken.status_code == 400
    message = re.search(r'role="alert">([^<]+)<', taken.text).group(1)
    assert "taken@example.com" not in message and "exist" not in message
    for email in (FREE_TIER_EMAIL, FREE_TIER_EMAIL.upper(), " free-tier@permachat.invalid ", "other@permachat.invalid"):
        r = refusal(email)
        assert r.status_code == 400 and re.search(r'role="alert">([^<]+)<', r.text).group(1) == message, email
    assert User.get(User.email == FREE_TIER_EMAIL).id == system.id
    assert User.select().where(User.email.contains("permachat.invalid")).count() == 1
    # Not loginable, whatever the password (the old lazily made account had "!..." as its hash).
    for password in ("", "!", system.password_hash, "password123"):
        r = web.post("/login", {"email": FREE_TIER_EMAIL, "password": password}, headers={"Accept": "application/json"})
        assert r.status_code == 401 and r.json() == {"error": {"message": "Wrong email or password."}}
    # No keys for it: not from the console's code, not from the CLI, and its role cannot change.
    with pytest.raises(AccountError, match="cannot be given keys"):
        create_token(system, name="mine")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERMACHAT_", "OPENAI_"))}
    cli = subprocess.run([str(Path(sys.executable).with_name("permachat")), "token", "create", "--user",
                          FREE_TIER_EMAIL], capture_output=True, text=True, timeout=60,
                         env=env | {"PERMACHAT_DATA_DIR": str(settings.data_dir)})
    assert cli.returncode != 0 and "cannot be given keys" in cli.stderr and "sk-" not in cli.stdout
    with pytest.raises(AccountError, match="own accounts"):
        accounts.set_user_role(system, "admin")
    assert [t.name for t in system.tokens] == ["free tier"]


def test_viewing_the_admin_free_tier_settings_moves_no_money(live_server):
    create_user("root@example.com", "admin password", admin=True)
    admin = login_as(live_server.url, "root@example.com", "admin password")
    system = User.get(User.email == FREE_TIER_EMAIL)
    before = (system.quota, RequestLog.select().where(RequestLog.user_id == system.id).count())
    for _ in range(2):
        page = admin.get("/admin/prices")
        assert page.status_code == 200
        assert "Unspent free budget today: $1.00" in text_of(page.text)  # what today starts with
    system = User.get_by_id(system.id)
    assert (system.quota, RequestLog.select().where(RequestLog.user_id == system.id).count()) == before


# --- item 7: redirects after login -------------------------------------------------------------

def test_login_sends_only_to_paths_of_this_site(live_server):
    create_user("alice@example.com", "correct horse")
    for hx in (False, True):
        for where in ("form", "query"):
            for target in HOSTILE_NEXT + ["/admin/prices?q=1", "/c/1"]:
                with httpx.Client(base_url=live_server.url, timeout=15) as c:
                    csrf = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
                    form = {"csrf_token": csrf, "email": "alice@example.com", "password": "correct horse"}
                    params = {}
                    if where == "form":
                        form["next"] = target
                    else:
                        params["next"] = target
                    r = c.post("/login", data=form, params=params, headers={"HX-Request": "true"} if hx else {})
                    went = r.headers["HX-Redirect"] if hx else r.headers["Location"]
                    expected = target if target.startswith(("/admin/", "/c/")) else "/token"
                    assert r.status_code == (200 if hx else 303) and went == expected, (hx, where, target, went)


def test_the_language_switch_sends_only_to_paths_of_this_site(live_server):
    with httpx.Client(base_url=live_server.url, timeout=15) as c:
        csrf = re.search(r'"X-CSRFToken": "([^"]+)"', c.get("/").text).group(1)
        for target in HOSTILE_NEXT:
            r = c.post("/lang/zh", data={"csrf_token": csrf, "next": target})
            assert r.status_code == 303 and r.headers["Location"] == "/", target
            r = c.post("/lang/en", data={"csrf_token": csrf}, headers={"Referer": "https://evil.example/x"})
            assert r.headers["Location"] == "/"
        r = c.post("/lang/en", data={"csrf_token": csrf}, headers={"Referer": live_server.url + "/pricing?x=1"})
        assert r.headers["Location"] == "/pricing?x=1"


# --- item 8: logout ends access ----------------------------------------------------------------

@pytest.fixture
def key_owner(live_server) -> Iterator[tuple[str, str]]:
    """bob's funded key and the name of one of his uploads."""
    from accounts import topup

    bob = create_user("bob@example.com", "password123")
    topup(bob, "5")
    key = create_token(bob, name="pasted").key
    Upload.create(user_id=bob.id, tx_id="t" * 43, size=3, sha256="0" * 64, file_name="bobs-secret-notes.txt")
    yield key, "bobs-secret-notes.txt"


def unlocked(web: httpx.Client, upload_name: str) -> dict[str, bool]:
    """What the pasted key opens for this browser: the chat's models, upload tickets, the upload list."""
    return {"chat": web.get("/chat/models").json()["source"] == "key",
            "ticket": web.get("/uploads/ticket").status_code == 200,
            "list": upload_name in web.get("/uploads/list").text}


def test_logout_ends_the_login_the_remember_cookie_and_the_pasted_key(live_server, key_owner):
    key, upload_name = key_owner
    create_user("alice@example.com", "correct horse")
    web = WebUser(live_server.url)
    login = web.post("/login", {"email": "alice@example.com", "password": "correct horse"})
    remember_header = cookie_of(login.history[0], "remember_token")
    assert remember_header is not None
    assert "samesite=lax" in remember_header.lower() and "httponly" in remember_header.lower()
    page = web.get("/")
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1)
    assert web.http.post("/chat/key", data={"key": key}, headers={"X-CSRFToken": csrf}).status_code == 200
    assert unlocked(web.http, upload_name) == {"chat": True, "ticket": True, "list": True}
    old = {"session": web.http.cookies["session"], "remember_token": web.http.cookies["remember_token"]}

    web.get("/token")
    out = web.post("/logout")
    assert out.status_code == 200 and "remember_token" not in web.http.cookies
    assert web.http.get("/token", follow_redirects=False).status_code == 302
    assert unlocked(web.http, upload_name) == {"chat": False, "ticket": False, "list": False}
    # Old copies of the cookies, sent again by anyone who kept them, open nothing.
    for replayed in ({"session": old["session"]}, {"remember_token": old["remember_token"]}, old):
        assert not logged_in(live_server.url, replayed), replayed.keys()
        with httpx.Client(base_url=live_server.url, cookies=replayed, timeout=15) as c:
            assert unlocked(c, upload_name) == {"chat": False, "ticket": False, "list": False}, replayed.keys()


def test_logout_ends_only_that_login_and_log_out_everywhere_ends_all(live_server):
    create_user("alice@example.com", "correct horse")
    laptop = login_as(live_server.url, "alice@example.com", "correct horse")
    phone = login_as(live_server.url, "alice@example.com", "correct horse")
    tablet = login_as(live_server.url, "alice@example.com", "correct horse")
    phone.post("/logout")
    cookies = lambda web: dict(web.http.cookies)  # noqa: E731
    assert not logged_in(live_server.url, cookies(phone))
    assert logged_in(live_server.url, cookies(laptop)) and logged_in(live_server.url, cookies(tablet))
    page = laptop.get("/token")
    assert "Log out everywhere" in text_of(page.text)
    tablet_remember = {"remember_token": tablet.http.cookies["remember_token"]}
    # A form posted from another site carries no CSRF token: refused, nobody logged out.
    forged = httpx.post(live_server.url + "/logout/everywhere", cookies=cookies(laptop))
    assert forged.status_code == 400 and logged_in(live_server.url, cookies(tablet))
    r = laptop.post("/logout/everywhere")
    assert r.status_code == 200 and str(r.url).endswith("/login")
    for web in (laptop, tablet):
        assert not logged_in(live_server.url, cookies(web))
    assert not logged_in(live_server.url, tablet_remember)
    zh = laptop.http.get("/token", headers={"Accept-Language": "zh-CN"})
    assert zh.status_code == 200  # back at the login page
    again = login_as(live_server.url, "alice@example.com", "correct horse")
    assert "在所有设备上退出登录" in again.http.get("/token", headers={"Accept-Language": "zh-CN"}).text


# --- login guessing ----------------------------------------------------------------------------

@pytest.fixture
def strict_server(settings, database) -> Iterator[LiveServer]:
    """The deployment allowing 3 failed logins per account per hour."""
    from webapp.asgi import create_asgi_app

    server = LiveServer(create_asgi_app(replace(settings, login_failures_per_hour=3))).start()
    yield server
    server.stop()


def from_address(server: LiveServer, n: int) -> WebUser:
    """A browser at 127.0.0.n: each its own client address as the server sees it."""
    web = WebUser(server.url)
    web.http = httpx.Client(base_url=server.url, follow_redirects=True, timeout=20,
                            transport=httpx.HTTPTransport(local_address=f"127.0.0.{n}"))
    return web


def test_login_failures_are_limited_per_account_across_addresses(strict_server):
    create_user("alice@example.com", "correct horse")
    create_user("carol@example.com", "password123")
    for email in ("alice@example.com", "nobody@example.com"):  # an unknown email is treated alike
        for n in range(2, 5):
            r = from_address(strict_server, n).post("/login", {"email": email, "password": f"guess {n}"})
            assert r.status_code == 401, (email, n)
        refused = from_address(strict_server, 5).post("/login", {"email": email, "password": "correct horse"})
        assert refused.status_code == 429
        assert re.search(r"Too many failed attempts for this account\. Try again in (60|59) minutes\.",
                         text_of(refused.text)), text_of(refused.text)
    zh = from_address(strict_server, 6).post("/login", {"email": "alice@example.com", "password": "correct horse"},
                                             headers={"Accept-Language": "zh-CN"})
    assert zh.status_code == 429 and "此账户的失败次数过多" in text_of(zh.text)
    other = from_address(strict_server, 6).post("/login", {"email": "carol@example.com", "password": "password123"})
    assert other.status_code == 200 and str(other.url).endswith("/token")


def test_wrong_email_and_wrong_password_look_and_take_the_same(live_server):
    create_user("alice@example.com", "correct horse")
    web = WebUser(live_server.url)
    answers, times = {}, {}
    for case, emails in (("wrong password", ["alice@example.com"] * 4),
                         ("unknown email", [f"ghost{n}@example.com" for n in range(4)])):
        took = []
        for email in emails:
            start = time.perf_counter()
            r = web.post("/login", {"email": email, "password": "not it at all"}, headers={"Accept": "application/json"})
            took.append(time.perf_counter() - start)
            answers.setdefault(case, set()).add((r.status_code, r.text))
        times[case] = min(took)
    assert answers["wrong password"] == answers["unknown email"] and len(answers["unknown email"]) == 1
    # An unknown email runs the same password hash: not several times faster than a known one.
    assert times["unknown email"] > 0.5 * times["wrong password"], times
