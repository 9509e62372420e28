"""The relay's money path on PostgreSQL (the replica mode): reserve, settle and log, under concurrency.

On SQLite the reservation and the usage log are written inline on the event
loop's connection; on PostgreSQL they go through the worker thread and
psycopg2, whose cursors behave differently (``execute`` returns None). This runs
the whole deployment on a fresh PostgreSQL database with the ``openai`` SDK.
"""

from __future__ import annotations

import threading

import openai
import pytest

import accounts
from kernel.models import RequestLog, Token, User
from kernel.settings import Settings
from tests.conftest import LiveServer, migrate_database
from tests.gateway.helpers import wait_logs

MSGS = [{"role": "user", "content": "Say hello"}]


@pytest.mark.postgres
def test_chat_on_postgresql_is_billed_once_per_request_and_never_overspends(postgres_url, upstream, settings):
    from webapp.asgi import create_asgi_app

    migrate_database(postgres_url)
    accounts.add_channel(type="openai", name="pg upstream", base_url=upstream.base_url, keys=["sk-upstream"],
                         models="gpt-4o-mini")
    accounts.set_price("gpt-4o-mini", input_usd="1", output_usd="2")
    user = accounts.create_user("pg-relay@example.com", "password123")
    accounts.topup(user, "1")  # 500,000 units
    # Each request reserves its prompt estimate plus max_tokens=20,000 output tokens at 2 USD per
    # million (20,000 units): the key's 0.2 USD (100,000 units) covers fewer than 5 at a time.
    key = accounts.create_token(user, usd="0.2")
    app = create_asgi_app(Settings.from_env({}, data_dir=settings.data_dir, secret_key="test-secret",
                                            database_url=postgres_url))
    server = LiveServer(app).start()
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=key.key, max_retries=0)
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=20_000)
        assert reply.choices[0].message.content
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=20_000,
                                                     stream=True, stream_options={"include_usage": True}))
        assert chunks[-1].usage.completion_tokens > 0
        outcomes: list[str] = []

        def one() -> None:
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=20_000)
                outcomes.append("ok")
            except openai.APIStatusError as exc:
                outcomes.append(str(exc.status_code))

        threads = [threading.Thread(target=one) for _ in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        served = 2 + outcomes.count("ok")
        # 429 insufficient_quota, as OpenAI answers, for the ones whose reservation did not fit at
        # the time (how many depends on how the threads overlap; the balances below may not go wrong).
        assert set(outcomes) <= {"ok", "429"} and "ok" in outcomes
        rows = wait_logs(served)
    finally:
        server.stop()
    billed = [r for r in rows if r.status_code == 200]
    assert len(billed) == served and all(r.quota > 0 for r in billed)
    spent = sum(r.quota for r in billed)
    user, token = User.get_by_id(user.id), Token.get_by_id(key.token.id)
    assert user.quota == 500_000 - spent and user.used_quota == spent
    assert token.remain_quota == 100_000 - spent >= 0 and token.used_quota == spent
    refused = [r for r in RequestLog.select() if r.kind == "relay" and r.status_code != 200]
    assert all(r.quota == 0 for r in refused)
