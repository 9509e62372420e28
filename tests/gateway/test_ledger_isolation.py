"""One write the database refuses never holds back the settlements and log rows queued behind it."""

from __future__ import annotations

import httpx
import pytest

import accounts
from kernel.models import RequestLog, User
from kernel.settings import Settings
from tests.conftest import LiveServer, migrate_database
from tests.gateway.helpers import wait_for

MSGS = [{"role": "user", "content": "Say hello"}]


def chat(server: LiveServer, key: str, **extra) -> httpx.Response:
    return httpx.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=20,
                      json={"model": "gpt-4o-mini", "messages": MSGS, **extra})


@pytest.mark.postgres
def test_an_upstream_error_holding_a_nul_does_not_stall_billing_on_postgresql(postgres_url, upstream, settings):
    from webapp.asgi import create_asgi_app

    migrate_database(postgres_url)
    accounts.add_channel(type="openai", name="pg upstream", base_url=upstream.base_url, keys=["sk-upstream"],
                         models="gpt-4o-mini")
    accounts.set_price("gpt-4o-mini", input_usd="1", output_usd="2")
    user = accounts.create_user("nul@example.com", "password123")
    accounts.topup(user, "1")
    key = accounts.create_token(user).key
    app = create_asgi_app(Settings.from_env({}, data_dir=settings.data_dir, secret_key="test-secret",
                                            database_url=postgres_url))
    server = LiveServer(app).start()
    try:
        # PostgreSQL refuses NUL in text: the failed call's log row (its error) and the channel's
        # last_error both hold the upstream's message.
        bad = chat(server, key, x_upstream={"fail": 400, "message": "bad \x00 value"})
        assert bad.status_code == 400, bad.text
        good = chat(server, key)
        assert good.status_code == 200, good.text
        rows = lambda: list(RequestLog.select().where(RequestLog.kind == "relay").order_by(RequestLog.id))  # noqa: E731
        wait_for(lambda: len(rows()) == 2, timeout=10)
        failed, served = rows()
        assert "bad \ufffd value" in failed.error and failed.quota == 0
        assert served.status_code == 200 and served.quota > 0
        assert User.get_by_id(user.id).quota == 500_000 - served.quota
        assert not app.state.gateway.ledger.refused
    finally:
        server.stop()


def test_an_entry_the_database_refuses_is_set_aside_and_the_rest_is_written(upstream, make_account, price,
                                                                             channel, serve):
    channel(upstream)
    price("gpt-4o-mini", "1", "2")
    acct = make_account("1")
    server = serve()
    ledger = server.gateway.ledger

    def refused() -> None:
        raise ValueError("a write the database will never take")

    ledger.later(refused)  # queued first: the old ledger retried it, in front of everything, for ever
    for _ in range(3):
        assert chat(server, acct.key).status_code == 200
    wait_for(lambda: RequestLog.select().where(RequestLog.kind == "relay").count() == 3, timeout=10)
    charged = sum(r.quota for r in RequestLog.select().where(RequestLog.kind == "relay"))
    assert charged > 0 and acct.refresh().user.quota == 500_000 - charged
    assert [why for _, why in ledger.refused] == ["ValueError: a write the database will never take"]


def test_a_refused_entry_is_kept_where_the_admin_sees_it(upstream, make_account, price, channel, serve):
    """The log line alone is lost with the log: the entry also goes to refused_write, shown on /admin/audit."""
    import accounts as account_ops
    from billing.ledger import Entry
    from kernel.models import RefusedWrite
    from tests.webapp.console.conftest import login, text_of
    from webapp import create_app

    channel(upstream)
    price("gpt-4o-mini", "1", "2")
    acct = make_account("1")
    server = serve()
    ledger = server.gateway.ledger
    assert chat(server, acct.key).status_code == 200
    wait_for(lambda: RequestLog.select().where(RequestLog.kind == "relay").count() == 1, timeout=10)
    good = RequestLog.select().where(RequestLog.kind == "relay").dicts().get()
    # A log row the driver cannot take (no database stores an object), with a NUL like the PostgreSQL case.
    bad_row = {k: v for k, v in good.items() if k not in ("id", "created_at")} | {
        "request_id": "req-refused-1", "error": object(), "client_ip": "bad\x00ip"}
    ledger.add(Entry(row=bad_row, reservation=None, cost=123))
    assert chat(server, acct.key).status_code == 200  # written beside it, not held back
    wait_for(lambda: RefusedWrite.select().count() == 1, timeout=10)
    kept = RefusedWrite.get()
    assert kept.request_id == "req-refused-1" and kept.cost_quota == 123
    assert kept.process_id == server.gateway.registry.id
    assert "bad\\u0000ip" in kept.record and "\x00" not in kept.record  # escaped, so any database takes it
    assert kept.error  # why the database refused it
    wait_for(lambda: RequestLog.select().where(RequestLog.kind == "relay").count() == 2, timeout=10)

    account_ops.create_user("root@example.com", "admin password", admin=True)
    client = create_app(server.gateway.settings, {"TESTING": True, "WTF_CSRF_ENABLED": False}).test_client()
    assert login(client, "root@example.com", "admin password").status_code == 303
    page = text_of(client.get("/admin/audit").data)
    assert "Usage the database refused to record" in page and "req-refused-1" in page
    listed = client.get("/admin/audit.json").get_json()["refused_writes"]
    assert [r["request_id"] for r in listed] == ["req-refused-1"]
