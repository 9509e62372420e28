"""A reply being written on one replica, watched from another: live, the same text, and Stop works.

Two `permachat serve` processes on one database and one Redis, as behind a
round-robin proxy: the reply's stream is started on A, and a reconnect or a
second tab lands on B.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time

import httpx
import pytest

import accounts
from tests.conftest import LiveServer
from tests.processes import clean_env, serve
from tests.upstreams.openai_upstream import UpstreamState, create_upstream_app
from tests.webapp.chat.test_chat_http import csrf_of, read_stream, stream_url
from webapp.chat import free_tier
from webapp.models import Message

REPLY = " ".join(f"word{i}" for i in range(40))  # 4 s at 0.1 s a piece


@pytest.fixture
def replicas(settings, database, redis_url, tmp_path):
    upstream = LiveServer(create_upstream_app(UpstreamState(default_reply=REPLY, delay=0.1, record=False))).start()
    accounts.add_channel(type="openai", name="up", base_url=upstream.url + "/v1", keys=["sk-upstream"],
                         models="gpt-4o-mini")
    accounts.set_price("gpt-4o-mini", input_usd="0.15", output_usd="0.60")
    free_tier.write_config({"free_models": "gpt-4o-mini", "free_rpm": 100, "free_daily_budget_usd": "1"})
    env = clean_env(PERMACHAT_DATA_DIR=str(settings.data_dir), PERMACHAT_SECRET_KEY="test-secret",
                    PERMACHAT_REDIS_URL=redis_url)
    servers = [serve(env, tmp_path / "logs") for _ in range(2)]
    yield servers
    for server in servers:
        server.terminate()
    upstream.stop()


def visitor(first_url: str) -> httpx.Client:
    client = httpx.Client(timeout=30)  # one cookie jar for both replicas: the same visitor
    page = client.get(first_url + "/")
    client.headers.update({"X-CSRFToken": csrf_of(page.text), "HX-Request": "true"})
    return client


def start_on(client: httpx.Client, url: str, results: dict, name: str) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.__setitem__(name, read_stream(client, url)), daemon=True)
    thread.start()
    return thread


def test_a_reply_started_on_one_replica_streams_live_on_the_other(replicas):
    a, b = replicas
    with contextlib.closing(visitor(a.url)) as client:
        sent = client.post(a.url + "/chat/send", data={"content": "tell me", "model": "gpt-4o-mini"})
        path = stream_url(sent.text)
        results: dict = {}
        on_a = start_on(client, a.url + path, results, "a")  # the first connection starts the reply on A
        time.sleep(1.0)
        began = time.monotonic()
        on_b = read_stream(client, b.url + path)  # a reconnect (or a second tab) served by B
        followed_for = time.monotonic() - began
        on_a.join(30)
    names = [name for name, _ in on_b]
    assert names[0] == "snapshot" and names[-2:] == ["final", "done"], names
    assert names.count("tail") >= 5, "B showed the reply at once instead of following it live"
    assert followed_for > 1.5, followed_for
    assert "word39" in on_b[-2][1] and "status-done" in on_b[-2][1]
    assert on_b[-2][1] == results["a"][-2][1], "the two replicas ended on different messages"
    tails = [data for name, data in on_b if name == "tail"]
    assert "word" in tails[-1]


def test_stop_on_the_other_replica_stops_the_reply(replicas):
    a, b = replicas
    with contextlib.closing(visitor(a.url)) as client:
        sent = client.post(a.url + "/chat/send", data={"content": "tell me", "model": "gpt-4o-mini"})
        reply_id = int(re.findall(r'id="msg-(\d+)"', sent.text)[-1])
        path = stream_url(sent.text)
        results: dict = {}
        threads = [start_on(client, a.url + path, results, "a")]
        time.sleep(0.5)
        threads.append(start_on(client, b.url + path, results, "b"))
        time.sleep(1.0)
        assert client.post(f"{b.url}/chat/m/{reply_id}/stop").status_code == 204
        stopped_at = time.monotonic()
        for thread in threads:
            thread.join(30)
        ended_after = time.monotonic() - stopped_at
    for name in ("a", "b"):
        assert [n for n, _ in results[name]][-2:] == ["final", "done"]
        assert "stopped" in results[name][-2][1]
    row = Message.get_by_id(reply_id)
    assert row.status == "stopped" and row.content.startswith("word0") and "word39" not in row.content
    assert ended_after < 3.5, ended_after
