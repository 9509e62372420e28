"""The GraphQL schema of the uploads: Strawberry types, and resolvers that call the one upload path.

Every resolver resolves its caller with :func:`arweave_store.access.who` and
stores through :meth:`UploadStore.store_file`, in the order ``routes.upload``
follows (key, wallet, size, affordability, spool, accept and deliver), so a file
that comes through GraphQL is refused, billed and refunded exactly like one
posted to ``/arweave/upload``. Resolvers raise our own errors;
:mod:`arweave_store.graphql.errors` gives them their ``extensions.code``.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio.to_thread
import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.file_uploads import Upload
from strawberry.types.execution import ExecutionContext

from arweave_store.access import who
from arweave_store.errors import UploadNotFound
from arweave_store.graphql.errors import log_unexpected
from arweave_store.graphql.multipart import PendingFile
from arweave_store.models import Upload as UploadRow
from arweave_store.receive import receive_stream, too_large_message
from arweave_store.store import UploadStore
from gateway.auth import KeyInfo
from kernel.db import run_sync
from kernel.errors import BadRequest, BodyTooLarge
from kernel.models import Token, User
from kernel.money import format_usd

ENDPOINT = "/graphql"  # the door, on the uploads' log rows
B64_MAX_BYTES = 16 * 1024 * 1024  # decoded; a larger file goes as a multipart Upload, streamed to disk
PAGE_MAX = 100
MAX_DEPTH = 6
MAX_TOKENS = 2000  # a client's full introspection query is under 200
MAX_ALIASES = 15
SLICE = 256 * 1024  # a decoded file goes to disk in slices like a request body


@dataclass(frozen=True)
class Context:
    """What a resolver knows about its request (``info.context``). Headers only: never cookies."""

    store: UploadStore
    headers: dict[str, str]  # lower-case names
    query: dict[str, str]  # the URL's query string (``?key=``)
    client_ip: str
    base_url: str
    request_id: str
    declared_file_size: int | None = None  # the least a multipart request's file weighs, by Content-Length


def b64_limit(store: UploadStore) -> int:
    """The largest file ``fileB64`` carries (decoded bytes)."""
    return min(store.settings.arweave_max_bytes, B64_MAX_BYTES)


def json_body_limit(store: UploadStore) -> int:
    """The largest JSON request body: the biggest ``fileB64`` and room for the rest of the request."""
    return 4 * math.ceil(b64_limit(store) / 3) + 64 * 1024


@strawberry.type(description="A file stored on Arweave (or on its way), as `POST /arweave/upload` answers it.")
class ArweaveUpload:
    id: strawberry.ID = strawberry.field(description="The Arweave transaction id.")
    url: str = strawberry.field(description="The permanent link, on the Arweave gateway.")
    local_url: str = strawberry.field(description="This service's link: the local copy until confirmed, then a "
                                                  "redirect to `url`.")
    size: int = strawberry.field(description="Bytes.")
    sha256: str = strawberry.field(description="Hex SHA-256 of the bytes.")
    content_type: str
    file_name: str
    cost_usd: str = strawberry.field(description="What was charged (held while `received`; `$0.00` if `failed`).")
    status: str = strawberry.field(description="`received` (held, being posted), `posted` (charged), `confirmed` "
                                               "(permanent), or `failed` (refunded).")
    confirmations: int
    error: str = strawberry.field(description="Why it failed; empty otherwise.")
    created_at: str = strawberry.field(description="ISO 8601, UTC.")

    @classmethod
    def of(cls, store: UploadStore, row: UploadRow, base_url: str) -> ArweaveUpload:
        d = store.describe(row, base_url)
        return cls(id=strawberry.ID(d["id"]), url=d["url"], local_url=d["local_url"], size=d["size"],
                   sha256=d["sha256"], content_type=d["content_type"], file_name=d["file_name"],
                   cost_usd=d["cost_usd"], status=d["status"], confirmations=d["confirmations"],
                   error=d["error"], created_at=d["created_at"])


@strawberry.type
class ArweaveUploadEdge:
    cursor: str
    node: ArweaveUpload


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(description="The caller's account's uploads, newest first (a Relay connection).")
class ArweaveUploadConnection:
    edges: list[ArweaveUploadEdge]
    page_info: PageInfo


@strawberry.type(description="What storing a file of `bytes` bytes costs, as `GET /arweave/price` answers.")
class ArweavePrice:
    bytes: int
    winston: str = strawberry.field(description="The network's price, in winston (10^-12 AR).")
    ar: str
    cost_usd: str = strawberry.field(description="What the key is charged.")
    usd_per_ar: str
    min_fee_usd: str
    max_bytes: int = strawberry.field(description="The largest file this service accepts.")


@strawberry.type(description="What the caller's key and account have left, in USD.")
class Balance:
    key_usd: str | None = strawberry.field(description="The key's own limit left; null for an unlimited key.")
    account_usd: str = strawberry.field(description="The account's balance.")
    spendable_usd: str = strawberry.field(description="What the key can spend now: the smaller of the two.")
    unlimited: bool = strawberry.field(description="Whether the key spends from the account without a limit.")


def _context(info: strawberry.Info) -> Context:
    return info.context


async def _caller(ctx: Context, *, spending: bool) -> KeyInfo:
    return await run_sync(lambda: who(ctx.store, ctx.headers, ctx.query, ctx.client_ip, spending=spending))


def _decode(text: str) -> bytes:
    """Standard base64 (RFC 4648, with padding), or BadRequest. Blocking."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("fileB64 is not valid base64 (the standard alphabet A-Z a-z 0-9 + /, with = padding). "
                         "Nothing was charged.", param="fileB64") from None


async def _in_slices(data: bytes) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), SLICE):
        yield bytes(view[start:start + SLICE])


def _cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"upload:{row_id}".encode()).decode().rstrip("=")


def _row_id(cursor: str) -> int:
    try:
        kind, _, number = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
        if kind == "upload" and number.isdigit():
            return int(number)
    except (binascii.Error, ValueError):
        pass
    raise BadRequest("`after` is not a cursor this API gave out; use a pageInfo.endCursor.", param="after")


def _balance(info: KeyInfo) -> Balance:
    user = User.get_by_id(info.user_id)
    token = Token.get_by_id(info.token_id)
    account = max(0, user.quota)
    key = None if token.unlimited else max(0, token.remain_quota)
    return Balance(key_usd=None if key is None else format_usd(key), account_usd=format_usd(account),
                   spendable_usd=format_usd(account if key is None else min(key, account)),
                   unlimited=token.unlimited)


@strawberry.type
class Query:
    @strawberry.field(description="The caller's account's uploads, newest first. `first` is at most 100.")
    async def arweave_uploads(self, info: strawberry.Info, first: int = 20,
                              after: str | None = None) -> ArweaveUploadConnection:
        ctx = _context(info)
        caller = await _caller(ctx, spending=False)
        if first < 0:
            raise BadRequest("`first` cannot be negative.", param="first")
        first = min(first, PAGE_MAX)
        before = _row_id(after) if after is not None else None

        def page() -> list[UploadRow]:
            rows = UploadRow.select().where(UploadRow.user_id == caller.user_id)
            if before is not None:
                rows = rows.where(UploadRow.id < before)
            return list(rows.order_by(UploadRow.id.desc()).limit(first + 1))

        rows = await run_sync(page)
        edges = [ArweaveUploadEdge(cursor=_cursor(r.id), node=ArweaveUpload.of(ctx.store, r, ctx.base_url))
                 for r in rows[:first]]
        return ArweaveUploadConnection(edges=edges, page_info=PageInfo(
            has_next_page=len(rows) > first, has_previous_page=before is not None,
            start_cursor=edges[0].cursor if edges else None, end_cursor=edges[-1].cursor if edges else None))

    @strawberry.field(name="arweaveUpload", description="One of the caller's account's uploads, by transaction id.")
    async def arweave_upload_by_id(self, info: strawberry.Info, id: strawberry.ID) -> ArweaveUpload:
        ctx = _context(info)
        caller = await _caller(ctx, spending=False)
        tx_id = str(id)
        row = await run_sync(lambda: UploadRow.get_or_none(
            (UploadRow.tx_id == tx_id) & (UploadRow.user_id == caller.user_id)))
        if row is None:
            raise UploadNotFound(f"This account has no upload {tx_id[:64]!r}.", param="id")
        return ArweaveUpload.of(ctx.store, row, ctx.base_url)

    @strawberry.field(description="What storing `bytes` bytes costs now (no key needed).")
    async def arweave_price(self, info: strawberry.Info, bytes: int) -> ArweavePrice:
        store = _context(info).store
        quote = (await store.price(bytes)).as_json()
        return ArweavePrice(bytes=bytes, winston=str(quote["winston"]), ar=str(quote["ar"]),
                            cost_usd=str(quote["cost_usd"]), usd_per_ar=str(quote["usd_per_ar"]),
                            min_fee_usd=str(quote["min_fee_usd"]), max_bytes=store.settings.arweave_max_bytes)

    @strawberry.field(description="What the caller's key and account have left (readable with no money left).")
    async def balance(self, info: strawberry.Info) -> Balance:
        caller = await _caller(_context(info), spending=False)
        return await run_sync(lambda: _balance(caller))


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Store a small file given as base64 (at most 16 MiB decoded, or the upload "
                                     "limit if smaller); larger files go as a multipart `Upload` through "
                                     "`arweaveUploadFile`.")
    async def arweave_upload(self, info: strawberry.Info, file_b64: str, content_type: str | None = None,
                             file_name: str | None = None) -> ArweaveUpload:
        ctx = _context(info)
        store = ctx.store
        caller = await _caller(ctx, spending=True)
        store.require_wallet()
        limit = store.settings.arweave_max_bytes
        text = file_b64.replace("\r", "").replace("\n", "")  # line breaks, as `base64` writes them, are allowed
        least = len(text) // 4 * 3 - 2  # bytes it decodes to, at least (padding takes up to two)
        if least > limit:
            raise BodyTooLarge(too_large_message(limit), param="fileB64")
        if least > b64_limit(store):
            raise BodyTooLarge(f"fileB64 carries at most {b64_limit(store):,} bytes; send a larger file as a "
                               "multipart Upload (arweaveUploadFile). Nothing was charged.", param="fileB64")
        data = await anyio.to_thread.run_sync(_decode, text)
        affordable = await store.affordable_bytes(caller, at_least=len(data))
        received = await receive_stream(_in_slices(data), max_bytes=limit, directory=store.incoming,
                                        content_type=content_type or "", file_name=file_name or "",
                                        affordable=affordable)
        row = await store.store_file(caller, received, request_id=ctx.request_id, client_ip=ctx.client_ip,
                                     endpoint=ENDPOINT)
        return ArweaveUpload.of(store, row, ctx.base_url)

    @strawberry.mutation(description="Store a file up to the upload limit, sent as a multipart `Upload` (the "
                                     "GraphQL multipart request spec) and streamed to disk. `contentType` and "
                                     "`fileName` default to the file part's.")
    async def arweave_upload_file(self, info: strawberry.Info, file: Upload, content_type: str | None = None,
                                  file_name: str | None = None) -> ArweaveUpload:
        ctx = _context(info)
        store = ctx.store
        caller = await _caller(ctx, spending=True)
        store.require_wallet()
        if not isinstance(file, PendingFile):
            raise BadRequest("`file` must be a file part of a multipart request (the GraphQL multipart request "
                             "spec); for base64 use arweaveUpload(fileB64:).", param="file")
        limit = store.settings.arweave_max_bytes
        declared = ctx.declared_file_size
        # Refused before the file is read when the key cannot pay for what Content-Length shows.
        affordable = await store.affordable_bytes(caller, at_least=None if declared is None else min(declared, limit))
        part = await file.open()
        received = await receive_stream(file.chunks(), max_bytes=limit, directory=store.incoming,
                                        content_type=content_type or part.content_type,
                                        file_name=file_name or part.file_name, affordable=affordable)
        row = await store.store_file(caller, received, request_id=ctx.request_id, client_ip=ctx.client_ip,
                                     endpoint=ENDPOINT)
        return ArweaveUpload.of(store, row, ctx.base_url)


class _Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        log_unexpected(errors)


# Factories: a fresh extension per request, so no request sees another's execution context.
schema = _Schema(query=Query, mutation=Mutation, extensions=[
    lambda: QueryDepthLimiter(max_depth=MAX_DEPTH), lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
    lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES)])
