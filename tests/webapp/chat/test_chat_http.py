"""The chat over plain HTTP: send a message, read the reply's SSE stream, one generation only."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.webapp.chat.deployment import start_deployment


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
