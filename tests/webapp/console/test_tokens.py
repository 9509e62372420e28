"""``/token``: a key is shown in full once, then only by prefix; limits, enable/disable, delete."""

from __future__ import annotations

import re

from gateway.auth import load_key
from kernel.keys import hash_secret
from kernel.models import Token, User
from tests.webapp.console.conftest import text_of


def test_create_key_shows_it_once(alice):
    r = alice.post("/token", data={"name": "cursor", "usd": "2.5", "models": "gpt-4o-mini, gpt-4o",
                                   "allowed_ips": "10.0.0.0/8", "expires": "2999-01-31"})
    assert r.status_code == 201
    key = re.search(r'value="(sk-[A-Za-z0-9]{48})"', r.data.decode()).group(1)
    info = load_key(hash_secret(key))
    assert info.token_name == "cursor" and info.remain_quota == 1_250_000 and not info.unlimited
    assert info.models == ("gpt-4o-mini", "gpt-4o") and info.allows_ip("10.1.2.3") and not info.allows_ip("8.8.8.8")
    again = alice.get("/token").data.decode()
    assert key not in again
    assert key[:7] + "..." + key[-4:] in again
    assert "$2.50" in text_of(again) and "2999-01-31" in again


def test_key_without_quota_is_unlimited(alice):
    r = alice.post("/token", data={"name": "any"}, headers={"Accept": "application/json"})
    assert r.status_code == 201
    data = r.get_json()
    assert data["new_key"].startswith("sk-")
    assert data["tokens"][0]["unlimited"] is True and data["tokens"][0]["remain_usd"] is None


def test_bad_key_input_is_explained(alice):
    for form, message in [({"usd": "lots"}, "is not an amount of USD"),
                          ({"allowed_ips": "my house"}, "not an IP address"),
                          ({"expires": "2001-01-01"}, "in the past"),
                          ({"expires": "tomorrow"}, "is not a date")]:
        r = alice.post("/token", data=form)
        assert r.status_code == 400 and message in text_of(r.data), form
    assert Token.select().join(User).where(User.email == "alice@example.com").count() == 0


def test_disable_enable_edit_delete(alice, user):
    alice.post("/token", data={"name": "k"})
    token = Token.get(Token.user == user.id)
    r = alice.post(f"/token/{token.id}", data={"action": "disable"}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.data.decode() and "Key k disabled." in text_of(r.data)
    assert Token.get_by_id(token.id).status == "disabled"
    alice.post(f"/token/{token.id}", data={"action": "enable"})
    assert Token.get_by_id(token.id).status == "enabled"
    alice.post(f"/token/{token.id}", data={"action": "save", "name": "renamed", "usd": "1", "models": "a",
                                           "allowed_ips": "", "expires": ""})
    token = Token.get_by_id(token.id)
    assert (token.name, token.remain_quota, token.unlimited, token.models) == ("renamed", 500_000, False, ["a"])
    alice.post(f"/token/{token.id}", data={"action": "delete"})
    assert Token.get_or_none(Token.id == token.id) is None


def test_cannot_touch_someone_elses_key(alice, admin):
    from accounts import create_token

    other = create_token(admin, name="admin key").token
    r = alice.post(f"/token/{other.id}", data={"action": "delete"})
    assert r.status_code == 404 and "no such key" in text_of(r.data)
    assert Token.get_or_none(Token.id == other.id) is not None


def test_console_pages_need_login(client, database):
    for path in ("/token", "/topup", "/log"):
        r = client.get(path)
        assert r.status_code == 302 and "/login" in r.headers["Location"]
