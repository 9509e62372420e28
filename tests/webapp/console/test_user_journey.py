"""The whole path of a new user, over real sockets: the console, the gateway, a fake upstream.

Register, log in, fail to use a paid model with an empty balance, redeem a code,
see the balance, create a key, call /v1/chat/completions with the openai SDK,
see the call on /log and the balance lower by exactly the logged cost.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import openai
import pytest

from accounts import add_channel, create_codes, set_price
from kernel.models import RequestLog, User
from tests.conftest import LiveServer
from tests.upstreams.openai_upstream import UpstreamState, create_upstream_app
from tests.webapp.console.web import WebUser

KEY = re.compile(r'value="(sk-[A-Za-z0-9]{48})"')


@pytest.fixture
def deployment(settings, database):
    """A fake OpenAI upstream, a priced channel to it, and the whole permachat deployment."""
    from webapp.asgi import create_asgi_app

    upstream = LiveServer(create_upstream_app(UpstreamState())).start()
    add_channel(type="openai", name="fake openai", base_url=upstream.url + "/v1", keys=["sk-up"],
                models="gpt-4o-mini, gpt-4o")
    set_price("gpt-4o-mini", input_usd="0.15", output_usd="0.6")  # the free tier's model by default
    set_price("gpt-4o", input_usd="150", output_usd="600")  # paid, and dear: one call costs whole cents
    # Every person here signs up from 127.0.0.1: no per-address limit on registrations.
    server = LiveServer(create_asgi_app(replace(settings, registrations_per_hour=0))).start()
    server.upstream_url = upstream.url
    yield server
    server.stop()
    upstream.stop()


def wait_for_usage(web: WebUser, count: int) -> dict:
    deadline = time.monotonic() + 10
    while True:
        data = web.get("/log.json").json()
        if len(data["rows"]) >= count or time.monotonic() > deadline:
            return data
        time.sleep(0.05)


def test_new_user_from_register_to_billed_call(deployment):
    web = WebUser(deployment.url)
    r = web.post("/register", {"email": "newbie@example.com", "password": "s3cret-pass", "password2": "s3cret-pass"})
    assert r.url.path == "/topup" and "$0.00" in web.text("/topup")
    web.post("/logout")
    assert web.post("/login", {"email": "newbie@example.com", "password": "s3cret-pass"}).url.path == "/token"

    # An empty account cannot use a paid model: not on the chat page, not through the API.
    refused_page = web.post("/chat/send", {"model": "gpt-4o", "content": "Hi"}, headers={"HX-Request": "true"})
    assert "This model is not free" in refused_page.text
    first_key = KEY.search(web.post("/token", {"name": "early"}).text).group(1)
    sdk = openai.OpenAI(base_url=deployment.url + "/v1", api_key=first_key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert refused.value.code == "insufficient_quota" and "/topup" in refused.value.message

    [code] = create_codes("10", name="journey")
    page = web.post("/topup", {"code": code}).text
    assert "$10.00 added to your balance" in page
    assert web.get("/topup.json").json()["balance_usd"] == "$10.00"

    key = KEY.search(web.post("/token", {"name": "sdk", "usd": "5"}).text).group(1)
    assert key not in web.get("/token").text  # shown once only
    client = openai.OpenAI(base_url=deployment.url + "/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content

    usage = wait_for_usage(web, 1)
    [row] = [r for r in usage["rows"] if r["status"] == 200]
    assert (row["key"], row["model"], row["prompt_tokens"], row["completion_tokens"]) == (
        "sdk", "gpt-4o", reply.usage.prompt_tokens, reply.usage.completion_tokens)
    assert row["cost_units"] > 0
    balance = User.by_email("newbie@example.com").quota
    assert balance == 5_000_000 - row["cost_units"]
    log_page = web.text("/log")
    assert row["cost_usd"] in log_page and "gpt-4o" in log_page
    assert web.get("/topup.json").json()["balance_usd"] == usage["balance_usd"]
    web.close()


def test_one_code_redeemed_by_many_sessions_at_once_credits_once(deployment):
    users = [WebUser(deployment.url) for _ in range(12)]
    for i, web in enumerate(users):
        web.post("/register", {"email": f"racer{i}@example.com", "password": "password123",
                               "password2": "password123"})
    [code] = create_codes("2")
    with ThreadPoolExecutor(len(users)) as pool:
        statuses = list(pool.map(lambda web: web.http.post("/topup", data={"code": code, "csrf_token": web.csrf})
                                 .status_code, users))
    assert sorted(statuses) == [200] + [409] * 11
    assert sum(u.quota for u in User.select().where(User.email.startswith("racer"))) == 1_000_000
    assert RequestLog.select().where(RequestLog.kind == "topup").count() == 1
    for web in users:
        web.close()


def test_console_changes_reach_the_gateway_at_once(deployment):
    """No waiting for caches: a disabled key stops now; a new channel serves now; a top-up pays now."""
    from accounts import create_user

    web = WebUser(deployment.url)
    web.post("/register", {"email": "quick@example.com", "password": "password123", "password2": "password123"})
    key = KEY.search(web.post("/token", {"name": "k"}).text).group(1)
    client = openai.OpenAI(base_url=deployment.url + "/v1", api_key=key, max_retries=0)
    ask = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
    with pytest.raises(openai.RateLimitError):  # the gateway now caches this key with an empty balance
        client.chat.completions.create(**ask)
    [code] = create_codes("10")
    web.post("/topup", {"code": code})
    assert client.chat.completions.create(**ask).choices[0].message.content

    token_id = web.get("/token.json").json()["tokens"][0]["id"]
    web.post(f"/token/{token_id}", {"action": "disable"})
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(**ask)
    assert denied.value.code == "key_disabled"

    create_user("chief@example.com", "password123", admin=True)
    admin = WebUser(deployment.url)
    admin.post("/login", {"email": "chief@example.com", "password": "password123"})
    upstream_base = deployment.upstream_url + "/v1"
    r = admin.post("/admin/channels", {"type": "openai", "name": "second", "base_url": upstream_base,
                                       "keys": "sk-up", "models": "gpt-4o-2"})
    assert "Channel second added." in r.text
    admin.post("/admin/prices", {"model": "gpt-4o-2", "input": "1", "output": "1"})
    web.post(f"/token/{token_id}", {"action": "enable"})
    reply = client.chat.completions.create(model="gpt-4o-2", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content
    web.close()
    admin.close()
