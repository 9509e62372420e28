"""Faults, each through a real server: a clean error or the failover's answer, the bill right, a log row, nothing left.

Every case ends with the same checks (:func:`assert_clean`): no reservation is
still held, the account's balance went down by exactly the sum of its log rows,
every request has its log row, and the gateway's event loop runs no more tasks
than before the faults (no watcher, stream or upstream call left behind).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
import openai
import pytest

from kernel.models import Hold, RequestLog
from tests.conftest import free_port
from tests.gateway.helpers import wait_for

MSGS = [{"role": "user", "content": "Hi"}]
TIMEOUT = 1.0  # PERMACHAT_UPSTREAM_TIMEOUT for these servers: the upstream's "wait" goes beyond it


def loop_tasks(server) -> int:
    """How many tasks the server's event loop runs now (asked on that loop, from this thread)."""
    loop = server.gateway.ledger._task.get_loop()

    async def count() -> int:
        return len(asyncio.all_tasks())

    return asyncio.run_coroutine_threadsafe(count(), loop).result(5)


def assert_clean(server, acct, before: int, requests: int, baseline_tasks: int) -> list[RequestLog]:
    wait_for(lambda: not Hold.select().exists(), timeout=10)
    rows = list(RequestLog.select().where((RequestLog.kind == "relay") & (RequestLog.user_id == acct.user.id)))
    assert len(rows) == requests, [(r.status_code, r.error) for r in rows]
    assert before - acct.refresh().user.quota == sum(r.quota for r in rows)
    wait_for(lambda: loop_tasks(server) <= baseline_tasks, timeout=10)
    return rows


@pytest.fixture
def started(upstream, make_account, price, channel, serve):
    """A server on the test upstream and a funded key: (server, account, its balance, the loop's task count)."""

    def start(account: dict | None = None, **settings):
        channel(upstream)
        price("gpt-4o-mini")
        acct = make_account(**(account or {}))
        server = serve(**settings)
        return server, acct, acct.user.quota, loop_tasks(server)

    return start


def post(server, acct, *, stream: bool, **switches) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": MSGS, "stream": stream, "x_upstream": switches}
    return httpx.post(server.url + "/v1/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {acct.key}"})


def sse_data(response: httpx.Response) -> list[str]:
    return [block[6:] for block in response.text.split("\n\n") if block.startswith("data: ")]


# What an upstream can do before its first byte, as the state of the faulty test upstream.
BEFORE_FIRST_BYTE = {
    "refuses the connection": None,  # a channel whose port nobody listens on
    "times out before the first byte": {"wait": 3 * TIMEOUT},
    "answers 429": {"failures": [429] * 5},
    "answers 500": {"failures": [500] * 5},
    "answers 503": {"failures": [503] * 5},
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("healthy_beside", [False, True], ids=["alone", "with-failover"])
@pytest.mark.parametrize("fault", list(BEFORE_FIRST_BYTE))
def test_a_fault_before_the_first_byte_fails_over_or_is_a_clean_refunded_error(
        fault, healthy_beside, stream, make_upstream, make_account, price, channel, serve):
    state = BEFORE_FIRST_BYTE[fault]
    bad_url = f"http://127.0.0.1:{free_port()}/v1" if state is None else make_upstream(**state).base_url
    channel(bad_url, priority=10, name="bad")
    if healthy_beside:
        channel(make_upstream(), priority=0, name="good")
    price("gpt-4o-mini")
    acct = make_account()
    before = acct.user.quota
    server = serve(upstream_timeout=TIMEOUT)
    baseline = loop_tasks(server)
    response = post(server, acct, stream=stream)
    rows = assert_clean(server, acct, before, 1, baseline)
    if healthy_beside:  # the client gets the healthy channel's answer, billed once
        assert response.status_code == 200, response.text
        if stream:
            assert sse_data(response)[-1] == "[DONE]"
        else:
            assert response.json()["choices"][0]["message"]["content"]
        assert rows[0].status_code == 200 and rows[0].quota > 0
    else:  # an OpenAI-shaped error, nothing charged
        assert response.status_code in (429, 502, 503, 504), response.text
        error = response.json()["error"]
        assert error["message"] and error["type"] and "Traceback" not in response.text
        assert rows[0].quota == 0 and rows[0].status_code == response.status_code and rows[0].error


def test_an_upstream_that_stops_mid_stream_ends_with_an_error_event_billed_for_what_arrived(started):
    server, acct, before, baseline = started()
    response = post(server, acct, stream=True, disconnect_after=3, reply="one two three four five six")
    events = sse_data(response)
    assert response.status_code == 200 and "[DONE]" not in events
    assert json.loads(events[-1])["error"]["type"] == "upstream_error"
    row = assert_clean(server, acct, before, 1, baseline)[0]
    assert row.status_code == 502 and row.completion_tokens > 0 and 0 < row.quota


@pytest.mark.parametrize("where", ["json", "first chunks", "mid-stream"])
def test_malformed_json_or_sse_from_the_upstream_is_a_clean_error(where, started):
    server, acct, before, baseline = started()
    # The third chunk is not JSON: with no delay it arrives with the first ones, before the client got
    # anything; with a delay, after the first chunks were relayed.
    response = post(server, acct, stream=where != "json", malformed=True, reply="one two three four five six",
                    delay=0.1 if where == "mid-stream" else 0)
    if where == "mid-stream":
        events = sse_data(response)
        assert response.status_code == 200 and "[DONE]" not in events
        assert "{not json" not in events, "the garbage was passed on as a chunk"
        assert json.loads(events[-1])["error"]["type"] == "upstream_error"
    else:
        assert response.status_code == 502, response.text
        assert response.json()["error"]["type"] == "upstream_error"
    row = assert_clean(server, acct, before, 1, baseline)[0]
    assert row.status_code == 502 and row.error
    assert (row.quota > 0) == (where == "mid-stream")  # billed for what was relayed, if anything


@pytest.mark.parametrize("when", ["before the upstream answers", "during the stream"])
def test_a_client_that_hangs_up_leaves_nothing_behind(when, upstream, started):
    server, acct, before, baseline = started()
    switches = {"wait": 10} if when.startswith("before") else {"delay": 0.2, "reply": " ".join(["w"] * 200)}
    body = {"model": "gpt-4o-mini", "messages": MSGS, "stream": True, "x_upstream": switches}
    headers = {"Authorization": f"Bearer {acct.key}"}
    if when.startswith("during"):
        with httpx.Client(timeout=30) as client, client.stream(
                "POST", server.url + "/v1/chat/completions", json=body, headers=headers) as response:
            for line in response.iter_lines():
                if line.startswith("data: {") and any(
                        (c.get("delta") or {}).get("content") for c in json.loads(line[6:])["choices"]):
                    break  # some text arrived; leaving the block closes the connection mid-stream
    else:
        # No byte comes while the model thinks: the client gives up after half a second.
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.url + "/v1/chat/completions", json=body, headers=headers, timeout=0.5)
    wait_for(lambda: upstream.state.cancelled == 1, timeout=5)
    row = assert_clean(server, acct, before, 1, baseline)[0]
    # Billed "for what was generated, at least the prompt" (README): the prompt alone before the answer.
    assert row.status_code == 499 and row.quota > 0 and row.prompt_tokens > 0
    assert (row.completion_tokens > 0) == when.startswith("during")


def test_a_client_that_hangs_up_on_a_non_stream_call_cancels_it_and_pays_the_prompt(upstream, started):
    server, acct, before, baseline = started()
    with pytest.raises(httpx.ReadTimeout):  # the model thinks for 10 s; the client waits half a second
        httpx.post(server.url + "/v1/chat/completions", timeout=0.5, headers={"Authorization": f"Bearer {acct.key}"},
                   json={"model": "gpt-4o-mini", "messages": MSGS, "x_upstream": {"wait": 10}})
    wait_for(lambda: upstream.state.cancelled == 1, timeout=3)  # the upstream call was cut, not waited for
    row = assert_clean(server, acct, before, 1, baseline)[0]
    assert row.status_code == 499 and not row.is_stream
    assert row.prompt_tokens > 0 and row.completion_tokens == 0 and row.quota > 0


def test_a_client_that_leaves_after_a_non_stream_answer_is_billed_once(started):
    server, acct, before, baseline = started()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=acct.key, max_retries=0)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    client.close()  # the connections go away right after their answers
    rows = assert_clean(server, acct, before, 3, baseline)
    assert all(r.status_code == 200 and r.quota > 0 for r in rows)


def test_postgresql_connections_cut_under_load_cost_nothing_and_heal(postgres_url, upstream, tmp_path):
    """pg_terminate_backend on every connection of a serving process (a PostgreSQL restart, a failover)."""
    import concurrent.futures

    import psycopg2

    import accounts
    from kernel.models import User
    from tests.conftest import migrate_database
    from tests.processes import clean_env
    from tests.processes import serve as serve_process

    database = migrate_database(postgres_url)
    accounts.add_channel(type="openai", name="up", base_url=upstream.base_url, keys=["sk-upstream"],
                         models="gpt-4o-mini")
    accounts.set_price("gpt-4o-mini", input_usd="1", output_usd="2")
    user = accounts.create_user("pg-faults@example.com", "password123")
    accounts.topup(user, "5")
    key = accounts.create_token(user).key
    before = User.get_by_id(user.id).quota
    server = serve_process(clean_env(PERMACHAT_DATABASE_URL=postgres_url, PERMACHAT_SECRET_KEY="test-secret",
                                     PERMACHAT_DATA_DIR=str(tmp_path / "data")), tmp_path / "logs")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=30)
    upstream.state.wait = 0.1  # so that the cuts below fall while requests are in flight

    def one(i: int) -> str:
        try:
            if i % 2:
                client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
            else:
                list(client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))
            return "ok"
        except openai.APIStatusError as exc:  # a clean error is allowed while the connections are cut
            assert exc.status_code in (500, 503) and "Traceback" not in str(exc.body), exc.body
            return str(exc.status_code)

    ours = database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]  # this test's own connection
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            warm = list(pool.map(one, range(16)))
            assert warm == ["ok"] * 16
            during = pool.map(one, range(40))
            for _ in range(3):  # cut every connection of the server, three times, while requests flow
                time.sleep(0.2)
                admin.cursor().execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                       "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                                       "AND pid <> %s", (ours,))
            during = list(during)
        # A connection in use when it was cut fails its request; every other one is replaced before use.
        time.sleep(1.5)
        after = [one(i) for i in range(10)]
        assert after == ["ok"] * 10, ("the server did not heal after its connections were cut", after)
        answered = 16 + during.count("ok") + 10
        deadline = time.monotonic() + 15
        while Hold.select().exists():
            assert time.monotonic() < deadline, "reservations still held"
            time.sleep(0.1)
        rows = list(RequestLog.select().where((RequestLog.user_id == user.id) & (RequestLog.kind == "relay")))
        assert len([r for r in rows if r.status_code == 200]) == answered
        assert before - User.get_by_id(user.id).quota == sum(r.quota for r in rows)
    finally:
        server.terminate()
        admin.close()
        database.close()


def test_a_locked_sqlite_database_makes_requests_wait_not_fail(started, settings):
    """Another process holds the write lock for 2 s (a backup, a long migration): requests wait, then succeed."""
    import sqlite3
    import threading

    server, acct, before, baseline = started()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=acct.key, max_retries=0, timeout=30)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)  # warm: the key is cached
    other = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), isolation_level=None,
                            check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    released = threading.Timer(2.0, lambda: other.execute("COMMIT"))
    released.start()
    started = time.monotonic()
    try:
        answers = [client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=i % 2 == 0)
                   for i in range(4)]
        waited = time.monotonic() - started
    finally:
        released.join()
        other.close()
    for answer in answers:
        if isinstance(answer, openai.Stream):
            assert list(answer)
        else:
            assert answer.choices[0].message.content
    assert waited > 1.5, "the lock was not held while the requests came"
    rows = assert_clean(server, acct, before, 5, baseline)
    assert all(r.status_code == 200 for r in rows)


def test_redis_going_away_leaves_the_gateway_serving_and_says_so(started, redis_url, caplog):
    import redis

    server, acct, before, baseline = started({"rpm_limit": 100}, redis_url=redis_url)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=acct.key, max_retries=0, timeout=30)
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    with contextlib.suppress(redis.RedisError):
        redis.Redis.from_url(redis_url).shutdown(nosave=True)
    for i in range(4):
        if i % 2:
            assert client.chat.completions.create(model="gpt-4o-mini", messages=MSGS).choices
        else:
            assert list(client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))
    assert "the rpm limit falls back to this process's memory" in caplog.text
    rows = assert_clean(server, acct, before, 6, baseline)
    assert all(r.status_code == 200 for r in rows)
