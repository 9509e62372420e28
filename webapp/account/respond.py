"""One view, three renderings: the full page, the htmx partial, or the JSON twin."""

from __future__ import annotations

from typing import Any

from flask import jsonify, render_template, request
from flask_login import current_user
from werkzeug.wrappers import Response

from kernel.models import User
from webapp.http import is_htmx


def wants_json() -> bool:
    """``.json`` on the path (datasette style), ``?format=json``, or an Accept that prefers JSON."""
    if request.path.endswith(".json") or request.args.get("format") == "json":
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def render(page: str, partial: str, data: Any = None, *, status: int = 200, **context: Any) -> Response:
    """Render ``page`` (or ``partial`` for htmx, or ``data`` as JSON).

    htmx does not swap 4xx answers by default, so an htmx request always gets 200
    and the partial carries the error message; JSON and full pages keep the status.
    """
    if data is not None and wants_json():
        response = jsonify(data)
        response.status_code = status
    elif is_htmx():
        response = Response(render_template(partial, **context), mimetype="text/html")
    else:
        response = Response(render_template(page, **context), status=status, mimetype="text/html")
    response.vary.add("HX-Request")
    response.vary.add("Accept")
    return response


def json_error(message: str, status: int = 400) -> Response:
    response = jsonify({"error": {"message": message}})
    response.status_code = status
    return response


def account() -> User:
    """The logged-in account's row, fresh from the database (balances change)."""
    return User.get_by_id(current_user.user.id)
