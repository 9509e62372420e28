"""The gateway over a real socket, driven by the official openai SDK."""

from __future__ import annotations

import openai
import pytest

from tests.gateway.helpers import wait_logs


def test_non_stream_and_stream(upstream, make_account, price, channel, serve):
    channel(upstream)
    price("gpt-4o-mini")
    acct = make_account()
    server = serve()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=acct.key, max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content == "Hello! This is the test upstream speaking."
    assert reply.usage.completion_tokens == 7
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                 messages=[{"role": "user", "content": "Hi"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! This is the test upstream speaking."
    assert all(c.usage is None for c in chunks)
    rows = wait_logs(2)
    assert [r.is_stream for r in rows] == [False, True]
    assert all(r.quota > 0 and r.status_code == 200 for r in rows)
    acct.refresh()
    assert acct.user.quota == 5_000_000 - sum(r.quota for r in rows)


def test_unknown_model_and_bad_key(upstream, make_account, price, channel, serve):
    channel(upstream)
    price("gpt-4o-mini")
    acct = make_account()
    server = serve()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=acct.key, max_retries=0)
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "Hi"}])
    assert "nope" in err.value.message
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0).models.list()
