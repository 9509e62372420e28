"""The chat: conversations, streamed replies through the in-process gateway, the free tier.

:func:`init_app` registers the Flask views; :func:`webapp.chat.stream.chat_routes`
gives the async stream route that :mod:`webapp.asgi` mounts beside Flask.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from gateway.ratelimit import Limiter
    from webapp.chat.views import bp

    settings = app.config["PERMACHAT_SETTINGS"]
    if settings.redis_url:
        app.extensions["permachat.free_limiter"] = Limiter("free", 60.0, redis_url=settings.redis_url,
                                                           namespace=settings.secret_key)
    app.register_blueprint(bp)
