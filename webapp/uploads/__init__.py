"""The uploads page: store files on Arweave from the browser, with the key the session unlocked.

The browser never holds the key: the page asks ``/uploads/ticket`` for a
short-lived signed ticket naming the session's token id and sends it to
``POST /arweave/upload`` as ``X-Upload-Ticket``. The chat composer uses the same
two calls to attach a file and insert its permanent link.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, render_template, session
from flask_login import current_user
from werkzeug.wrappers import Response

from arweave_store.models import Upload
from arweave_store.tickets import MAX_AGE, issue_ticket
from kernel.models import Token, User
from kernel.money import format_usd
from webapp.chat.keys import current_token_id
from webapp.views import public_url

bp = Blueprint("uploads", __name__, url_prefix="/uploads")


def _account() -> tuple[int | None, User | None]:
    token_id = current_token_id()
    token = Token.get_or_none(Token.id == token_id) if token_id is not None else None
    return (token_id, token.user) if token is not None else (None, None)


def _rows(user: User) -> list[dict[str, Any]]:
    gateway = current_app.config["PERMACHAT_SETTINGS"].arweave_gateway.rstrip("/")
    base = public_url()
    rows = Upload.select().where(Upload.user_id == user.id).order_by(Upload.id.desc()).limit(200)
    return [{"id": r.tx_id, "file_name": r.file_name or r.tx_id, "size": r.size, "status": r.status,
             "url": f"{gateway}/{r.tx_id}", "local_url": f"{base}/arweave/{r.tx_id}",
             "cost_usd": format_usd(0 if r.status == "failed" else (r.cost_quota or r.reserved_quota)),
             "created_at": r.created_at, "error": r.last_error if r.status == "failed" else ""} for r in rows]


@bp.get("/")
def index() -> str:
    """The uploads page: drop a file, see its price, send it, and the list of uploads."""
    token_id, user = _account()
    settings = current_app.config["PERMACHAT_SETTINGS"]
    return render_template("uploads/index.html", user=user, uploads=_rows(user) if user else [],
                           max_bytes=settings.arweave_max_bytes,
                           balance=format_usd(user.quota) if user else "")


@bp.get("/list")
def upload_list() -> str:
    """The list of uploads alone (the page swaps it in after each upload)."""
    _, user = _account()
    return render_template("uploads/_list.html", uploads=_rows(user) if user else [])


@bp.get("/ticket")
def ticket() -> Response:
    """A signed ticket (10 minutes) to upload with the session's key, or 401 without one."""
    token_id, _ = _account()
    if token_id is None:
        response = jsonify({"error": {"message": "Uploading to Arweave needs an API key: paste one at the top "
                                                 "right or log in.", "type": "invalid_request_error",
                                      "param": None, "code": "no_key"}})
        response.status_code = 401
        return response
    secret = current_app.config["SECRET_KEY"]
    return jsonify({"ticket": issue_ticket(secret, token_id), "expires_in": MAX_AGE,
                    "upload_url": public_url() + "/arweave/upload"})


def _nav_visible() -> bool:
    """Whether the top bar links to the uploads page: cheap (no query), so every page can ask."""
    return bool(current_user.is_authenticated or session.get("key_token_id"))


def init_app(app: Flask) -> None:
    @app.context_processor
    def _arweave() -> dict[str, Any]:
        # A function, so only pages that show the chat composer's button pay for the lookup.
        return {"arweave_attach_enabled": lambda: current_token_id() is not None,
                "uploads_nav_visible": _nav_visible}

    app.register_blueprint(bp)
