"""The documented deployment, run: two replicas behind deploy/nginx.conf on one PostgreSQL and Redis.

Replica A runs `permachat serve --workers 2`, replica B `permachat serve`; nginx
(Debian's) runs the shipped site file with only its ports changed, round-robin.
Everything a user does goes through nginx: the `openai` SDK, the chat page
(send, stream, reconnect, Stop), an upload to arlocal, the admin pages, and 40
concurrent requests on a key that can pay for only some of them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import threading
import time

import httpx
import openai
import pytest

import accounts
from arweave_store.models import Upload
from kernel.models import Hold, RequestLog, Token, User
from tests.conftest import LiveServer, migrate_database
from tests.deployment.nginx import Nginx
from tests.processes import clean_env, serve
from tests.upstreams.openai_upstream import UpstreamState, create_upstream_app
from tests.webapp.chat.test_chat_http import csrf_of, read_stream, stream_url
from webapp.chat import free_tier

REPLY = "Hello through the proxy."


@pytest.fixture
def deployment(postgres_url, redis_url, arlocal, service_wallet, tmp_path):
    database = migrate_database(postgres_url)
    state = UpstreamState(default_reply=REPLY, record=False)
    upstream = LiveServer(create_upstream_app(state)).start()
    accounts.add_channel(type="openai", name="upstream", base_url=upstream.url + "/v1", keys=["sk-upstream"],
                         models="gpt-4o-mini")
    accounts.set_price("gpt-4o-mini", input_usd="1", output_usd="2")
    free_tier.write_config({"free_models": "gpt-4o-mini", "free_rpm": 100, "free_daily_budget_usd": "1"})
    admin = accounts.create_user("admin@example.com", "admin password 1", admin=True)
    customer = accounts.create_user("customer@example.com", "password123")
    accounts.topup(customer, "20")
    env = clean_env(PERMACHAT_DATABASE_URL=postgres_url, PERMACHAT_REDIS_URL=redis_url,
                    PERMACHAT_SECRET_KEY="one secret for every replica", PERMACHAT_DATA_DIR=str(tmp_path / "data"),
                    PERMACHAT_ARWEAVE_WALLET=str(service_wallet.path), PERMACHAT_ARWEAVE_GATEWAY=arlocal.url,
                    PERMACHAT_ARWEAVE_CONFIRMATIONS="1", PERMACHAT_ARWEAVE_POLL_SECONDS="0.2")
    a = serve(env, tmp_path / "logs", "--workers", "2")
    b = serve(env, tmp_path / "logs")
    proxy = Nginx(tmp_path / "nginx", [a.port, b.port])
    try:
        yield proxy, state, admin, customer
    finally:
        proxy.stop()
        for replica in (a, b):
            replica.terminate()
        upstream.stop()
        database.close()


def test_everything_works_through_the_proxy(deployment, arlocal):
    proxy, upstream, admin, customer = deployment
    key = accounts.create_token(customer, name="sdk").key

    # The openai SDK, both ways, several times (round-robin over both replicas).
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=key, max_retries=0)
    for _ in range(3):
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == REPLY
        pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True) if c.choices]
        assert "".join(pieces) == REPLY
    assert len(proxy.replicas_used()) == 2, proxy.replicas_used()

    # The chat page as a visitor: send, stream, reconnect, and Stop on a long reply.
    with contextlib.closing(httpx.Client(base_url=proxy.url, timeout=30)) as visitor:
        page = visitor.get("/")
        visitor.headers.update({"X-CSRFToken": csrf_of(page.text), "HX-Request": "true"})
        sent = visitor.post("/chat/send", data={"content": "hello", "model": "gpt-4o-mini"})
        assert sent.status_code == 200, sent.text
        events = read_stream(visitor, stream_url(sent.text))
        assert [n for n, _ in events][-2:] == ["final", "done"] and REPLY.split()[0] in events[-2][1]
        again = read_stream(visitor, stream_url(sent.text))  # a reconnect, on whichever replica
        assert [n for n, _ in again] == ["final", "done"] and again[0][1] == events[-2][1]

        upstream.delay = 0.1
        upstream.replies.append(" ".join(f"w{i}" for i in range(300)))
        sent = visitor.post("/chat/send", data={"content": "a long one", "model": "gpt-4o-mini"})
        reply_id = int(re.findall(r'id="msg-(\d+)"', sent.text)[-1])
        result: dict = {}
        reader = threading.Thread(target=lambda: result.setdefault("events", read_stream(
            visitor, stream_url(sent.text))), daemon=True)
        reader.start()
        time.sleep(1.5)
        assert visitor.post(f"/chat/m/{reply_id}/stop").status_code == 204
        reader.join(20)
        upstream.delay = 0.0
        assert "stopped" in result["events"][-2][1] and "w0" in result["events"][-2][1]

    # An upload to arlocal, billed once, its bytes on the network.
    data = os.urandom(300 * 1024)
    uploaded = httpx.post(proxy.url + "/arweave/upload", headers={"Authorization": f"Bearer {key}"},
                          files={"file": ("big.bin", data, "application/octet-stream")}, timeout=60)
    assert uploaded.status_code == 200, uploaded.text
    tx_id = uploaded.json()["id"]
    assert arlocal.data(tx_id) == data
    assert httpx.get(proxy.url + f"/arweave/{tx_id}").content == data
    arlocal.mine(2)
    deadline = time.monotonic() + 20
    while Upload.get(Upload.tx_id == tx_id).status != "confirmed":
        assert time.monotonic() < deadline, "the upload was never confirmed"
        time.sleep(0.1)
    assert RequestLog.select().where(RequestLog.kind == "upload").count() == 1

    # The admin pages, logged in on one replica and used on both.
    with contextlib.closing(httpx.Client(base_url=proxy.url, timeout=30)) as browser:
        form = browser.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        logged_in = browser.post("/login", data={"email": admin.email, "password": "admin password 1",
                                                 "csrf_token": token})
        assert logged_in.status_code == 303, logged_in.text
        for _ in range(4):
            page = browser.get("/admin/", follow_redirects=True)
            assert page.status_code == 200 and page.url.path == "/admin/channels" and "upstream" in page.text

    # The money: every unit consumed is in a log row, and nothing is still held.
    deadline = time.monotonic() + 10
    while Hold.select().where(Hold.user_id == customer.id).exists():
        assert time.monotonic() < deadline, "reservations still held after every request ended"
        time.sleep(0.05)
    user = User.get_by_id(customer.id)
    logs = list(RequestLog.select().where(RequestLog.user_id == customer.id))
    assert 20 * 500_000 - user.quota == sum(row.quota for row in logs if row.kind in ("relay", "upload"))


def test_a_key_that_affords_some_of_40_concurrent_requests_never_overspends(deployment):
    proxy, upstream, _, customer = deployment
    upstream.wait = 1.0  # each call holds its reservation for a second
    limit_units = 10_000  # $0.02: each request holds about 1,020 units (1,000 output tokens at $2/M)
    new = accounts.create_token(customer, name="poor", usd="0.02")
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=new.key, max_retries=0, timeout=60)

    def call(_: int) -> str:
        try:
            client.chat.completions.create(model="gpt-4o-mini", max_tokens=1000,
                                           messages=[{"role": "user", "content": "hi"}])
            return "served"
        except openai.RateLimitError as exc:
            assert exc.code == "insufficient_quota", exc
            return "refused"

    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        outcomes = list(pool.map(call, range(40)))
    served = outcomes.count("served")
    assert served + outcomes.count("refused") == 40
    assert 1 <= served < 40, outcomes
    # The replicas write settlements in batches, just after answering: wait until none is held.
    deadline = time.monotonic() + 10
    while Hold.select().where(Hold.spender_id == new.token.id).exists():
        assert time.monotonic() < deadline, "reservations still held after every call returned"
        time.sleep(0.05)
    token = Token.get_by_id(new.token.id)
    logs = list(RequestLog.select().where((RequestLog.token_id == new.token.id) & (RequestLog.kind == "relay")))
    assert token.remain_quota >= 0, "the key was overspent"
    assert limit_units - token.remain_quota == token.used_quota == sum(row.quota for row in logs)
    assert len([row for row in logs if row.status_code == 200]) == served
