"""Keys are found wherever clients put them and refused with a reason that says which."""

from __future__ import annotations

import datetime as dt

import pytest

from accounts import create_token, create_user, topup
from gateway.auth import KeyCache, authenticate, extract_key
from kernel import errors
from kernel.models import Token, User


def test_extract_key_from_every_place():
    assert extract_key({"authorization": "Bearer sk-a"}) == "sk-a"
    assert extract_key({"authorization": "bearer  sk-b "}) == "sk-b"
    assert extract_key({"x-api-key": "sk-c"}) == "sk-c"
    assert extract_key({"api-key": "sk-d"}) == "sk-d"
    assert extract_key({"x-goog-api-key": "sk-e"}) == "sk-e"
    assert extract_key({}, {"key": "sk-f"}) == "sk-f"
    assert extract_key({"authorization": "Basic xyz"}) is None


@pytest.fixture
def account(database):
    user = create_user("k@example.com", "password123")
    topup(user, "1")
    return user


def test_refusals_say_which(account):
    with pytest.raises(errors.AuthenticationError):
        authenticate(None, "127.0.0.1")
    with pytest.raises(errors.AuthenticationError):
        authenticate("sk-" + "x" * 48, "127.0.0.1")
    new = create_token(account, usd="0.1", allowed_ips="10.0.0.0/8")
    with pytest.raises(errors.PermissionDenied) as info:
        authenticate(new.key, "127.0.0.1")
    assert info.value.code == "ip_not_allowed"
    assert authenticate(new.key, "10.1.2.3").user_id == account.id

    Token.update(status="disabled").where(Token.id == new.token.id).execute()
    with pytest.raises(errors.PermissionDenied, match="disabled"):
        authenticate(new.key, "10.1.2.3")
    Token.update(status="enabled", expires_at=dt.datetime(2001, 1, 1)).where(Token.id == new.token.id).execute()
    with pytest.raises(errors.PermissionDenied, match="expired on 2001-01-01"):
        authenticate(new.key, "10.1.2.3")
    Token.update(expires_at=None, remain_quota=0).where(Token.id == new.token.id).execute()
    with pytest.raises(errors.InsufficientQuotaError, match="key's quota is used up"):
        authenticate(new.key, "10.1.2.3")
    Token.update(remain_quota=10).where(Token.id == new.token.id).execute()
    User.update(quota=0).where(User.id == account.id).execute()
    with pytest.raises(errors.InsufficientQuotaError, match="account balance is empty"):
        authenticate(new.key, "10.1.2.3")


def test_cache_serves_repeat_lookups_until_forgotten(account):
    new = create_token(account)
    cache = KeyCache(ttl=60)
    assert authenticate(new.key, "::1", cache).token_id == new.token.id
    Token.update(status="disabled").where(Token.id == new.token.id).execute()
    assert authenticate(new.key, "::1", cache).key_status == "enabled"  # cached
    cache.forget(new.token.key_hash)
    with pytest.raises(errors.PermissionDenied):
        authenticate(new.key, "::1", cache)


def test_error_body_is_openai_shaped():
    exc = errors.RateLimited("slow down", retry_after=7)
    assert exc.body() == {"error": {"message": "slow down", "type": "rate_limit_error", "param": None,
                                    "code": "rate_limit_exceeded"}}
    response = errors.error_response(exc, "req-1")
    assert response.status_code == 429 and response.headers["retry-after"] == "7"
    assert response.headers["x-request-id"] == "req-1"
