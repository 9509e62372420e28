"""The one limiter under the gateway's, the free tier's and the console's limits, in memory and in Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.ratelimit import Limiter


@pytest.fixture(params=["memory", "redis"])
def limiter(request):
    if request.param == "memory":
        yield Limiter("t", 60)
        return
    redis_url = request.getfixturevalue("redis_url")
    shared = Limiter("t", 60, redis_url=redis_url, namespace=uuid.uuid4().hex)  # counters of this test alone
    yield shared
    shared.reset()


def test_a_hit_counts_on_every_key_or_on_none(limiter):
    assert limiter.hit(["visitor:1", "ip:a"], 2) is None
    assert limiter.hit(["visitor:2", "ip:a"], 2) is None
    wait = limiter.hit(["visitor:3", "ip:a"], 2)  # the address is at its limit: refused...
    assert wait is not None and 0 < wait <= 60
    # ...and the refused hit counted on neither key: visitor 3 is still fresh elsewhere.
    assert limiter.hit(["visitor:3", "ip:b"], 1) is None
    assert limiter.hit(["visitor:3", "ip:c"], 1) is not None


def test_the_event_loop_and_the_threads_count_together(limiter):
    async def both() -> list[bool]:
        allowed = [await limiter.hit_async(["key"], 3) is None, limiter.hit(["key"], 3) is None,
                   await limiter.hit_async(["key"], 3) is None, await limiter.hit_async(["key"], 3) is None,
                   limiter.hit(["key"], 3) is None]
        await limiter.aclose()
        return allowed

    assert asyncio.run(both()) == [True, True, True, False, False]


def test_failures_are_counted_until_cleared(limiter):
    limiter.add("login:a")
    limiter.add("login:a")
    count, expires_in = limiter.count("login:a")
    assert count == 2 and 0 < expires_in <= 60
    limiter.clear("login:a")
    assert limiter.count("login:a")[0] == 0


def test_no_limit_means_no_counting(limiter):
    assert all(limiter.hit(["k"], 0) is None for _ in range(5))
    assert limiter.count("k")[0] == 0


def test_two_deployments_on_one_redis_count_apart(redis_url):
    ours = Limiter("t", 60, redis_url=redis_url, namespace=uuid.uuid4().hex)
    theirs = Limiter("t", 60, redis_url=redis_url, namespace=uuid.uuid4().hex)
    try:
        assert ours.hit(["k"], 1) is None
        assert theirs.hit(["k"], 1) is None
        assert ours.hit(["k"], 1) is not None
    finally:
        ours.reset()
        theirs.reset()
