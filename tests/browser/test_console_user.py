"""The account console in Chromium: register, redeem, create and copy a key, usage; English and Chinese."""

from __future__ import annotations

from pathlib import Path

import pytest

from accounts import create_codes
from kernel.models import RequestLog, Token, User
from tests.conftest import report_csp_violations

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PHONE = {"width": 390, "height": 844}


def shoot(page, name: str, *, phone: bool = False) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    if phone:
        page.set_viewport_size(PHONE)
    page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar would otherwise be drawn mid-page
    page.screenshot(path=str(ARTIFACTS / f"console-{name}{'-phone' if phone else ''}.png"), full_page=True)
    if phone:
        page.set_viewport_size({"width": 1280, "height": 800})


def register(page, url: str, email: str) -> None:
    page.goto(url + "/register")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "password123")
    page.fill("input[name=password2]", "password123")
    page.click("#register-panel button[type=submit]")
    page.wait_for_url("**/topup")


def test_register_redeem_create_key_and_see_usage(live_server, page):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    register(page, live_server.url, "browser@example.com")
    assert page.inner_text("[data-testid=balance]") == "$0.00"

    [code] = create_codes("12.5")
    page.fill("input[name=code]", "not-a-code")
    page.click("#topup-panel button[type=submit]")
    page.wait_for_selector("#topup-panel .error")
    assert "does not exist" in page.inner_text("#topup-panel .error")
    page.fill("input[name=code]", code)
    page.click("#topup-panel button[type=submit]")
    page.wait_for_selector("#topup-panel .ok")
    assert "$12.50 added to your balance" in page.inner_text("#topup-panel .ok")
    assert page.inner_text("[data-testid=balance]") == "$12.50"
    assert page.url.endswith("/topup")  # htmx swapped the panel in place
    shoot(page, "topup")
    shoot(page, "topup", phone=True)

    page.click("nav >> text=API keys")
    page.wait_for_url("**/token")
    page.fill("#tokens-panel input[name=name]", "laptop")
    page.fill("#tokens-panel input[name=usd]", "3")
    page.click("#tokens-panel button:has-text('Create key')")
    page.wait_for_selector("#new-key")
    key = page.input_value("#new-key")
    assert key.startswith("sk-") and len(key) == 51
    page.click("button[data-copy-from='#new-key']")
    page.wait_for_selector("button[data-copy-from='#new-key']:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == key
    shoot(page, "token-new")
    page.reload()
    assert page.locator("#new-key").count() == 0 and key not in page.content()
    row = page.locator("tr[data-token]").first
    assert "laptop" in row.inner_text() and "$3.00" in row.inner_text() and key[:7] in row.inner_text()
    shoot(page, "token", phone=True)

    # Disable the key from the page; the database agrees.
    row.locator("button:has-text('Disable')").click()
    page.wait_for_selector("#tokens-panel .ok")
    assert Token.get(Token.name == "laptop").status == "disabled"

    user = User.by_email("browser@example.com")
    token = Token.get(Token.name == "laptop")
    for model, units in (("gpt-4o-mini", 1234), ("gpt-4o", 56789)):
        RequestLog.create(request_id=model, user_id=user.id, token_id=token.id, token_name="laptop", model=model,
                          prompt_tokens=100, completion_tokens=20, quota=units, latency_ms=250)
    page.click("nav >> text=Usage")
    page.wait_for_url("**/log")
    assert page.locator("table.log tbody tr").count() == 2
    assert page.locator(".chart rect").count() == 1
    page.select_option("select[name=model]", "gpt-4o")
    page.click("#log-panel button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('table.log tbody tr').length === 1")
    assert "model=gpt-4o" in page.url  # the filter is in the address bar (hx-push-url)
    assert page.inner_text("[data-testid=total]") == "$0.113578"
    shoot(page, "log")
    shoot(page, "log", phone=True)


def test_console_in_chinese_on_a_phone(live_server, browser):
    context = browser.new_context(locale="zh-CN", viewport=PHONE)
    violations = report_csp_violations(context)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto(live_server.url + "/register")
        assert page.inner_text("h1") == "创建账户"
        page.fill("input[name=email]", "zh@example.com")
        page.fill("input[name=password]", "password123")
        page.fill("input[name=password2]", "password123")
        page.click("#register-panel button[type=submit]")
        page.wait_for_url("**/topup")
        assert "如何购买兑换码" in page.inner_text("#topup-panel")
        assert "1 美元 = 8 元人民币" in page.inner_text("#topup-panel")
        [code] = create_codes("1")
        page.fill("input[name=code]", code)
        page.click("#topup-panel button[type=submit]")
        page.wait_for_selector("#topup-panel .ok")
        assert "已向余额充入 $1.00" in page.inner_text("#topup-panel .ok")
        page.fill("input[name=code]", code)
        page.click("#topup-panel button[type=submit]")
        page.wait_for_selector("#topup-panel .error")
        assert page.inner_text("#topup-panel .error") == "此兑换码已被使用。"
        shoot(page, "topup-zh")
        page.goto(live_server.url + "/docs")
        assert "沉浸式翻译" in page.inner_text("article") and live_server.url + "/v1" in page.inner_text("article")
        shoot(page, "docs-zh")
        page.goto(live_server.url + "/pricing")
        assert page.inner_text("h1") == "价格"
        # The switch goes back to English and stays there.
        page.click("form.lang-switch button")
        page.wait_for_load_state()
        assert page.inner_text("h1") == "Pricing"
        page.goto(live_server.url + "/token")
        assert page.inner_text("h1") == "API keys"
    finally:
        context.close()
    assert not violations, f"the page broke its Content-Security-Policy: {violations}"


def test_login_form_with_htmx_goes_to_the_next_page(live_server, page):
    from accounts import create_user

    create_user("returning@example.com", "password123")
    page.goto(live_server.url + "/log")
    page.wait_for_url("**/login?next=*")
    page.fill("input[name=email]", "returning@example.com")
    page.fill("input[name=password]", "wrong-password")
    page.click("#login-panel button[type=submit]")
    page.wait_for_selector("#login-panel .error")
    assert page.inner_text("#login-panel .error") == "Wrong email or password."
    page.fill("input[name=password]", "password123")
    page.click("#login-panel button[type=submit]")
    page.wait_for_url("**/log")
    assert page.inner_text("h1") == "Usage"
    shoot(page, "login-next")
