"""Tell the running gateway about a console change now, rather than when its caches expire.

The gateway keeps key lookups for a few seconds and reloads channels and prices
every few seconds. After a person disables a key, tops up, or an admin edits a
channel, the change should hold for the very next request here, and within a
second on every other process and replica (:mod:`gateway.invalidation`, which
is announced even where there is no gateway in this process to tell: the Flask
test client, the CLI).
"""

from __future__ import annotations

import logging

from gateway import invalidation
from kernel.models import Token

log = logging.getLogger("permachat.console")


def _gateway():
    from webapp.chat import bridge

    try:
        return bridge, bridge.gateway()
    except bridge.GatewayUnavailable:
        return bridge, None


def forget_keys(*, user_id: int | None = None, key_hash: str | None = None) -> None:
    """Drop cached lookups of one key, or of every key of an account (here now, elsewhere within a second)."""
    invalidation.announce()
    _, gw = _gateway()
    if gw is None:
        return
    hashes = [key_hash] if key_hash else [t.key_hash for t in Token.select(Token.key_hash).where(Token.user == user_id)]
    for digest in hashes:
        gw.keys.forget(digest)


def reload_channels() -> None:
    """Make the gateway reload channels and prices now (and every other process within a second)."""
    invalidation.announce()
    bridge, gw = _gateway()
    if gw is None:
        return
    try:
        bridge.call(gw.refresh)
    except Exception:  # the periodic reload will pick the change up a few seconds later
        log.exception("could not reload the gateway's channels now")
