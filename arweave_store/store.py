"""Uploads from the request to permanence: accept, deliver, follow.

The life of an upload (``Upload.status``)::

    received ──post accepted──▶ posted ──N confirmations──▶ confirmed   (local copy removed)
        │                         │
        └─refused/gave up─▶ failed ◀──dropped and cannot be re-posted── (refunded either way)

*Accept* happens inside the request: quote, reserve the quote from the key, sign,
and commit the row together with the reservation, after the file and the signed
header are safely on disk under ``DATA_DIR/arweave``. From then on nothing is
lost: *deliver* (post the header, then the chunks) settles the charge when the
gateway accepts, and anything a crash interrupts is resumed by :meth:`follow`,
which the tracker runs every few seconds on every replica. Each unfinished upload
is handled by one process at a time, the one holding its lease
(``Upload.lease_owner``, see :meth:`UploadStore._claim`), so replicas never post
the same upload together. And every money move is a conditional status change
and a :mod:`billing.quota` call in one transaction, so even two processes
handling the same row could not charge or refund twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from arweave_store import pricing
from arweave_store.client import ArweaveClient, ArweaveError
from arweave_store.encoding import b64url
from arweave_store.errors import PaymentRequired, UploadsUnavailable
from arweave_store.merkle import MAX_CHUNK_SIZE, ChunkPlan, plan_chunks, read_ranges
from arweave_store.models import Upload
from arweave_store.receive import Received
from arweave_store.transaction import Tag, Transaction, sign_transaction
from arweave_store.wallet import Wallet
from billing import quota
from gateway.auth import KeyCache, KeyInfo
from kernel.db import db, run_sync
from kernel.errors import BadRequest, UpstreamError
from kernel.models import RequestLog, ServingProcess, Token, User, utcnow
from kernel.money import format_usd
from kernel.settings import Settings

log = logging.getLogger("permachat.arweave")
T = TypeVar("T")

# Transient failures (gateway down, 5xx, timeouts) are retried this long; a refusal (4xx) is final,
# and that is how an expired anchor shows itself, so a dead transaction fails well before this.
GIVE_UP_AFTER = dt.timedelta(days=1)
STALE_AFTER = dt.timedelta(minutes=10)  # a "received" row this old has lost its request
TX_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")

try:
    APP_VERSION = version("permachat")
except PackageNotFoundError:  # running from a checkout that was never installed
    APP_VERSION = "0"


AFFORDABLE_PRECISION = 4096  # bytes: how closely a chunked upload's affordable size is found


def _spendable(info: KeyInfo) -> int:
    """What the key can spend now, fresh from the database (blocking)."""
    user = User.get_by_id(info.user_id)
    if info.unlimited:
        return max(0, user.quota)
    return max(0, min(user.quota, Token.get_by_id(info.token_id).remain_quota))


def _cannot_pay(info: KeyInfo, size: int, cost: str, spendable: int) -> PaymentRequired:
    whose = "Your account" if info.unlimited or info.user_quota <= info.remain_quota else "This key"
    return PaymentRequired(
        f"Storing this file ({size:,} {'byte' if size == 1 else 'bytes'} or more) permanently costs at least "
        f"{cost}; {whose} has "
        f"{format_usd(spendable)} left. Top up on the /topup page (nothing was charged, and the file "
        "was not read).")


def file_name_tag(name: str) -> str:
    """The ``File-Name`` tag value: printable ASCII kept, everything else (and ``%``) percent-encoded.

    Gateways disagree on how they decode non-ASCII tag bytes (arlocal reads them
    as Latin-1), so the tag stays ASCII; ``urllib.parse.unquote`` gives the name back.
    """
    return "".join(c if " " <= c <= "~" and c != "%" else "".join(f"%{b:02X}" for b in c.encode()) for c in name)


@dataclass(frozen=True)
class Hold:
    """What was reserved for an upload, kept on disk so a restarted server can settle or refund it."""

    user_id: int
    token_id: int | None  # None: an unlimited key, only the account was reserved
    units: int
    log_token_id: int
    token_name: str
    client_ip: str
    # The door it came through, for its log row. Records written before there were several doors lack it.
    endpoint: str = "/arweave/upload"

    def reservation(self) -> quota.Reservation:
        return quota.Reservation(self.user_id, self.token_id, self.units, spender_id=self.log_token_id)


class UploadStore:
    def __init__(self, settings: Settings, client: ArweaveClient, wallet: Wallet | None,
                 wallet_problem: str = "", *, process_id: str = "") -> None:
        self.settings = settings
        # This serving process's id (billing.holds.Registry): the owner written on the uploads it handles.
        # Empty: no registry (a store used on its own), so no leases and only the in-process guards below.
        self.process_id = process_id
        self.client = client
        self.wallet = wallet
        self.wallet_problem = wallet_problem
        self.dir = settings.data_dir / "arweave"
        self.incoming = self.dir / "incoming"
        self.started_at = utcnow()
        self.in_flight: set[str] = set()
        self.keys = KeyCache()
        self._uploader_key = hashlib.sha256(b"permachat uploader tag\0" + settings.secret_key.encode()).digest()

    # Paths of the local copy and of the record beside it.
    def data_path(self, tx_id: str) -> Path:
        return self.dir / f"{tx_id}.data"

    def record_path(self, tx_id: str) -> Path:
        return self.dir / f"{tx_id}.json"

    def gateway_url(self, tx_id: str) -> str:
        return f"{self.settings.arweave_gateway.rstrip('/')}/{tx_id}"

    def uploader_tag(self, user_id: int) -> str:
        """Stable per account, and says nothing about it without the service's secret key."""
        return hmac.new(self._uploader_key, f"user:{user_id}".encode(), hashlib.sha256).hexdigest()[:32]

    def require_wallet(self) -> Wallet:
        if self.wallet is None:
            raise UploadsUnavailable("Uploads to Arweave are not available: " + (
                self.wallet_problem or "the service has no wallet (set PERMACHAT_ARWEAVE_WALLET)."))
        return self.wallet

    async def quote(self, size: int) -> pricing.Quote:
        try:
            winston = await self.client.price(size)
        except ArweaveError as exc:
            raise UpstreamError(f"The Arweave gateway could not quote a price: {exc}") from None
        rates = await run_sync(pricing.read_rates)
        return pricing.quote(size, winston, rates)

    async def price(self, size: int) -> pricing.Quote:
        """The quote for a file of ``size`` bytes that this service would accept; BadRequest otherwise."""
        if size < 1:
            raise BadRequest("The file size must be a whole number of bytes, at least 1.", param="bytes")
        if size > self.settings.arweave_max_bytes:
            raise BadRequest(f"{size:,} bytes is more than this service accepts "
                             f"({self.settings.arweave_max_bytes:,} bytes at most).", param="bytes",
                             code="request_too_large")
        return await self.quote(size)

    async def affordable_bytes(self, info: KeyInfo, *, at_least: int | None) -> int | None:
        """How many bytes the key can pay to store, known before the body is read; None: up to the limit.

        ``at_least``: a size the file is known to reach (from ``Content-Length``);
        a key that cannot pay for it is refused at once, before a byte is read.
        Otherwise, for a body of unknown length, the largest affordable size is
        found (the network's price only grows with size), so the upload can be
        refused as soon as it passes it rather than after it has all arrived.
        Raises :class:`PaymentRequired`, charging nothing.
        """
        spendable = await run_sync(lambda: _spendable(info))
        limit = self.settings.arweave_max_bytes
        if at_least is not None:
            # The body's length bounds the file: no need to stop it mid-way. (A small multipart
            # body proves no size at all: then the exact quote, once it has arrived, decides.)
            if at_least > 0:
                quote = await self.quote(min(at_least, limit))
                if quote.units > spendable:
                    raise _cannot_pay(info, min(at_least, limit), quote.usd, spendable)
            return None
        if (await self.quote(limit)).units <= spendable:
            return None
        rates = await run_sync(pricing.read_rates)

        async def fits(size: int) -> bool:
            try:
                winston = await self.client.price(size)
            except ArweaveError as exc:
                raise UpstreamError(f"The Arweave gateway could not quote a price: {exc}") from None
            return pricing.quote(size, winston, rates).units <= spendable

        if not await fits(1):
            raise _cannot_pay(info, 1, (await self.quote(1)).usd, spendable)
        low, high = 1, limit  # low fits, high does not; to within 4 KB (about 15 quotes for 100 MB)
        while high - low > AFFORDABLE_PRECISION:
            middle = (low + high) // 2
            low, high = (middle, high) if await fits(middle) else (low, middle)
        return low

    async def store_file(self, info: KeyInfo, received: Received, *, request_id: str, client_ip: str,
                         endpoint: str = "/arweave/upload") -> Upload:
        """The one way a received file becomes a paid upload, whatever door it came through.

        Accept (quote, reserve, sign, commit) then deliver (post, settle or refund);
        ``received`` is moved or removed either way. ``endpoint`` names the door on
        the log row. Raises :class:`PaymentRequired` (and the gateway's errors)
        before any charge; once accepted, nothing raises: a failed post is the
        row's status (``failed`` and refunded, or ``received`` and retried).
        """
        try:
            row, plan = await self.accept(info, received, request_id=request_id, client_ip=client_ip,
                                          endpoint=endpoint)
        finally:
            received.discard()  # nothing left to remove once accepted: the file was moved
        return await self.deliver(row.tx_id, plan)

    async def accept(self, info: KeyInfo, received: Received, *, request_id: str, client_ip: str,
                     endpoint: str = "/arweave/upload") -> tuple[Upload, ChunkPlan]:
        """Bill and sign a received file, and keep it until it is confirmed. Raises before any charge."""
        wallet = self.require_wallet()
        quote = await self.quote(received.size)
        try:
            anchor = await self.client.anchor()
        except ArweaveError as exc:
            raise UpstreamError(f"The Arweave gateway could not be reached: {exc}") from None
        plan = await anyio.to_thread.run_sync(plan_chunks, received.path, received.size)
        tags = [Tag("Content-Type", received.content_type)]
        if received.file_name:
            tags.append(Tag("File-Name", file_name_tag(received.file_name)))
        tags += [Tag("App-Name", "permachat"), Tag("App-Version", APP_VERSION),
                 Tag("Uploader", self.uploader_tag(info.user_id))]
        tx = await anyio.to_thread.run_sync(lambda: sign_transaction(
            wallet, last_tx=anchor, reward=quote.winston, tags=tuple(tags), data_size=received.size,
            data_root=plan.data_root))
        hold = Hold(user_id=info.user_id, token_id=None if info.unlimited else info.token_id, units=quote.units,
                    log_token_id=info.token_id, token_name=info.token_name, client_ip=client_ip,
                    endpoint=endpoint)
        os.replace(received.path, self.data_path(tx.id))
        _write_json(self.record_path(tx.id), {"tx": tx.as_record(), "hold": hold.__dict__})

        def commit() -> Upload:
            with db.atomic():
                quota.reserve(info.user_id, info.token_id, quote.units, token_unlimited=info.unlimited)
                return Upload.create(
                    user_id=info.user_id, token_id=info.token_id, tx_id=tx.id, status="received",
                    size=received.size, content_type=received.content_type, file_name=received.file_name,
                    sha256=received.sha256, local_path=str(self.data_path(tx.id)), reserved_quota=quote.units,
                    winston=str(quote.winston), request_id=request_id, lease_owner=self.process_id)

        try:
            upload = await run_sync(commit)
        except quota.InsufficientQuota as exc:
            self._remove_copy(tx.id)
            whose = "This key" if exc.which == "token" else "Your account"
            left = info.remain_quota if exc.which == "token" else info.user_quota
            raise PaymentRequired(
                f"Storing this file ({received.size:,} bytes) permanently costs {quote.usd}; "
                f"{whose} has {format_usd(max(0, left))} left. "
                "Top up on the /topup page (nothing was charged).") from None
        except BaseException:
            self._remove_copy(tx.id)
            raise
        return upload, plan

    async def deliver(self, tx_id: str, plan: ChunkPlan | None = None) -> Upload:
        """Post a received upload; settle if the gateway takes it, refund if it never will."""
        self.in_flight.add(tx_id)
        try:
            tx, hold = self._read_record(tx_id)
            try:
                await self._post(tx, plan)
            except ArweaveError as exc:
                log.warning("posting %s failed: %s", tx_id, exc)
                reason, permanent = str(exc), exc.permanent
                row = await run_sync(lambda: _note_attempt(tx_id, reason))
                if permanent or utcnow() - row.created_at > GIVE_UP_AFTER:
                    await run_sync(lambda: self._fail_received(tx_id, hold, reason))
                return await run_sync(lambda: Upload.get(Upload.tx_id == tx_id))
            await run_sync(lambda: self._settle(tx_id, hold))
            return await run_sync(lambda: Upload.get(Upload.tx_id == tx_id))
        finally:
            self.in_flight.discard(tx_id)
            await self._release_soon(Upload.tx_id == tx_id)

    async def _post(self, tx: Transaction, plan: ChunkPlan | None) -> None:
        path = self.data_path(tx.id)
        if tx.data_size <= MAX_CHUNK_SIZE:
            data = await anyio.to_thread.run_sync(path.read_bytes)
            await self.client.post_transaction(tx.header(data))
            return
        await self.client.post_transaction(tx.header())
        if plan is None:
            plan = await anyio.to_thread.run_sync(plan_chunks, path, tx.data_size)
        ranges = [(c.start, c.end) for c in plan.chunks]
        chunks = read_ranges(path, ranges)
        for proof in plan.proofs:
            data = await anyio.to_thread.run_sync(next, chunks)
            await self.client.post_chunk({"data_root": tx.data_root, "data_size": str(tx.data_size),
                                          "data_path": b64url(proof.path), "offset": str(proof.offset),
                                          "chunk": b64url(data)})

    def _settle(self, tx_id: str, hold: Hold) -> None:
        with db.atomic():
            row = Upload.get(Upload.tx_id == tx_id)
            moved = (Upload.update(status="posted", posted_at=utcnow(), cost_quota=hold.units, last_error="",
                                   attempts=Upload.attempts + 1)
                     .where((Upload.tx_id == tx_id) & (Upload.status == "received")).execute())
            if moved != 1:
                return  # another replica settled it
            charged = quota.settle(hold.reservation(), hold.units)
            if charged != hold.units:
                Upload.update(cost_quota=charged).where(Upload.tx_id == tx_id).execute()
            RequestLog.create(request_id=row.request_id or tx_id, kind="upload", user_id=hold.user_id,
                              token_id=hold.log_token_id, token_name=hold.token_name,
                              endpoint=hold.endpoint, model="arweave", quota=charged, status_code=200,
                              client_ip=hold.client_ip, error="")

    def _fail_received(self, tx_id: str, hold: Hold, reason: str) -> None:
        with db.atomic():
            moved = (Upload.update(status="failed", last_error=reason[:2000], local_path="")
                     .where((Upload.tx_id == tx_id) & (Upload.status == "received")).execute())
            if moved == 1:
                quota.refund(hold.reservation())
        self._remove_copy(tx_id)

    def _fail_posted(self, row: Upload, reason: str) -> None:
        with db.atomic():
            moved = (Upload.update(status="failed", last_error=reason[:2000], local_path="")
                     .where((Upload.id == row.id) & (Upload.status == "posted")).execute())
            if moved == 1 and row.cost_quota > 0:
                quota.credit_user(row.user_id, row.cost_quota, kind="upload",
                                  note=f"refund: Arweave transaction {row.tx_id} failed: {reason}")
        self._remove_copy(row.tx_id)

    async def follow(self, stopping: asyncio.Event | None = None) -> None:
        """One pass over every unfinished upload (the tracker calls this on a timer); ends early once ``stopping``."""
        rows = await run_sync(lambda: list(Upload.select().where(Upload.status.in_(("received", "posted")))
                                           .order_by(Upload.id).limit(500)))
        for row in rows:
            if stopping is not None and stopping.is_set():
                return
            if row.status == "received" and not self._may_resume(row):
                continue
            try:
                # Inside the try: a stop that cancels this pass while the claim is being written
                # still gives the lease back (releasing a lease this process does not hold is a no-op).
                claimed = await _finish_even_if_cancelled(run_sync(lambda row=row: self._claim(row.id)))
                if claimed is None:
                    continue  # another process is handling it, or finished it since the list was read
                if claimed.status != row.status:  # moved on since the list was read (posted elsewhere)
                    continue
                if claimed.status == "received":
                    await self.deliver(claimed.tx_id)
                else:
                    await self.check(claimed)
            except ArweaveError as exc:
                log.info("following %s: %s", row.tx_id, exc)
            except FileNotFoundError as exc:
                log.error("upload %s lost its local copy (%s); it stays as it is for an operator", row.tx_id, exc)
            finally:
                await self._release_soon(Upload.id == row.id)

    def _may_resume(self, row: Upload) -> bool:
        if row.tx_id in self.in_flight:
            return False  # its request is still posting it
        if self.process_id:
            return True  # the lease says whether another process is (its request, or its tracker)
        return row.attempts > 0 or row.created_at < self.started_at or row.created_at < utcnow() - STALE_AFTER

    def _claim(self, upload_id: int) -> Upload | None:
        """Take the upload's lease (free, already ours, or held by a process no longer registered); its row, or None.

        One conditional UPDATE, so of two processes claiming at once exactly one
        gets it; a process that dies keeps its leases only until it is swept
        (billing.holds), and a clean stop unregisters it at once.
        """
        if self.process_id and not Upload.update(lease_owner=self.process_id).where(
                (Upload.id == upload_id) & Upload.status.in_(("received", "posted"))
                & ((Upload.lease_owner == "") | (Upload.lease_owner == self.process_id)
                   | Upload.lease_owner.not_in(ServingProcess.select(ServingProcess.id)))).execute():
            return None
        # Read after taking the lease: what another process did before is now visible, and nothing changes it.
        return Upload.get_or_none(Upload.id == upload_id)

    async def _release_soon(self, which: Any) -> None:
        """Give the lease back; if the database is away, this process keeps it until it stops (still safe)."""
        if not self.process_id:
            return
        try:
            await run_sync(lambda: Upload.update(lease_owner="").where(
                which & (Upload.lease_owner == self.process_id)).execute())
        except Exception:  # noqa: BLE001 - never mask what the delivery raised
            log.warning("could not give back the lease of an upload; this process keeps it", exc_info=True)

    async def check(self, row: Upload) -> None:
        status = await self.client.status(row.tx_id)
        if status.state == "confirmed":
            done = status.confirmations >= self.settings.arweave_confirmations
            await run_sync(lambda: self._mark(row, status.confirmations, done))
            return
        if status.state == "pending":
            return
        # The gateway no longer knows it (dropped from the mempool): post the same signed transaction again.
        tx, _ = self._read_record(row.tx_id)
        try:
            await self._post(tx, None)
        except ArweaveError as exc:
            reason, permanent = str(exc), exc.permanent
            await run_sync(lambda: _note_attempt(row.tx_id, reason))
            if permanent or utcnow() - row.created_at > GIVE_UP_AFTER:
                await run_sync(lambda: self._fail_posted(row, reason))
            return
        await run_sync(lambda: _note_attempt(row.tx_id, ""))

    def _mark(self, row: Upload, confirmations: int, done: bool) -> None:
        if not done:
            Upload.update(confirmations=confirmations).where(Upload.id == row.id).execute()
            return
        moved = (Upload.update(status="confirmed", confirmations=confirmations, confirmed_at=utcnow(), local_path="")
                 .where((Upload.id == row.id) & (Upload.status == "posted")).execute())
        if moved == 1:
            self._remove_copy(row.tx_id)

    def _read_record(self, tx_id: str) -> tuple[Transaction, Hold]:
        record = json.loads(self.record_path(tx_id).read_text())
        return Transaction.from_record(record["tx"]), Hold(**record["hold"])

    def _remove_copy(self, tx_id: str) -> None:
        self.data_path(tx_id).unlink(missing_ok=True)
        self.record_path(tx_id).unlink(missing_ok=True)

    def local_copy(self, row: Upload) -> Path | None:
        path = self.data_path(row.tx_id)
        return path if row.status in ("received", "posted") and path.exists() else None

    def describe(self, row: Upload, base_url: str) -> dict[str, Any]:
        """An upload as the API and the uploads page show it."""
        cost = row.cost_quota if row.status in ("posted", "confirmed") else row.reserved_quota
        return {"id": row.tx_id, "url": self.gateway_url(row.tx_id),
                "local_url": f"{base_url.rstrip('/')}/arweave/{row.tx_id}", "size": row.size,
                "content_type": row.content_type, "file_name": row.file_name, "sha256": row.sha256,
                "cost_usd": format_usd(0 if row.status == "failed" else cost), "status": row.status,
                "confirmations": row.confirmations, "error": row.last_error if row.status == "failed" else "",
                "created_at": row.created_at.replace(tzinfo=dt.UTC).isoformat()}


async def _finish_even_if_cancelled(work: Awaitable[T]) -> T:
    """Await ``work``; if the caller is cancelled meanwhile, wait for it to end before the cancel goes on.

    For a database write in a worker thread: the cancel would otherwise reach the
    caller while the thread is still writing, and what the caller's ``finally``
    then does (give the lease back) could run before the write it undoes.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


def _note_attempt(tx_id: str, error: str) -> Upload:
    Upload.update(attempts=Upload.attempts + 1, last_error=error[:2000]).where(Upload.tx_id == tx_id).execute()
    return Upload.get(Upload.tx_id == tx_id)


def _write_json(path: Path, value: Any) -> None:
    """Write-then-rename with fsync: the record exists whole or not at all."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(value, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
