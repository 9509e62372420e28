"""Register, log in (rate-limited), log out, CSRF on forms."""

from __future__ import annotations

import re

from kernel.models import User
from tests.webapp.console.conftest import login, text_of


def test_register_logs_in_and_lands_on_topup(client, database):
    r = client.post("/register", data={"email": "New@Example.com", "password": "longenough", "password2": "longenough"})
    assert r.status_code == 303 and r.headers["Location"].endswith("/topup")
    page = client.get("/topup")
    assert page.status_code == 200 and "$0.00" in text_of(page.data)
    assert User.by_email("new@example.com") is not None
    assert User.by_email("new@example.com").password_hash.startswith("scrypt:")


def test_register_rejects_bad_input_with_a_message(client, user):
    cases = [({"email": "nope", "password": "longenough"}, "not an email address"),
             ({"email": "a@b.co", "password": "short"}, "at least 8 characters"),
             ({"email": "alice@example.com", "password": "longenough"}, "This email address cannot be registered"),
             ({"email": "a@b.co", "password": "longenough", "password2": "different1"}, "passwords differ")]
    for form, message in cases:
        r = client.post("/register", data=form)
        assert r.status_code == 400, form
        assert message in text_of(r.data)


def test_login_wrong_password_then_right(client, user):
    r = login(client, "alice@example.com", "wrong password")
    assert r.status_code == 401 and "Wrong email or password" in text_of(r.data)
    assert client.get("/token").status_code == 302  # still logged out
    r = login(client, "ALICE@example.com", "correct horse")
    assert r.status_code == 303
    assert client.get("/token").status_code == 200


def test_login_is_rate_limited_per_ip_and_account(client, user):
    for _ in range(5):
        assert login(client, "alice@example.com", "guess").status_code == 401
    r = login(client, "alice@example.com", "correct horse")
    wait = re.search(r"Too many failed attempts\. Try again in (\d+) seconds\.", text_of(r.data))
    assert r.status_code == 429 and 280 <= int(wait.group(1)) <= 300
    other = login(client, "bob@example.com", "guess")  # another account from the same address may still try
    assert other.status_code == 401


def test_disabled_account_cannot_log_in(client, user):
    User.update(status="disabled").where(User.id == user.id).execute()
    r = login(client, "alice@example.com", "correct horse")
    assert r.status_code == 403 and "disabled" in text_of(r.data)


def test_logout(alice):
    assert alice.post("/logout").status_code == 303
    assert alice.get("/token").status_code == 302


def test_forms_need_the_csrf_token(settings, database, user):
    from webapp import create_app

    client = create_app(settings, {"TESTING": True}).test_client()
    r = client.post("/login", data={"email": "alice@example.com", "password": "correct horse"})
    assert r.status_code == 400
    assert client.get("/token").status_code == 302


def test_login_page_htmx_partial_and_json_twin(client, user):
    r = client.post("/login", data={"email": "alice@example.com", "password": "x"}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and b"<html" not in r.data and b"Wrong email or password" in r.data
    assert "HX-Request" in r.headers["Vary"]
    r = client.post("/login", data={"email": "alice@example.com", "password": "y"}, headers={"Accept": "application/json"})
    assert r.status_code == 401 and r.get_json() == {"error": {"message": "Wrong email or password."}}


def test_form_errors_in_chinese(client, user):
    zh = {"Accept-Language": "zh-CN"}
    r = client.post("/register", data={"email": "alice@example.com", "password": "longenough"}, headers=zh)
    assert "此邮箱地址无法注册" in text_of(r.data) and "alice@example.com 已" not in text_of(r.data)
    r = client.post("/register", data={"email": "a@b.co", "password": "short"}, headers=zh)
    assert "密码至少需要 8 个字符" in text_of(r.data)
    client.post("/login", data={"email": "alice@example.com", "password": "correct horse"})
    r = client.post("/token", data={"allowed_ips": "my house"}, headers=zh)
    assert "允许的 IP：'my house' 不是 IP 地址或 CIDR 范围" in text_of(r.data)
    r = client.post("/token", data={"usd": "lots"}, headers=zh)
    assert "密钥额度：'lots' 不是有效的美元金额" in text_of(r.data)


def test_one_address_may_create_only_so_many_accounts_an_hour(settings, database):
    from dataclasses import replace

    from webapp import create_app

    app = create_app(replace(settings, registrations_per_hour=2), {"TESTING": True, "WTF_CSRF_ENABLED": False})

    def register(n: int, **headers):
        return app.test_client().post("/register", headers=headers, data={
            "email": f"many{n}@example.com", "password": "longenough", "password2": "longenough"})

    assert register(1).status_code == 303 and register(2).status_code == 303
    refused = register(3)
    assert refused.status_code == 429 and "Too many new accounts from your address" in text_of(refused.data)
    assert User.by_email("many3@example.com") is None, "nothing is created when refused"
    in_chinese = register(4, **{"Accept-Language": "zh-CN"})
    assert in_chinese.status_code == 429 and "您的地址注册的账户过多" in text_of(in_chinese.data)
    # A failed attempt does not count, and the limit can be switched off.
    open_app = create_app(replace(settings, registrations_per_hour=0), {"TESTING": True, "WTF_CSRF_ENABLED": False})
    for n in range(5, 10):
        r = open_app.test_client().post("/register", data={
            "email": f"many{n}@example.com", "password": "longenough", "password2": "longenough"})
        assert r.status_code == 303


def test_a_bad_registration_does_not_use_up_the_address_allowance(settings, database):
    from dataclasses import replace

    from webapp import create_app

    app = create_app(replace(settings, registrations_per_hour=1), {"TESTING": True, "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    for _ in range(3):
        assert client.post("/register", data={"email": "nope", "password": "longenough"}).status_code == 400
    r = app.test_client().post("/register", data={"email": "ok@example.com", "password": "longenough",
                                                  "password2": "longenough"})
    assert r.status_code == 303
