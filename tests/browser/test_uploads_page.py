"""The uploads page in Chromium: quote, drag and drop, progress, the list, copy; against arlocal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from arweave_store.models import Upload
from kernel.models import User
from tests.arweave_store.conftest import make_customer, wait_for
from tests.conftest import report_csp_violations

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def log_in(page, server, email: str) -> None:
    page.goto(server.url + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "password123")
    with page.expect_navigation():
        page.eval_on_selector("#login-panel form", "form => form.submit()")  # a plain post, followed
    assert "/login" not in page.url


def test_uploads_page_quotes_uploads_with_progress_and_lists(arweave_server, arlocal, page, tmp_path):
    customer = make_customer("web@example.com", usd="5")
    log_in(page, arweave_server, "web@example.com")
    page.click("nav >> text=Uploads")
    page.wait_for_url("**/uploads/")
    assert "Permanent uploads" in page.inner_text("h1")
    assert "No uploads yet" in page.inner_text("#upload-list")

    sample = tmp_path / "notes 2024.txt"
    sample.write_bytes(os.urandom(400 * 1024))  # two chunks: the progress bar has something to show
    page.set_input_files("#file-input", str(sample))
    quote = page.locator("#quote-text")
    quote.wait_for()
    assert "notes 2024.txt" in quote.inner_text() and "costs $" in quote.inner_text()
    page.screenshot(path=str(ARTIFACTS / "uploads-quote.png"), full_page=True)

    page.click("#upload-button")
    page.wait_for_selector("#upload-result:has-text('Stored:')")
    assert page.eval_on_selector("#upload-progress", "p => p.value") == 100
    row = page.locator("#upload-list tbody tr")
    row.wait_for()
    assert "notes 2024.txt" in row.inner_text() and "pending" in row.inner_text()
    upload = Upload.get()
    assert User.get_by_id(customer.user_id).quota == 2_500_000 - upload.cost_quota
    assert arlocal.data(upload.tx_id) == sample.read_bytes()
    assert page.get_attribute("#upload-list [data-copy]", "data-copy") == f"{arlocal.url}/{upload.tx_id}"
    page.click("#upload-list [data-copy]")
    page.wait_for_selector("#upload-list [data-copy]:has-text('Copied')")
    page.screenshot(path=str(ARTIFACTS / "uploads-done.png"), full_page=True)

    arlocal.mine(2)
    wait_for(lambda: Upload.get().status == "confirmed", what="confirmation")
    page.reload()
    assert "permanent" in page.inner_text("#upload-list tbody tr")


def test_uploads_page_drag_and_drop_and_phone_width(arweave_server, arlocal, browser):
    make_customer("drop@example.com", usd="5")
    context = browser.new_context(locale="en-US", viewport={"width": 390, "height": 800})
    violations = report_csp_violations(context)
    page = context.new_page()
    try:
        log_in(page, arweave_server, "drop@example.com")
        page.goto(arweave_server.url + "/uploads/")
        transfer = page.evaluate_handle("""() => {
            const dt = new DataTransfer();
            dt.items.add(new File(["dropped bytes"], "dropped.txt", {type: "text/plain"}));
            return dt; }""")
        page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
        page.wait_for_selector("#quote-text:has-text('dropped.txt')")
        page.click("#upload-button")
        page.wait_for_selector("#upload-list tbody tr:has-text('dropped.txt')")
        assert arlocal.data(Upload.get().tx_id) == b"dropped bytes"
        page.screenshot(path=str(ARTIFACTS / "uploads-phone.png"), full_page=True)
    finally:
        context.close()
    assert not violations, f"the page broke its Content-Security-Policy: {violations}"


def test_visitors_without_a_key_are_told_to_paste_one(arweave_server, page):
    page.goto(arweave_server.url + "/uploads/")
    assert "needs an API key" in page.inner_text("main")
    assert page.locator("#uploader").count() == 0
    ticket = page.request.get(arweave_server.url + "/uploads/ticket")
    assert ticket.status == 401


def test_chat_composer_attaches_a_file_to_arweave_and_inserts_its_link(arweave_server, arlocal, page, tmp_path):
    customer = make_customer("chat@example.com", usd="5")
    page.goto(arweave_server.url + "/")
    assert page.locator("[data-arweave-attach]").count() == 0  # free visitors: no button
    page.fill("#key-panel input[name=key]", customer.key)
    page.click("#key-panel button[type=submit]")
    page.wait_for_selector("#key-panel .balance")
    page.reload()
    page.fill("#composer-input", "Here is the report:")
    sample = tmp_path / "report.txt"
    sample.write_text("quarterly numbers")
    page.set_input_files("[data-arweave-attach]", str(sample))
    page.wait_for_function("() => document.getElementById('composer-input').value.includes('](')")
    upload = Upload.get()
    assert page.input_value("#composer-input") == f"Here is the report: [report.txt]({arlocal.url}/{upload.tx_id})"
    assert arlocal.data(upload.tx_id) == b"quarterly numbers"
    assert "Stored on Arweave" in page.inner_text("#composer-notice")
    page.screenshot(path=str(ARTIFACTS / "chat-arweave-attach.png"))


def test_uploads_page_speaks_chinese(arweave_server, browser):
    make_customer("zh@example.com", usd="5")
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
    violations = report_csp_violations(context)
    page = context.new_page()
    try:
        log_in(page, arweave_server, "zh@example.com")
        page.goto(arweave_server.url + "/uploads/")
        assert page.inner_text("h1") == "永久上传"
        assert "把文件拖到这里" in page.inner_text("#dropzone")
        assert "还没有上传" in page.inner_text("#upload-list")
        page.screenshot(path=str(ARTIFACTS / "uploads-zh.png"))
    finally:
        context.close()
    assert not violations, f"the page broke its Content-Security-Policy: {violations}"
