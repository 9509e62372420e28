"""The web app: chat page and account console (Flask + HTMX), served under the ASGI app.

:func:`create_app` is the Flask application factory; :mod:`webapp.asgi` mounts it
last, behind the gateway's and the uploads' async routes.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request, session
from flask_babel import Babel
from flask_login import LoginManager
from flask_wtf import CSRFProtect

from kernel.settings import Settings
from webapp.ids import IdConverter

LANGUAGES = ("en", "zh")
TRANSLATION_DOMAINS = ("messages", "chat", "console", "uploads")

babel = Babel()
login_manager = LoginManager()
csrf = CSRFProtect()


def select_locale() -> str:
    """The language the visitor picked, else the browser's best match, else English."""
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or "en"


def create_app(settings: Settings | None = None, test_config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app for ``settings`` (read from the environment when not given)."""
    from webapp import security, static_files, views

    settings = (settings or Settings.from_env()).with_secret_key()
    app = Flask(__name__)
    # Before any blueprint adds a route: every <int:id> is bounded to what a table can hold.
    app.url_map.converters["int"] = IdConverter
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        PERMACHAT_SETTINGS=settings,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # One catalog per area so each can be edited on its own: messages (shared
        # layout), chat, console. Flask-Babel pairs each domain with a directory.
        BABEL_DOMAIN=";".join(TRANSLATION_DOMAINS),
        BABEL_TRANSLATION_DIRECTORIES=";".join("translations" for _ in TRANSLATION_DOMAINS),
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
    )
    if test_config:
        app.config.update(test_config)
    # The remember cookie logs in for a year: never sent cross-site, never readable by
    # scripts, and over HTTPS only when the session cookie is.
    app.config.setdefault("REMEMBER_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    app.config.setdefault("REMEMBER_COOKIE_SECURE", app.config.get("SESSION_COOKIE_SECURE", False))

    babel.init_app(app, locale_selector=select_locale)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "account.login"

    from webapp.auth import load

    login_manager.user_loader(load)

    views.init_app(app)
    static_files.init_app(app)
    security.init_app(app, settings)
    from webapp import account

    account.init_app(app)
    from webapp import chat

    chat.init_app(app)
    from webapp import uploads

    uploads.init_app(app)
    return app
