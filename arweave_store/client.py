"""Our own client for an Arweave gateway's HTTP API: prices, anchors, posting, status.

Every request has a bounded time; posts are retried on transport errors, 429 and
5xx (with backoff), never on other 4xx answers, which the network means. Errors
become :class:`ArweaveError`, whose ``permanent`` flag tells the caller whether
trying again can ever help.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger("permachat.arweave")

TIMEOUT = httpx.Timeout(connect=10, read=60, write=60, pool=10)
RETRIES = 4  # attempts per request beyond the first
BACKOFF = 0.5  # seconds, doubled per attempt


class ArweaveError(Exception):
    def __init__(self, message: str, *, status: int | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.permanent = permanent


@dataclass(frozen=True)
class TxStatus:
    state: str  # "pending" | "confirmed" | "missing"
    confirmations: int = 0
    block_height: int | None = None


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


def _describe(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return f"{response.status_code} {text[:200]}" if text else str(response.status_code)


class ArweaveClient:
    def __init__(self, base_url: str, *, timeout: httpx.Timeout = TIMEOUT, retries: int = RETRIES,
                 backoff: float = BACKOFF) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, trust_env=False,
                                       follow_redirects=True,
                                       limits=httpx.Limits(max_connections=32, max_keepalive_connections=8))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, *, json: Any = None, retry: bool = True) -> httpx.Response:
        attempts = self.retries + 1 if retry else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = await self._http.request(method, path, json=json)
            except httpx.HTTPError as exc:
                if last:
                    raise ArweaveError(f"{self.base_url} could not be reached ({type(exc).__name__}: {exc})") from None
                log.info("arweave %s %s failed (%s), retrying", method, path, exc)
            else:
                if not _retryable(response.status_code) or last:
                    return response
                log.info("arweave %s %s answered %s, retrying", method, path, response.status_code)
            await asyncio.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    async def _text(self, path: str) -> str:
        response = await self._request("GET", path)
        if response.status_code != 200:
            raise ArweaveError(f"GET {path}: {_describe(response)}", status=response.status_code)
        return response.text.strip()

    async def price(self, size: int) -> int:
        """Winston the network asks to store ``size`` bytes."""
        text = await self._text(f"/price/{int(size)}")
        try:
            return int(text)
        except ValueError:
            raise ArweaveError(f"the gateway's price for {size} bytes is not a number: {text[:50]!r}") from None

    async def anchor(self) -> str:
        return await self._text("/tx_anchor")

    async def balance(self, address: str) -> int:
        text = await self._text(f"/wallet/{address}/balance")
        try:
            return int(text)
        except ValueError:
            raise ArweaveError(f"the gateway's balance for {address} is not a number: {text[:50]!r}") from None

    async def post_transaction(self, header: dict[str, Any]) -> None:
        """Post a signed transaction; returns once the gateway accepted it (or already had it)."""
        response = await self._request("POST", "/tx", json=header)
        if response.status_code in (200, 202, 208):
            return
        raise ArweaveError(f"the gateway refused the transaction: {_describe(response)}", status=response.status_code,
                           permanent=not _retryable(response.status_code))

    async def post_chunk(self, chunk: dict[str, str]) -> None:
        response = await self._request("POST", "/chunk", json=chunk)
        if response.status_code == 200:
            return
        raise ArweaveError(f"the gateway refused a chunk at offset {chunk['offset']}: {_describe(response)}",
                           status=response.status_code, permanent=not _retryable(response.status_code))

    async def status(self, tx_id: str) -> TxStatus:
        response = await self._request("GET", f"/tx/{tx_id}/status")
        if response.status_code == 404:
            return TxStatus("missing")
        if response.status_code == 202 or (response.status_code == 200 and response.text.strip() == "Pending"):
            return TxStatus("pending")  # arweave.net says 202; arlocal says 200 "Pending"
        if response.status_code != 200:
            raise ArweaveError(f"status of {tx_id}: {_describe(response)}", status=response.status_code)
        try:
            body = response.json()
            return TxStatus("confirmed", int(body.get("number_of_confirmations", 0)), body.get("block_height"))
        except (ValueError, AttributeError, TypeError):
            raise ArweaveError(f"status of {tx_id} is not JSON: {response.text[:100]!r}") from None
