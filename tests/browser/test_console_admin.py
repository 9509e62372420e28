"""The admin pages in Chromium: channels with the test button, codes, users, prices; both languages."""

from __future__ import annotations

import re

import pytest

from accounts import create_user
from kernel.models import AuditLog, Channel, RedemptionCode, User
from tests.browser.test_console_user import PHONE, shoot
from tests.conftest import LiveServer, report_csp_violations
from tests.upstreams.openai_upstream import UpstreamState, create_upstream_app

pytestmark = pytest.mark.browser


@pytest.fixture
def upstream():
    server = LiveServer(create_upstream_app(UpstreamState())).start()
    yield server
    server.stop()


def log_in_as_admin(page, url: str) -> None:
    create_user("boss@example.com", "password123", admin=True)
    page.goto(url + "/login")
    page.fill("input[name=email]", "boss@example.com")
    page.fill("input[name=password]", "password123")
    page.click("#login-panel button[type=submit]")
    page.wait_for_url("**/token")


def test_admin_channels_codes_users_prices(live_server, page, upstream):
    log_in_as_admin(page, live_server.url)
    page.click("nav >> text=Admin")
    page.wait_for_url("**/admin/channels")
    page.fill("#channels-panel input[name=name]", "fake openai")
    page.fill("#channels-panel input[name=base_url]", upstream.url + "/v1")
    page.fill("#channels-panel textarea[name=keys]", "sk-upstream")
    page.fill("#channels-panel input[name=models]", "gpt-4o-mini, gpt-4o")
    page.click("#channels-panel button:has-text('Add channel')")
    page.wait_for_selector("#channels-panel .ok")
    row = page.locator("tr[data-channel]").first
    row.locator("button:has-text('Test')").click()
    page.wait_for_selector("[data-testid=probe]")
    assert page.inner_text("[data-testid=probe]").startswith("OK in ")
    shoot(page, "admin-channels")
    assert Channel.get(Channel.name == "fake openai").last_tested_at is not None

    page.click(".subnav >> text=Redemption codes")
    page.fill("#codes-panel input[name=usd]", "20")
    page.fill("#codes-panel input[name=count]", "4")
    page.fill("#codes-panel input[name=name]", "november")
    page.click("#codes-panel button:has-text('Generate')")
    page.wait_for_selector("#new-codes")
    codes = page.input_value("#new-codes").split()
    assert len(codes) == 4 and RedemptionCode.select().count() == 4
    with page.expect_download() as download:
        page.click("a:has-text('Download CSV')")
    assert download.value.suggested_filename == "codes.csv"
    assert open(download.value.path()).read().splitlines()[1] == f"{codes[0]},$20.00,november"
    shoot(page, "admin-codes")

    create_user("customer@example.com", "password123")
    page.click(".subnav >> text=Users")
    page.click("#users-panel input[name=q]")
    page.keyboard.type("cust", delay=120)  # typing searches as you go and keeps the focus
    page.wait_for_function("() => document.querySelectorAll('tr[data-user]').length === 1")
    # As a person would: let the search for what was typed come back before opening a row's form.
    with page.expect_response(lambda r: r.url.endswith("/admin/users?q=customer")):
        page.keyboard.type("omer")
    assert page.evaluate("document.activeElement.name") == "q"
    assert page.input_value("#users-panel input[name=q]") == "customer"
    row = page.locator("tr[data-user='customer@example.com']")
    row.locator("summary:has-text('Adjust balance')").click()
    row.locator("input[name=usd]").fill("7")
    row.locator("input[name=reason]").fill("paid by bank")
    row.locator("button:has-text('Apply')").click()
    page.wait_for_selector("#users-panel .ok")
    assert page.inner_text("tr[data-user='customer@example.com'] [data-testid=user-balance]") == "$7.00"
    assert User.by_email("customer@example.com").quota == 3_500_000
    shoot(page, "admin-users")

    page.click(".subnav >> text=Prices and free tier")
    page.fill("#prices-panel input[name=model]", "gpt-4o")
    page.fill("#prices-panel input[name=input]", "2.5")
    page.fill("#prices-panel input[name=output]", "10")
    page.click("#prices-panel button:has-text('Save price')")
    page.wait_for_selector("#prices-panel tr[data-model='gpt-4o']")
    page.fill("#prices-panel textarea[name=text]", "Transfer to account 123, then email us.")
    page.fill("#prices-panel input[name=cny_per_usd]", "7.25")
    page.click("#prices-panel button:has-text('Save'):not(:has-text('price')):not(:has-text('free'))")
    page.wait_for_selector("#prices-panel .ok")
    shoot(page, "admin-prices")
    page.goto(live_server.url + "/pricing")
    assert "$2.50" in page.inner_text("tr[data-model='gpt-4o']")
    assert {a.action for a in AuditLog.select()} >= {"channel.create", "codes.create", "user.adjust", "price.set",
                                                      "options.topup"}
    page.goto(live_server.url + "/admin/audit")
    assert "user.adjust" in page.inner_text("#audit-panel")


def test_a_search_that_lands_late_keeps_the_form_the_admin_is_filling(live_server, page):
    log_in_as_admin(page, live_server.url)
    create_user("customer@example.com", "password123")
    page.goto(live_server.url + "/admin/users")
    held = []  # the search's request, answered only once the admin is typing in a row's form
    page.route(re.compile(r"/admin/users\?q="), lambda route: held.append(route))
    page.fill("#users-panel input[name=q]", "customer")
    while not held:
        page.wait_for_timeout(50)
    row = page.locator("tr[data-user='customer@example.com']")
    row.locator("summary:has-text('Adjust balance')").click()
    row.locator("input[name=usd]").fill("7")
    row.locator("input[name=reason]").click()
    with page.expect_response(lambda r: r.url.endswith("/admin/users?q=customer")):
        held.pop().continue_()
    page.wait_for_function("() => document.querySelectorAll('tr[data-user]').length === 1")  # the search applied
    assert row.locator("details").get_attribute("open") is not None
    assert row.locator("input[name=usd]").input_value() == "7"
    assert page.evaluate("document.activeElement.name") == "reason"
    page.keyboard.type("late search")
    row.locator("button:has-text('Apply')").click()
    page.wait_for_selector("#users-panel .ok")
    assert page.inner_text("tr[data-user='customer@example.com'] [data-testid=user-balance]") == "$7.00"
    assert AuditLog.select().where(AuditLog.action == "user.adjust").count() == 1


def test_admin_in_chinese_on_a_phone(live_server, browser):
    context = browser.new_context(locale="zh-CN", viewport=PHONE)
    violations = report_csp_violations(context)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        log_in_as_admin(page, live_server.url)
        page.goto(live_server.url + "/admin/codes")
        assert page.inner_text("h1") == "兑换码"
        page.fill("#codes-panel input[name=usd]", "abc")
        page.click("#codes-panel button:has-text('生成')")
        page.wait_for_selector("#codes-panel .error")
        page.goto(live_server.url + "/admin/users")
        assert page.inner_text("h1") == "用户" and "boss@example.com" in page.inner_text("#users-panel")
        shoot(page, "admin-users-zh")
        page.goto(live_server.url + "/admin/prices")
        shoot(page, "admin-prices-zh")
    finally:
        context.close()
    assert not violations, f"the page broke its Content-Security-Policy: {violations}"
