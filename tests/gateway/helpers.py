"""Small waits for what the gateway writes in the background."""

from __future__ import annotations

import time

from kernel.models import RequestLog


def wait_logs(n: int, timeout: float = 5.0) -> list[RequestLog]:
    """The relay's log rows once there are at least ``n`` (the ledger writes in batches)."""
    deadline = time.monotonic() + timeout
    rows: list[RequestLog] = []
    while time.monotonic() < deadline:
        rows = list(RequestLog.select().where(RequestLog.kind == "relay").order_by(RequestLog.id))
        if len(rows) >= n:
            return rows
        time.sleep(0.02)
    raise AssertionError(f"expected {n} log rows, found {len(rows)}")


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
