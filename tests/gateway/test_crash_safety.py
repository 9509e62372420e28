"""Money survives a process that stops: SIGKILL mid-request, a replica that hangs, SIGTERM.

Each test runs real `permachat serve` processes against a test upstream on
127.0.0.1, kills or stops them while requests are in flight, and then
reconciles the account to the unit: what left the balance is exactly the sum
of the log rows, every request has been settled once, and no hold is left.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

import accounts
from kernel.models import Hold, RequestLog, ServingProcess, Token, User
from tests.conftest import LiveServer
from tests.processes import clean_env, serve
from tests.upstreams.openai_upstream import UpstreamState, create_upstream_app

MODEL = "gpt-4o-mini"
MAX_TOKENS = 1000
# Priced high so that a few seconds of a stream cost many units (50 a prompt token, 100 an output token).
INPUT_USD, OUTPUT_USD = "100", "200"


def long_reply(pieces: int) -> str:
    return " ".join(f"piece{i}" for i in range(pieces))


@dataclass
class Client:
    """One request in flight from a thread: what the client saw."""

    stream: bool
    done: bool = False  # a stream saw data: [DONE], a call got its 200
    error: str = ""
    thread: threading.Thread = field(init=False)


def start_requests(url: str, key: str, *, streams: int, calls: int, reply: str, delay: float,
                   wait: float) -> list[Client]:
    """``streams`` slow streams (a piece every ``delay`` s) and ``calls`` calls the upstream keeps ``wait`` s."""
    clients = [Client(stream=True) for _ in range(streams)] + [Client(stream=False) for _ in range(calls)]

    def run(client: Client) -> None:
        body = {"model": MODEL, "max_tokens": MAX_TOKENS, "stream": client.stream,
                "messages": [{"role": "user", "content": "Tell me a long story, please."}],
                "x_upstream": {"reply": reply, "delay": delay} if client.stream else {"wait": wait}}
        headers = {"Authorization": f"Bearer {key}"}
        try:
            with httpx.stream("POST", url + "/v1/chat/completions", json=body, headers=headers,
                              timeout=httpx.Timeout(120, connect=10)) as response:
                if client.stream:
                    for line in response.iter_lines():
                        if line == "data: [DONE]":
                            client.done = True
                else:
                    response.read()
                    client.done = response.status_code == 200
        except httpx.HTTPError as exc:
            client.error = repr(exc)

    for client in clients:
        client.thread = threading.Thread(target=run, args=(client,), daemon=True)
        client.thread.start()
    return clients


def join(clients: list[Client], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for client in clients:
        client.thread.join(max(0.1, deadline - time.monotonic()))
    assert not any(c.thread.is_alive() for c in clients), "a client never finished"


def until(predicate: Callable[[], bool], what: str, timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.1)


def holds() -> dict[str, dict]:
    return {row["request_id"]: row for row in Hold.select().dicts()}


def relay_logs(user_id: int) -> list[RequestLog]:
    return list(RequestLog.select().where((RequestLog.user_id == user_id) & (RequestLog.kind == "relay")))


def reconcile(user_id: int, token_id: int, start_quota: int, start_requests: int) -> list[RequestLog]:
    """Balances and log rows agree to the unit; returns the log rows."""
    user, token = User.get_by_id(user_id), Token.get_by_id(token_id)
    logs = relay_logs(user_id)
    billed = sum(row.quota for row in logs)
    assert start_quota - user.quota == billed, "the balance consumed is not the sum of the log rows"
    assert user.used_quota == billed and token.used_quota == billed
    assert user.request_count - start_requests == len({row.request_id for row in logs})
    return logs


@pytest.fixture
def slow_upstream():
    state = UpstreamState(record=False)
    server = LiveServer(create_upstream_app(state)).start()
    yield server.url + "/v1"
    server.stop()


def setup_money(upstream_url: str) -> tuple[accounts.NewToken, User]:
    user = accounts.create_user("crash@example.com", "password123")
    accounts.topup(user, "100")
    accounts.set_price(MODEL, input_usd=INPUT_USD, output_usd=OUTPUT_USD)
    accounts.add_channel(type="openai", name="slow", base_url=upstream_url, keys=["sk-upstream"], models=MODEL)
    return accounts.create_token(user), User.get_by_id(user.id)


def test_sigkill_mid_request_settles_every_hold_at_the_restart(settings, database, slow_upstream, tmp_path):
    new, user = setup_money(slow_upstream)
    env = clean_env(PERMACHAT_DATA_DIR=str(settings.data_dir), PERMACHAT_SECRET_KEY="test-secret")
    server = serve(env, tmp_path / "logs")
    clients = start_requests(server.url, new.key, streams=20, calls=20, reply=long_reply(600), delay=0.1, wait=90)

    # Every stream has checkpointed what it generated; every call is still waiting on the upstream.
    until(lambda: sum(1 for h in holds().values() if h["is_stream"] and h["checkpoint_units"] > 0) == 20,
          "20 streams have checkpointed")
    server.kill()
    left = holds()
    assert len(left) == 40 and sum(h["is_stream"] for h in left.values()) == 20
    join(clients)
    assert not any(c.done for c in clients), "a request finished before the kill: the test proves less than it says"
    during = User.get_by_id(user.id)
    assert user.quota - during.quota == sum(h["units"] for h in left.values()), "the holds are what was taken"

    restarted = serve(env, tmp_path / "logs")
    assert holds() == {}, "the restart settles the dead process's holds before it serves"
    assert [p.id for p in ServingProcess.select()] != [] and ServingProcess.select().count() == 1
    logs = reconcile(user.id, new.token.id, user.quota, user.request_count)
    assert len(logs) == 40
    for row in logs:
        hold = left[row.request_id]
        assert row.status_code == 503 and row.error.startswith("interrupted: ")
        assert row.quota == min(hold["checkpoint_units"], hold["units"])
        assert row.is_stream == hold["is_stream"] and row.model == MODEL and row.endpoint == hold["endpoint"]
        if hold["is_stream"]:
            assert 0 < row.quota < hold["units"] and row.completion_tokens > 0 and row.prompt_tokens > 0
        else:
            assert row.quota == 0
    assert "settled 40 reservation(s)" in restarted.log()

    # The restarted process serves and bills as before.
    answer = httpx.post(restarted.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {new.key}"},
                        json={"model": MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
                        timeout=30)
    assert answer.status_code == 200
    restarted.terminate()
    logs = reconcile(user.id, new.token.id, user.quota, user.request_count)
    assert len(logs) == 41 and holds() == {}


def test_a_replica_that_stops_answering_is_settled_by_the_other(postgres_url, slow_upstream, tmp_path):
    from tests.conftest import migrate_database

    database = migrate_database(postgres_url)
    new, user = setup_money(slow_upstream)
    env = clean_env(PERMACHAT_DATABASE_URL=postgres_url, PERMACHAT_SECRET_KEY="test-secret",
                    PERMACHAT_DATA_DIR=str(tmp_path / "data"), PERMACHAT_PROCESS_TIMEOUT_SECONDS="3")
    a = serve(env, tmp_path / "logs")
    b = serve(env, tmp_path / "logs")
    # 10 s streams, and calls the upstream answers after 9 s: both outlive the hang below.
    clients = start_requests(a.url, new.key, streams=10, calls=10, reply=long_reply(100), delay=0.1, wait=9)
    until(lambda: sum(1 for h in holds().values() if h["is_stream"] and h["checkpoint_units"] > 0) == 10,
          "10 streams have checkpointed")
    assert len(holds()) == 20

    # A hangs (its PID lives on, its heartbeat stops): B settles A's holds without any restart.
    a.proc.send_signal(signal.SIGSTOP)
    stopped = holds()
    try:
        until(lambda: not holds(), "B settled A's holds", timeout=30)
    finally:
        a.proc.send_signal(signal.SIGCONT)
    interrupted = {row.request_id: row for row in relay_logs(user.id)}
    assert len(interrupted) == 20 and all(row.status_code == 503 for row in interrupted.values())
    for request_id, row in interrupted.items():
        assert row.quota == min(stopped[request_id]["checkpoint_units"], stopped[request_id]["units"])
    assert "stopped answering" in b.log()

    # A wakes and finishes its requests: they were settled already, so they move no money again.
    join(clients)
    assert all(c.done for c in clients), [c.error for c in clients if not c.done]
    until(lambda: len(relay_logs(user.id)) == 40, "A wrote its own log rows", timeout=15)
    logs = reconcile(user.id, new.token.id, user.quota, user.request_count)
    for row in logs:
        if row.status_code == 200:
            assert row.quota == 0, "a request settled as interrupted was billed again by the process that woke"
    until(lambda: "heartbeat had lapsed" in a.log(), "A noticed it had been settled", timeout=15)

    # B still serves, and A is registered again (its beat re-registers it).
    answer = httpx.post(b.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {new.key}"},
                        json={"model": MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
                        timeout=30)
    assert answer.status_code == 200
    until(lambda: ServingProcess.select().count() == 2, "A registered again", timeout=15)
    a.terminate()
    b.terminate()
    reconcile(user.id, new.token.id, user.quota, user.request_count)
    assert holds() == {} and ServingProcess.select().count() == 0
    database.close()


def test_a_replica_killed_mid_request_is_settled_by_the_other_without_a_restart(postgres_url, slow_upstream,
                                                                                tmp_path):
    from tests.conftest import migrate_database

    database = migrate_database(postgres_url)
    new, user = setup_money(slow_upstream)
    env = clean_env(PERMACHAT_DATABASE_URL=postgres_url, PERMACHAT_SECRET_KEY="test-secret",
                    PERMACHAT_DATA_DIR=str(tmp_path / "data"), PERMACHAT_PROCESS_TIMEOUT_SECONDS="3")
    a = serve(env, tmp_path / "logs")
    b = serve(env, tmp_path / "logs")
    clients = start_requests(a.url, new.key, streams=10, calls=10, reply=long_reply(600), delay=0.1, wait=90)
    until(lambda: sum(1 for h in holds().values() if h["is_stream"] and h["checkpoint_units"] > 0) == 10,
          "10 streams have checkpointed")
    a.kill()
    left = holds()
    assert len(left) == 20
    until(lambda: not holds(), "B settled the dead replica's holds", timeout=15)
    join(clients)
    logs = reconcile(user.id, new.token.id, user.quota, user.request_count)
    assert len(logs) == 20 and all(row.status_code == 503 for row in logs)
    for row in logs:
        assert row.quota == min(left[row.request_id]["checkpoint_units"], left[row.request_id]["units"])
    assert sum(row.quota > 0 for row in logs) == 10  # the streams pay what they streamed, the calls nothing
    assert "exited before it settled" in b.log() and ServingProcess.select().count() == 1
    b.terminate()
    assert holds() == {} and ServingProcess.select().count() == 0
    database.close()


def test_sigterm_lets_short_requests_finish_then_settles_the_rest(settings, database, slow_upstream, tmp_path):
    new, user = setup_money(slow_upstream)
    env = clean_env(PERMACHAT_DATA_DIR=str(settings.data_dir), PERMACHAT_SECRET_KEY="test-secret",
                    PERMACHAT_SHUTDOWN_GRACE_SECONDS="4")
    server = serve(env, tmp_path / "logs")
    # 2.5 s streams finish inside the grace period; 60 s streams and a 60 s call do not.
    short = start_requests(server.url, new.key, streams=5, calls=0, reply=long_reply(25), delay=0.1, wait=0)
    long = start_requests(server.url, new.key, streams=3, calls=1, reply=long_reply(600), delay=0.1, wait=60)
    until(lambda: len(holds()) == 9, "every request holds its units")

    server.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    until(lambda: refused(server.url), "the server stopped accepting connections", timeout=3)
    code = server.proc.wait(timeout=30)
    elapsed = time.monotonic() - signalled
    join(short + long)
    # uvicorn re-raises the SIGTERM it caught once it has shut down, so the parent sees a death by SIGTERM.
    assert code == -signal.SIGTERM and "Application shutdown complete" in server.log(), (code, server.log())
    assert all(c.done for c in short), [c.error for c in short]
    assert not any(c.done for c in long)
    assert 3.5 < elapsed < 15, elapsed

    assert holds() == {} and ServingProcess.select().count() == 0
    logs = reconcile(user.id, new.token.id, user.quota, user.request_count)
    assert len(logs) == 9
    finished = [row for row in logs if row.status_code == 200]
    assert len(finished) == 5 and all(row.quota > 0 and not row.error for row in finished)
    cut = [row for row in logs if row.status_code != 200]
    assert len(cut) == 4
    # A cut stream pays for what it streamed; the call the upstream never answered pays at most its prompt:
    # the prompt when its own cancellation settles it (499), nothing when it is still unsettled as the process
    # ends (uvicorn does not wait for the tasks it cancels) and its hold is settled as interrupted (503).
    streams = [row for row in cut if row.is_stream]
    calls = [row for row in cut if not row.is_stream]
    assert len(streams) == 3 and all(row.quota > 0 and row.completion_tokens > 0 for row in streams)
    assert len(calls) == 1 and calls[0].completion_tokens == 0 and calls[0].quota < streams[0].quota
    assert calls[0].status_code in (499, 503) and (calls[0].quota > 0) == (calls[0].status_code == 499)


def refused(url: str) -> bool:
    try:
        httpx.get(url + "/healthz", timeout=1)
    except httpx.ConnectError:
        return True
    except httpx.HTTPError:
        return False
    return False


def test_settings_refuse_bad_values(tmp_path):
    from kernel.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="PERMACHAT_PROCESS_TIMEOUT_SECONDS"):
        Settings.from_env({"PERMACHAT_PROCESS_TIMEOUT_SECONDS": "0.5"}, data_dir=tmp_path)
    with pytest.raises(SettingsError, match="PERMACHAT_SHUTDOWN_GRACE_SECONDS"):
        Settings.from_env({"PERMACHAT_SHUTDOWN_GRACE_SECONDS": "-1"}, data_dir=tmp_path)

