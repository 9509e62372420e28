"""Failure limits: in memory per app by default; shared by every replica through Redis when set."""

from __future__ import annotations

from dataclasses import replace

from tests.conftest import free_port
from tests.webapp.console.conftest import login, text_of
from webapp.account.limits import FailureLimiter


def test_two_replicas_share_the_login_limit_through_redis(settings, database, user, redis_url):
    from webapp import create_app

    shared = replace(settings, redis_url=redis_url)
    first = create_app(shared, {"TESTING": True, "WTF_CSRF_ENABLED": False}).test_client()
    second = create_app(shared, {"TESTING": True, "WTF_CSRF_ENABLED": False}).test_client()
    for client in (first, second, first, second, first):
        assert login(client, "alice@example.com", "guess").status_code == 401
    r = login(second, "alice@example.com", "correct horse")
    assert r.status_code == 429 and "Too many failed attempts" in text_of(r.data)
    alone = create_app(settings, {"TESTING": True, "WTF_CSRF_ENABLED": False}).test_client()
    assert login(alone, "alice@example.com", "correct horse").status_code == 303  # its own memory count


def test_a_redis_that_goes_away_falls_back_to_memory(redis_url):
    limiter = FailureLimiter("t", limit=2, window=60, redis_url=redis_url, namespace=f"test-{free_port()}")
    limiter.fail("k")
    assert limiter.retry_after("k") == 0
    assert limiter.counts.shared.count("k")[0] == 1  # counted in Redis, not in memory
    limiter.counts.shared.url = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    limiter.counts.shared._sync = None
    limiter.fail("k")
    limiter.fail("k")
    assert 59 <= limiter.retry_after("k") <= 61
    limiter.clear("k")
    assert limiter.retry_after("k") == 0
