"""The ``/arweave`` endpoints (Starlette, async) and the lifespan that owns the store.

    GET  /arweave/price?bytes=N    the quote, before uploading (no key needed)
    POST /arweave/upload           multipart field ``file`` or a raw body; key or X-Upload-Ticket
    GET  /arweave/uploads          the key's account's uploads, newest first
    GET  /arweave/{id}             the local copy until confirmed, then a redirect to the gateway
    GET|POST /graphql              the same, as GraphQL (arweave_store.graphql)
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote as urlquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from arweave_store.access import who
from arweave_store.client import ArweaveClient
from arweave_store.errors import UploadNotFound
from arweave_store.graphql import http as graphql
from arweave_store.models import Upload
from arweave_store.receive import declared_file_size, receive_upload
from arweave_store.store import TX_ID, UploadStore
from arweave_store.tracker import Tracker
from arweave_store.wallet import WalletError, load_wallet
from gateway.auth import client_ip
from kernel.db import run_sync
from kernel.errors import (
    BadRequest,
    GatewayError,
    error_response,
)
from kernel.settings import Settings

log = logging.getLogger("permachat.arweave")

def build_store(settings: Settings, process_id: str = "") -> UploadStore:
    client = ArweaveClient(settings.arweave_gateway)
    if not settings.arweave_wallet:
        return UploadStore(settings, client, None, process_id=process_id)
    try:
        return UploadStore(settings, client, load_wallet(settings.arweave_wallet), process_id=process_id)
    except WalletError as exc:
        log.error("PERMACHAT_ARWEAVE_WALLET: %s; uploads are disabled", exc)
        return UploadStore(settings, client, None, f"the wallet cannot be used (PERMACHAT_ARWEAVE_WALLET: {exc}).",
                           process_id=process_id)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette, settings: Settings, process_id: str = "") -> AsyncIterator[UploadStore]:
    """The upload store on ``app.state.arweave``, and its tracker running, for the app's lifetime.

    ``process_id`` is the registered serving process (the gateway's registry) whose
    leases the store takes; start this after registering and stop it before unregistering.
    """
    store = build_store(settings, process_id)
    app.state.arweave = store
    tracker = Tracker(store, settings.arweave_poll_seconds)
    tracker.start()
    try:
        yield store
    finally:
        await tracker.stop()
        await store.client.aclose()


async def price(request: Request) -> Response:
    """The cost of storing ``bytes`` bytes, in USD, before uploading."""
    store: UploadStore = request.app.state.arweave
    raw = request.query_params.get("bytes", "").strip()
    try:
        if not raw.isdigit() or int(raw) < 1:
            raise BadRequest("Give the file size as ?bytes=N (a whole number of bytes, at least 1).", param="bytes")
        quote = await store.price(int(raw))
    except GatewayError as exc:
        return error_response(exc)
    return JSONResponse(quote.as_json() | {"max_bytes": store.settings.arweave_max_bytes})


async def upload(request: Request) -> Response:
    """Store a file permanently: bill the key, post to Arweave, answer with the permanent link."""
    store: UploadStore = request.app.state.arweave
    request_id = uuid.uuid4().hex
    ip = client_ip(request)
    headers, query = dict(request.headers), dict(request.query_params)
    try:
        info = await run_sync(lambda: who(store, headers, query, ip, spending=True))
        store.require_wallet()
        declared = declared_file_size(request)
        if declared is not None and declared > store.settings.arweave_max_bytes:
            declared = None  # receive_upload answers 413 for that
        # Refused before the body is read when the key cannot pay (a 60 MB body is not signed first).
        affordable = await store.affordable_bytes(info, at_least=declared)
        received = await receive_upload(request, max_bytes=store.settings.arweave_max_bytes,
                                        directory=store.incoming, affordable=affordable)
        row = await store.store_file(info, received, request_id=request_id, client_ip=ip)
    except GatewayError as exc:
        return error_response(exc, request_id)
    body = store.describe(row, str(request.base_url))
    if row.status == "failed":
        body["error"] = {"message": f"Arweave did not accept the file ({row.last_error}). Nothing was charged.",
                         "type": "upstream_error", "param": None, "code": "arweave_rejected"}
        return JSONResponse(body, status_code=502, headers={"X-Request-Id": request_id})
    # 202: received but not yet accepted by the network (the tracker keeps trying; nothing is lost).
    return JSONResponse(body, status_code=200 if row.status == "posted" else 202,
                        headers={"X-Request-Id": request_id})


async def list_uploads(request: Request) -> Response:
    """The uploads of the account the key (or ticket) belongs to, newest first."""
    store: UploadStore = request.app.state.arweave
    headers, query, ip = dict(request.headers), dict(request.query_params), client_ip(request)
    try:
        info = await run_sync(lambda: who(store, headers, query, ip, spending=False))
    except GatewayError as exc:
        return error_response(exc)
    rows = await run_sync(lambda: list(Upload.select().where(Upload.user_id == info.user_id)
                                       .order_by(Upload.id.desc()).limit(500)))
    base = str(request.base_url)
    return JSONResponse({"object": "list", "data": [store.describe(r, base) for r in rows]})


async def serve(request: Request) -> Response:
    """The file: from the local copy until it is confirmed, then from the Arweave gateway."""
    store: UploadStore = request.app.state.arweave
    tx_id = request.path_params["tx_id"]
    if not TX_ID.match(tx_id):
        return error_response(UploadNotFound(f"{tx_id[:64]!r} is not an Arweave transaction id."))
    row = await run_sync(lambda: Upload.get_or_none(Upload.tx_id == tx_id))
    if row is not None:
        path = store.local_copy(row)
        if path is not None:
            name = row.file_name or row.tx_id
            return FileResponse(path, media_type=row.content_type, headers={
                "Content-Disposition": f"inline; filename*=UTF-8''{urlquote(name, safe='')}",
                # User content on our own origin: no scripts, no sniffing, no caching of the temporary copy.
                "Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-cache", "X-Arweave-Status": row.status})
        if row.status == "failed":
            return error_response(UploadNotFound(f"This upload failed and was never stored: {row.last_error}"))
    return RedirectResponse(store.gateway_url(tx_id), status_code=302)


def routes() -> list[BaseRoute]:
    return [
        Route("/arweave/price", price, methods=["GET"]),
        Route("/arweave/upload", upload, methods=["POST"]),
        Route("/arweave/uploads", list_uploads, methods=["GET"]),
        Route("/arweave/{tx_id}", serve, methods=["GET", "HEAD"]),
        Route("/graphql", graphql.graphql, methods=["GET", "POST"]),
    ]
