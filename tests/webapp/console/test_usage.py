"""``/log``: the account's own usage, filters, totals per day and per model, the chart."""

from __future__ import annotations

import datetime as dt

from accounts import create_token
from kernel.models import RequestLog
from tests.webapp.console.conftest import text_of


def add_usage(user, token, model: str, day: str, units: int, status: int = 200) -> None:
    RequestLog.create(request_id=f"r{RequestLog.select().count()}", user_id=user.id, token_id=token.id,
                      token_name=token.name, model=model, prompt_tokens=10, completion_tokens=5, quota=units,
                      latency_ms=321, status_code=status, created_at=dt.datetime.fromisoformat(day + "T12:00:00"))


def test_usage_with_filters_and_totals(alice, user, admin):
    a = create_token(user, name="laptop").token
    b = create_token(user, name="server").token
    add_usage(user, a, "gpt-4o-mini", "2026-03-01", 1_000)
    add_usage(user, a, "gpt-4o", "2026-03-01", 500_000)
    add_usage(user, b, "gpt-4o-mini", "2026-03-02", 2_000, status=502)
    other = create_token(admin, name="theirs").token
    add_usage(admin, other, "gpt-4o", "2026-03-01", 9_999_999)  # someone else's: never shown
    RequestLog.create(request_id="t", kind="topup", user_id=user.id, quota=-5_000_000)  # not usage

    data = alice.get("/log.json").get_json()
    assert data["total_usd"] == "$1.006" and len(data["rows"]) == 3
    assert [(d["label"], d["units"]) for d in data["per_day"]] == [("2026-03-01", 501_000), ("2026-03-02", 2_000)]
    assert {m["label"]: m["requests"] for m in data["per_model"]} == {"gpt-4o": 1, "gpt-4o-mini": 2}

    data = alice.get(f"/log.json?key={b.id}").get_json()
    assert [r["key"] for r in data["rows"]] == ["server"] and data["rows"][0]["status"] == 502
    data = alice.get("/log.json?model=gpt-4o&from=2026-03-01&to=2026-03-01").get_json()
    assert [r["cost_usd"] for r in data["rows"]] == ["$1.00"]
    assert alice.get("/log.json?from=2026-03-02").get_json()["total_units"] == 2_000

    page = alice.get("/log").data.decode()
    assert page.count("<rect") == 2 and "2026-03-01: $1.002" in page
    text = text_of(page)
    assert "laptop" in text and "321 ms" in text and "theirs" not in text


def test_bad_filter_is_explained(alice):
    r = alice.get("/log?from=yesterday")
    assert r.status_code == 400 and "yesterday is not a date" in text_of(r.data)


def test_htmx_filter_returns_the_partial(alice):
    r = alice.get("/log?model=x", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.data.decode() and 'id="log-panel"' in r.data.decode()
    assert "HX-Request" in r.headers["Vary"]
