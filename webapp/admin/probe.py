"""The admin's channel test: one tiny chat request (``max_tokens: 1``) through one channel.

It goes through the gateway's adaptor for the channel's type, so it exercises the
same URL, headers and error mapping the relay uses, but bills nobody.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from accounts import audit, record_channel_test
from gateway.adaptors import adaptor_class
from gateway.adaptors.base import ChannelConfig, ChatRequest, UpstreamFailure
from kernel.models import Channel

TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    model: str
    latency_ms: int
    error: str


def probe_channel(channel: Channel, model: str | None = None, *, actor_id: int | None = None) -> ProbeResult:
    """Send the probe (blocking; Flask views run in worker threads), record and audit the outcome."""
    result = _probe(channel, model)
    record_channel_test(channel, latency_ms=result.latency_ms, error=result.error)
    audit(actor_id, "channel.test", channel.name, {"ok": result.ok, "model": result.model,
                                                   "latency_ms": result.latency_ms, "error": result.error[:200]})
    return result


def _probe(channel: Channel, model: str | None) -> ProbeResult:
    model = (model or "").strip() or (channel.models[0] if channel.models else "")
    if not model:
        return ProbeResult(False, "", 0, "the channel serves no model")
    cls = adaptor_class(channel.type)
    if cls is None:
        return ProbeResult(False, model, 0, f"no adaptor for channel type {channel.type!r} yet")
    if not channel.keys:
        return ProbeResult(False, model, 0, "the channel has no upstream key")
    config = ChannelConfig(id=channel.id, type=channel.type, name=channel.name, base_url=channel.base_url,
                           key=channel.keys[0], settings=channel.settings or {},
                           model_mapping=channel.model_mapping or {})
    upstream = config.upstream_model(model)
    request = ChatRequest(body={"model": upstream, "max_tokens": 1,
                                "messages": [{"role": "user", "content": "hi"}]},
                          model=model, upstream_model=upstream, request_id=f"test-{uuid.uuid4().hex[:12]}")

    async def probe() -> None:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, trust_env=False) as http:
            await cls(config, http).complete(request)

    started = time.monotonic()
    try:
        # A thread of its own: the caller's thread may already run an event loop (a test's,
        # or a server that calls this from async code), and asyncio.run() refuses to nest.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(lambda: asyncio.run(probe())).result()
        error = ""
    except UpstreamFailure as exc:
        error = f"{exc.status or 'network'}: {exc.message}"
    except Exception as exc:  # noqa: BLE001 - whatever broke, the admin should read it, not a traceback
        error = f"{type(exc).__name__}: {exc}"
    latency = int((time.monotonic() - started) * 1000)
    return ProbeResult(not error, model, latency, error)

