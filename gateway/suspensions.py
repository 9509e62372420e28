"""Channel suspensions shared by every process through Redis pub/sub.

A (channel, model) that failed before its first byte is suspended for a while
(:meth:`gateway.channels.ChannelPool.suspend`) so requests go elsewhere. Each
process keeps its suspensions in memory, where picking a channel reads them for
free; with ``PERMACHAT_REDIS_URL`` set, each new suspension is also published,
and every other process applies it to its own pool, so one replica's failure
spares the others the same failed attempt.

Publishing never delays a request (a task of its own), and a Redis that is away
only means each process learns of failures by itself again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from typing import Any

from gateway.channels import ChannelPool

log = logging.getLogger("permachat.gateway")


class SuspensionBus:
    def __init__(self, url: str, namespace: str, pool: ChannelPool, process_id: str) -> None:
        import redis.asyncio

        self.client: Any = redis.asyncio.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
        self.channel = "permachat:suspend:" + hashlib.sha256(namespace.encode()).hexdigest()[:12]
        self.pool = pool
        self.process_id = process_id
        self._task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._warned = False

    def start(self) -> None:
        self.pool.on_suspend = self.announce
        self._task = asyncio.get_running_loop().create_task(self._listen(), name="permachat-suspensions")

    async def stop(self) -> None:
        self.pool.on_suspend = None
        tasks = [t for t in (self._task, *self._sending) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.aclose()

    def announce(self, channel_id: int, model: str, seconds: float) -> None:
        """Tell the other processes (called by the pool on the event loop; returns at once)."""
        message = json.dumps({"c": channel_id, "m": model, "until": time.time() + seconds, "p": self.process_id})
        task = asyncio.get_running_loop().create_task(self._publish(message))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _publish(self, message: str) -> None:
        try:
            await self.client.publish(self.channel, message)
            self._warned = False
        except Exception as exc:  # noqa: BLE001 - Redis away: each process suspends on its own
            if not self._warned:
                log.warning("channel suspensions are not shared: Redis failed (%s)", exc)
                self._warned = True

    async def _listen(self) -> None:
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                async for item in pubsub.listen():
                    if item.get("type") == "message":
                        self._apply(item["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: listen again in a while
                if not self._warned:
                    log.warning("channel suspensions are not shared: Redis failed (%s)", exc)
                    self._warned = True
                await asyncio.sleep(5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _apply(self, raw: bytes) -> None:
        try:
            data = json.loads(raw)
            if data["p"] == self.process_id:
                return
            left = float(data["until"]) - time.time()
            channel_id, model = int(data["c"]), str(data["m"])
        except (ValueError, KeyError, TypeError):
            return  # not ours to understand
        if left > 0:
            self.pool.suspend_for(channel_id, model, left)
