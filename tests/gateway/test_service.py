"""The in-process API the chat page uses: Gateway.chat as an async context manager."""

from __future__ import annotations

import asyncio
import concurrent.futures

import httpx
import pytest

from gateway.service import Gateway
from kernel.errors import PermissionDenied
from kernel.models import RequestLog
from tests.gateway.helpers import wait_for

LONG = " ".join(f"w{i}" for i in range(300))


def test_chat_stream_early_exit_and_catalog(settings, upstream, make_account, price, channel):
    channel(upstream, models="gpt-4o-mini,unpriced-model")
    price("gpt-4o-mini")
    acct = make_account(models="gpt-4o-mini")
    upstream.state.replies.append(LONG)
    upstream.state.delay = 0.01

    async def main():
        async with httpx.AsyncClient() as http:
            gw = Gateway(settings, http)
            await gw.start()
            try:
                auth = await gw.auth_for_token(acct.token.id, "127.0.0.1")
                assert (await gw.authenticate(acct.key, "127.0.0.1")).token_id == acct.token.id
                body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
                async with gw.chat(auth, body) as stream:
                    pieces = []
                    async for chunk in stream:
                        pieces.append(chunk["choices"][0]["delta"].get("content") or "")
                        if len(pieces) == 4:
                            break  # the user pressed Stop
                assert stream.finish_reason is None and stream.cost_quota > 0
                assert stream.usage.completion_tokens >= 3 and stream.request_id
                async with gw.chat(auth, body) as full:
                    text = "".join([c["choices"][0]["delta"].get("content") or "" async for c in full])
                assert text == "Hello! This is the test upstream speaking." and full.finish_reason == "stop"
                with pytest.raises(PermissionDenied):
                    async with gw.chat(auth, body | {"model": "missing"}):
                        pass
                catalog = {e.id: e for e in await gw.model_catalog(auth)}
                assert catalog["gpt-4o-mini"].allowed and catalog["gpt-4o-mini"].channel_types == ("openai",)
                assert catalog["unpriced-model"].reason == "no price set"
                everyone = {e.id: e for e in await gw.model_catalog(None)}
                assert everyone["gpt-4o-mini"].input_per_million == 500_000
                return stream.cost_quota, full.cost_quota
            finally:
                await gw.stop()

    # A fresh thread: a session-wide Playwright browser may own this thread's event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        costs = pool.submit(asyncio.run, main()).result()
    wait_for(lambda: upstream.state.cancelled == 1)
    rows = list(RequestLog.select().where(RequestLog.kind == "relay").order_by(RequestLog.id))
    assert [r.quota for r in rows] == list(costs)  # stop() wrote every row
    assert [r.status_code for r in rows] == [499, 200]
