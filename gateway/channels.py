"""Which upstream serves a request: a cached view of channels and prices, and the picking rules.

The view is reloaded every few seconds (and at once after the gateway changes a
channel), so the hot path never queries for channels or prices. Picking: the
highest priority first, then weighted random within it; never the same channel
twice in one request. A failing (channel, model) is suspended in memory for a
while (longer after a 429); only fatal errors disable a channel in the database.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from billing.prices import DEFAULT_PRICE_OPTION, Price, default_price
from gateway import invalidation
from gateway.adaptors import adaptor_class
from gateway.adaptors.base import Adaptor, ChannelConfig
from kernel.models import Channel, ModelPrice, Option, utcnow

log = logging.getLogger("permachat.gateway")

REFRESH_SECONDS = 5.0
SUSPEND_AFTER_ERROR = 15.0  # 5xx, timeouts, connection errors
SUSPEND_AFTER_429 = 60.0  # unless the upstream's Retry-After says otherwise
SUSPEND_MAX = 600.0


@dataclass(frozen=True)
class ChannelInfo:
    """An enabled channel as the relay needs it (a snapshot of the row)."""

    id: int
    type: str
    name: str
    base_url: str
    keys: tuple[str, ...]
    models: frozenset[str]
    model_mapping: dict[str, str]
    priority: int
    weight: int
    settings: dict[str, Any]
    adaptor: type[Adaptor]

    _adaptors: dict[tuple[str, int], Adaptor] = field(default_factory=dict, compare=False, repr=False)

    def config(self, key: str) -> ChannelConfig:
        return ChannelConfig(id=self.id, type=self.type, name=self.name, base_url=self.base_url, key=key,
                             settings=self.settings, model_mapping=self.model_mapping)

    def adaptor_for(self, http: httpx.AsyncClient) -> Adaptor:
        """An adaptor for one attempt, on one of the channel's keys chosen at random.

        Adaptors hold no state between requests, so one per key is built per
        snapshot of the channel rather than one per request.
        """
        key = self.keys[0] if len(self.keys) == 1 else random.choice(self.keys)
        adaptor = self._adaptors.get((key, id(http)))
        if adaptor is None:
            adaptor = self._adaptors[key, id(http)] = self.adaptor(self.config(key), http)
        return adaptor


@dataclass
class Snapshot:
    channels: list[ChannelInfo] = field(default_factory=list)
    prices: dict[str, Price] = field(default_factory=dict)
    default_price: Price | None = None
    by_model: dict[str, list[ChannelInfo]] = field(default_factory=dict)


def load_snapshot() -> Snapshot:
    """Read enabled channels, prices and the default price. Blocking: run in a worker thread."""
    snap = Snapshot()
    for row in Channel.select().where(Channel.status == "enabled").order_by(Channel.priority.desc(), Channel.id):
        cls = adaptor_class(row.type)
        keys = tuple(k for k in (row.keys or ()) if k)
        if cls is None or not keys:
            continue  # a type whose adaptor is not installed, or no key: nothing can be sent
        info = ChannelInfo(id=row.id, type=row.type, name=row.name, base_url=row.base_url or cls.default_base_url,
                           keys=keys, models=frozenset(row.models or ()), model_mapping=dict(row.model_mapping or {}),
                           priority=row.priority, weight=max(0, row.weight), settings=dict(row.settings or {}),
                           adaptor=cls)
        snap.channels.append(info)
        for model in info.models:
            snap.by_model.setdefault(model, []).append(info)
    snap.prices = {p.model: Price.from_row(p) for p in ModelPrice.select()}
    snap.default_price = default_price(Option.read(DEFAULT_PRICE_OPTION))
    return snap


class ChannelPool:
    """The current snapshot plus in-memory suspensions."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()
        self.loaded_at = 0.0
        self._suspended: dict[tuple[int, str], float] = {}
        # Told of each new suspension (channel id, model, seconds): gateway.suspensions shares them.
        self.on_suspend: Callable[[int, str, float], None] | None = None

    def replace(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.loaded_at = time.monotonic()

    def price(self, model: str) -> Price | None:
        return self.snapshot.prices.get(model) or self.snapshot.default_price

    def serving(self, model: str, endpoint: str) -> list[ChannelInfo]:
        return [c for c in self.snapshot.by_model.get(model, ()) if endpoint in c.adaptor.supports]

    def pick(self, model: str, endpoint: str, tried: Iterable[int]) -> ChannelInfo | None:
        """The next channel to try, or None when every one serving ``model`` was tried."""
        tried = set(tried)
        now = time.monotonic()
        fresh: list[ChannelInfo] = []
        suspended: list[tuple[float, ChannelInfo]] = []
        for c in self.serving(model, endpoint):
            if c.id in tried:
                continue
            until = self._suspended.get((c.id, model), 0.0)
            if until > now:
                suspended.append((until, c))
            else:
                fresh.append(c)
        if fresh:
            top = max(c.priority for c in fresh)
            group = [c for c in fresh if c.priority == top]
            weights = [c.weight for c in group]
            if len(group) == 1 or not any(weights):
                return group[0] if len(group) == 1 else random.choice(group)
            return random.choices(group, weights=weights)[0]
        if suspended:
            # Better a channel that failed a moment ago than no answer at all.
            return min(suspended, key=lambda pair: pair[0])[1]
        return None

    def suspend(self, channel_id: int, model: str, *, rate_limited: bool, retry_after: float | None) -> float:
        seconds = SUSPEND_AFTER_429 if rate_limited else SUSPEND_AFTER_ERROR
        if retry_after:
            seconds = min(max(retry_after, 1.0), SUSPEND_MAX)
        self._suspended[(channel_id, model)] = time.monotonic() + seconds
        if self.on_suspend is not None:
            self.on_suspend(channel_id, model, seconds)
        return seconds

    def suspend_for(self, channel_id: int, model: str, seconds: float) -> None:
        """Suspend as another process did, for ``seconds`` from now (never shortening a longer one here)."""
        until = time.monotonic() + seconds
        if until > self._suspended.get((channel_id, model), 0.0):
            self._suspended[(channel_id, model)] = until

    def is_suspended(self, channel_id: int, model: str) -> bool:
        return self._suspended.get((channel_id, model), 0.0) > time.monotonic()

    def drop(self, channel_id: int) -> None:
        """Forget a channel at once (it was disabled); the next reload agrees."""
        snap = self.snapshot
        channels = [c for c in snap.channels if c.id != channel_id]
        by_model = {m: [c for c in cs if c.id != channel_id] for m, cs in snap.by_model.items()}
        self.snapshot = Snapshot(channels=channels, prices=snap.prices, default_price=snap.default_price,
                                 by_model=by_model)


def record_error(channel_id: int, message: str) -> None:
    message = message.replace("\x00", "\ufffd")  # an upstream's text; PostgreSQL refuses NUL
    Channel.update(last_error=f"{utcnow():%Y-%m-%d %H:%M:%S} UTC: {message}"[:2000]).where(
        Channel.id == channel_id).execute()


def disable_channel(channel_id: int, reason: str) -> None:
    reason = reason.replace("\x00", "\ufffd")
    Channel.update(status="disabled", disabled_reason=f"{utcnow():%Y-%m-%d %H:%M:%S} UTC: {reason}"[:2000],
                   last_error=reason[:2000]).where(Channel.id == channel_id).execute()
    invalidation.announce()  # every replica stops sending to it within a second, not at its next reload
