"""The free tier's settings and its daily budget, on a real database."""

from __future__ import annotations

import pytest

from gateway.ratelimit import Limiter
from kernel.models import Option, RequestLog, User
from webapp.chat import free_tier


def test_defaults_then_admin_values(database):
    config = free_tier.read_config()
    assert config == free_tier.DEFAULTS
    new = free_tier.write_config({"free_models": "a, b", "free_rpm": "7", "daily_budget_usd": "$2.5"})
    assert new.models == ["a", "b"] and new.rpm == 7 and new.daily_budget_usd == "2.5"
    assert free_tier.read_config() == new


@pytest.mark.parametrize("values, message", [
    ({"free_rpm": "many"}, "is not a whole number"),
    ({"free_max_tokens": -1}, "must be between 0"),
    ({"free_daily_budget_usd": "lots"}, "is not an amount of USD"),
    ({"free_colour": "red"}, "unknown free tier settings"),
])
def test_bad_values_are_refused_with_the_reason(database, values, message):
    with pytest.raises(free_tier.FreeTierError, match=message):
        free_tier.write_config(values)
    assert free_tier.read_config() == free_tier.DEFAULTS


def test_daily_budget_is_set_once_a_day_and_follows_the_admin(database):
    config = free_tier.write_config({"free_daily_budget_usd": "1"})
    assert free_tier.refill_for_today(config) == 500_000
    user = free_tier.system_user()
    User.update(quota=100).where(User.id == user.id).execute()  # spent most of today's budget
    assert free_tier.refill_for_today(config) == 100  # not refilled again the same day
    free_tier.write_config({"free_daily_budget_usd": "2"})  # raised: today's balance moves by +1 USD
    assert User.get_by_id(user.id).quota == 500_100
    free_tier.write_config({"free_daily_budget_usd": "0"})  # lowered below what is left: nothing left
    assert User.get_by_id(user.id).quota == 0
    Option.write(free_tier.DAY_OPTION, "2000-01-01")  # a new day
    assert free_tier.refill_for_today(free_tier.read_config()) == 0
    assert RequestLog.select().where(RequestLog.user_id == user.id).count() >= 3  # every change is logged
    assert free_tier.system_token_id() == free_tier.system_token_id()


def test_rate_limiter_counts_each_key():
    limiter = Limiter("free-test", 60)
    assert limiter.hit(["v:1", "ip:x"], 2) is None
    assert limiter.hit(["v:2", "ip:x"], 2) is None
    wait = limiter.hit(["v:3", "ip:x"], 2)  # same IP, third request this minute
    assert wait is not None and 0 < wait <= 60
    limiter.reset()
    assert limiter.hit(["v:3", "ip:x"], 2) is None


def test_two_replicas_share_the_free_rate_limit_through_redis(settings, database, redis_url, tmp_path):
    """A visitor alternating between two replicas gets the free tier's 3 messages a minute, not 3 on each."""

    import httpx

    import accounts
    from tests.conftest import LiveServer
    from tests.processes import clean_env, serve
    from tests.upstreams.openai_upstream import UpstreamState, create_upstream_app
    from tests.webapp.chat.test_chat_http import csrf_of

    upstream = LiveServer(create_upstream_app(UpstreamState(record=False))).start()
    accounts.add_channel(type="openai", name="up", base_url=upstream.url + "/v1", keys=["sk-upstream"],
                         models="gpt-4o-mini")
    accounts.set_price("gpt-4o-mini", input_usd="0.15", output_usd="0.60")
    free_tier.write_config({"free_models": "gpt-4o-mini", "free_rpm": 3, "free_daily_budget_usd": "1"})
    env = clean_env(PERMACHAT_DATA_DIR=str(settings.data_dir), PERMACHAT_SECRET_KEY="test-secret",
                    PERMACHAT_REDIS_URL=redis_url)
    replicas = [serve(env, tmp_path / "logs") for _ in range(2)]
    try:
        with httpx.Client(timeout=15) as visitor:  # one cookie jar: the same visitor on both replicas
            page = visitor.get(replicas[0].url + "/")
            visitor.headers.update({"X-CSRFToken": csrf_of(page.text), "HX-Request": "true"})
            answers = [visitor.post(replicas[i % 2].url + "/chat/send",
                                    data={"content": f"message {i}", "model": "gpt-4o-mini"}) for i in range(4)]
    finally:
        for server in replicas:
            server.terminate()
        upstream.stop()
    texts = [answer.text for answer in answers]
    assert all(answer.status_code == 200 for answer in answers)
    assert all("allows 3 messages a minute" not in text for text in texts[:3]), texts[:3]
    assert "allows 3 messages a minute" in texts[3], "each replica counted on its own"


def test_the_free_rate_limit_counts_in_memory_while_redis_is_down(caplog):
    from tests.conftest import free_port

    limiter = Limiter("free", 60, redis_url=f"redis://127.0.0.1:{free_port()}/0", namespace="x")
    assert limiter.hit(["v:1"], 2) is None and limiter.hit(["v:1"], 2) is None
    assert limiter.hit(["v:1"], 2) is not None
    assert "the free limit falls back to this process's memory" in caplog.text
