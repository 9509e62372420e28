"""The one ASGI app: async routes first, the Flask app mounted last at ``/``.

Lifespan events do not reach mounted apps, so everything that must start and
stop with the process (the database binding, the shared HTTP client, background
workers) is owned by the lifespan here.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from a2wsgi import WSGIMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway import db as dbmod
from gateway.http_client import upstream_client
from gateway.service import Gateway
from gateway.settings import Settings

log = logging.getLogger("permachat")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


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
    from webapp import create_app
    from webapp.chat.stream import chat_routes

    settings = (settings or Settings.from_env()).with_secret_key()
    if dbmod.db.obj is None:
        dbmod.bind(settings.database_url)
    flask_app = create_app(settings)
    # Built here, not in the lifespan, because its routes must be in the root app
    # from the start; the lifespan opens the client and starts the gateway.
    http = upstream_client(settings.upstream_timeout)
    gateway = Gateway(settings, http)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.settings = settings
        async with http as client, arweave_routes.lifespan(app, settings):
            app.state.http = client
            await gateway.start()
            app.state.gateway = gateway
            tune_gc()
            try:
                yield
            finally:
                await gateway.stop()

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        *arweave_routes.routes(),
        *gateway.routes(),
        *chat_routes(flask_app),
        Mount("/", app=WSGIMiddleware(flask_app, workers=16)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gateway  # for tests; started only by the lifespan
    return app
