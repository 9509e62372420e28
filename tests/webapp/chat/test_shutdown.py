"""A clean shutdown while replies are still being written loses none of their money."""

from __future__ import annotations

import re

import httpx

from kernel.models import RequestLog, Token
from tests.webapp.chat.deployment import start_deployment
from webapp.models import Message


def test_a_reply_still_being_written_at_shutdown_is_settled_and_logged(tmp_path_factory):
    deployment = start_deployment(tmp_path_factory)
    chat_app = next(deployment)
    try:
        chat_app.upstream.delay = 0.05
        chat_app.upstream.replies.append(" ".join(f"w{i}" for i in range(400)))  # 20 s of reply
        with httpx.Client(base_url=chat_app.url, timeout=15) as client:
            page = client.get("/")
            client.headers.update({"X-CSRFToken": re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1),
                                   "HX-Request": "true"})
            assert client.post("/chat/key", data={"key": chat_app.key}).status_code == 200
            sent = client.post("/chat/send", data={"content": "a long one please", "model": "gpt-4o"})
            reply_id = int(re.findall(r'id="msg-(\d+)"', sent.text)[-1])
            url = re.search(r'sse-connect="([^"]+)"', sent.text).group(1)
            with client.stream("GET", url) as resp:
                tails = 0
                for line in resp.iter_lines():
                    tails += line.startswith("event: tail")
                    if tails == 3:
                        break  # the page closes; the reply goes on being written
        token = Token.get(Token.name == "all models")
        chat_app.server.stop()  # a clean shutdown, the reply still running
        row = Message.get_by_id(reply_id)
        assert row.status == "stopped" and 0 < len(row.content.split()) < 400
        logs = list(RequestLog.select().where(RequestLog.kind == "relay", RequestLog.token_id == token.id))
        assert len(logs) == 1 and logs[0].quota > 0 and logs[0].completion_tokens > 0
        # Nothing is left reserved: the account lost exactly what the log row says.
        user = token.user
        assert 20 * 500_000 - type(user).get_by_id(user.id).quota == logs[0].quota
    finally:
        next(deployment, None)
