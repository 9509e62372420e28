"""Views every page shares: the home page, the language switch, request set-up."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, redirect, request, session, url_for
from werkzeug.wrappers import Response

from kernel import db as dbmod
from webapp import LANGUAGES, errors
from webapp.http import is_htmx
from webapp.redirects import safe_next

bp = Blueprint("core", __name__)


def public_url() -> str:
    """The base URL pages show people: ``PERMACHAT_PUBLIC_URL``, else the address this server answered on.

    Never the request's Host header: anyone can send any Host, and the docs (or a
    cache in front of them) would then tell people to send their keys to that site.
    The fallback is the socket's own address (``SERVER_NAME``/``SERVER_PORT``).
    """
    configured = current_app.config["PERMACHAT_SETTINGS"].public_url
    if configured:
        return configured.rstrip("/")
    host, port = request.environ.get("SERVER_NAME") or "127.0.0.1", str(request.environ.get("SERVER_PORT") or "")
    if ":" in host:
        host = f"[{host}]"  # IPv6
    scheme = request.scheme
    default_port = {"http": "80", "https": "443"}.get(scheme)
    return f"{scheme}://{host}" + ("" if port in ("", default_port) else f":{port}")


@bp.get("/")
def index() -> object:
    """The chat page (a new conversation)."""
    from webapp.chat.views import chat_page

    return chat_page()


@bp.post("/lang/<code>")
def set_language(code: str) -> Response:
    """Switch the interface language and go back to the page the visitor was on."""
    if code in LANGUAGES:
        session["lang"] = code
    home = url_for("core.index")
    target = safe_next(request.form.get("next"), "") or safe_next(request.referrer, home)
    return redirect(target, code=303)


def init_app(app: Flask) -> None:
    @app.before_request
    def _connect() -> None:
        # a2wsgi runs views on a fixed pool of threads; each keeps its connection (replaced if the server cut it).
        dbmod.connect()

    @app.teardown_request
    def _drop_broken(exc: BaseException | None) -> None:
        if exc is not None:
            dbmod.drop_after(exc)  # a driver error: the next request on this thread gets a new connection

    @app.after_request
    def _vary(response: Response) -> Response:
        if is_htmx():
            response.vary.add("HX-Request")
        return response

    @app.context_processor
    def _globals() -> dict:
        from flask_babel import get_locale

        return {"current_lang": str(get_locale() or "en"), "languages": LANGUAGES}

    app.register_blueprint(bp)
    errors.init_app(app)
