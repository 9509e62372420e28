"""The one ASGI app: async routes first, the Flask app mounted last at ``/``.

Lifespan events do not reach mounted apps, so everything that must start and
stop with the process (the database binding, the shared HTTP client, background
workers) is owned by the lifespan here.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from a2wsgi import WSGIMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateway.http.cors import GatewayCORS
from gateway.http_client import upstream_client
from gateway.service import Gateway
from kernel import db as dbmod
from kernel.settings import Settings
from webapp import access_log
from webapp.static_files import STATIC_DIR, StaticAssets

log = logging.getLogger("permachat")



def tune_gc() -> None:
    """Freeze what start-up built, and collect young objects less often.

    A relayed request allocates a few thousand objects. With Python's default
    threshold (700) the collector ran several times per request, and every full
    collection walked the ~90,000 objects of the loaded modules; together about
    a sixth of the gateway's CPU time. Frozen objects are never walked again.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(7000, 20, 50)


async def healthz(request: Request) -> JSONResponse:
    """200 when the database answers, 503 when it does not."""
    try:
        await dbmod.run_sync(lambda: dbmod.db.execute_sql("SELECT 1").fetchone())
    except Exception as exc:  # any database failure means "not healthy"
        return JSONResponse({"status": "error", "database": str(exc)[:200]}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


def create_asgi_app(settings: Settings | None = None) -> Starlette:
    """Compose the deployment for ``settings`` (read from the environment when not given)."""
    from arweave_store import routes as arweave_routes
    from telegram_bot import service as telegram
    from telegram_bot import webhook as telegram_webhook
    from webapp import create_app
    from webapp.chat.shared import StreamBus
    from webapp.chat.stream import chat_routes
    from webapp.chat.stream import drain as drain_replies

    settings = (settings or Settings.from_env()).with_secret_key()
    if dbmod.db.obj is None:
        dbmod.bind(settings.database_url)
    flask_app = create_app(settings)
    # Built here, not in the lifespan, because its routes must be in the root app
    # from the start; the lifespan opens the client and starts the gateway.
    http = upstream_client(settings.upstream_timeout, settings.upstream_connections)
    gateway = Gateway(settings, http)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        access_log.install()  # here: after uvicorn set up its loggers, in every worker
        app.state.settings = settings
        # Replies being written, visible from every worker and replica (webapp.chat.shared).
        app.state.chat_bus = StreamBus(settings.redis_url, settings.secret_key) if settings.redis_url else None
        async with http as client:
            app.state.http = client
            await gateway.start()
            app.state.gateway = gateway
            try:
                # Inside the gateway's registration: the uploads' leases name this registered process.
                async with arweave_routes.lifespan(app, settings, gateway.registry.id) as store:
                    # Inside the store's: the bot's uploads use it, and are drained before it closes.
                    async with telegram.lifespan(app, settings, store, gateway.registry.id):
                        tune_gc()
                        yield
            finally:
                await drain_replies()  # their settlements go to the ledger, which stop() then writes
                await gateway.stop()
                if app.state.chat_bus is not None:
                    await app.state.chat_bus.close()

    gateway_routes = gateway.routes()
    upload_routes = arweave_routes.routes()
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Mount("/static", app=StaticAssets(STATIC_DIR, flask_app.extensions["permachat.static_versions"]),
              name="static"),
        *telegram_webhook.routes(settings),
        *upload_routes,
        *gateway_routes,
        *chat_routes(flask_app),
        Mount("/", app=WSGIMiddleware(flask_app, workers=16)),
    ]
    app = Deployment(routes=routes, lifespan=lifespan)
    app.fast_endpoints = fast_endpoints(gateway_routes)
    app.cors = GatewayCORS(app.route, [*gateway_routes, *upload_routes], prefixes=("/v1/", "/arweave/"))
    app.trust_proxies(settings.proxy_list())
    app.state.gateway = gateway  # for tests; started only by the lifespan
    return app


# The gateway's busiest endpoints, with and without /v1 (each catches its own errors).
FAST_PATHS = frozenset(prefix + path for prefix in ("/v1", "") for path in (
    "/chat/completions", "/completions", "/embeddings"))


def fast_endpoints(routes: list[BaseRoute]) -> dict[tuple[str, str], Callable[[Request], Awaitable[Response]]]:
    """``(method, path) -> endpoint`` for the POST routes of :data:`FAST_PATHS` (the first route wins)."""
    found: dict[tuple[str, str], Callable[[Request], Awaitable[Response]]] = {}
    for route in routes:
        if isinstance(route, Route) and route.path in FAST_PATHS and "POST" in (route.methods or ()):
            found.setdefault(("POST", route.path), route.endpoint)
    return found


class Deployment(Starlette):
    """The root app; the gateway's busiest endpoints are found by one dict lookup.

    Starlette's error middlewares and its walk through the route list (static
    files, Arweave, then the gateway's) wrap every request and every ``send``;
    for a relayed request that was about a tenth of its CPU time. The gateway's
    endpoints catch their own errors (``gateway.http.routes.with_request_id``), so
    they lose nothing by skipping them. Everything else goes through Starlette.
    """

    fast_endpoints: dict[tuple[str, str], Callable[[Request], Awaitable[Response]]] = {}
    forwarded: ProxyHeadersMiddleware | None = None
    cors: GatewayCORS | None = None  # cross-origin requests to the gateway's paths (gateway/http/cors.py)

    def trust_proxies(self, proxies: list[str]) -> None:
        """Believe ``X-Forwarded-For``/``-Proto`` from these addresses only (``PERMACHAT_TRUSTED_PROXIES``).

        Here rather than in uvicorn's options so that every way of serving the app
        (``permachat serve``, the tests, another ASGI server) trusts the same proxies.
        From anyone else the headers are ignored: the client address is the socket's,
        and the scheme is what the connection used.
        """
        self.forwarded = ProxyHeadersMiddleware(self.dispatch, trusted_hosts=proxies) if proxies else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.forwarded is not None and scope["type"] != "lifespan":
            await self.forwarded(scope, receive, send)  # rewrites scope["client"] and ["scheme"], then dispatch()
        else:
            await self.dispatch(scope, receive, send)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.cors is not None and self.cors.wants(scope):
            await self.cors.cors(scope, receive, send)  # CORSMiddleware around route(), below
        else:
            await self.route(scope, receive, send)

    async def route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.fast_endpoints.get((scope["method"], scope["path"]))
            if endpoint is not None:
                scope["app"] = self
                response = await endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
