"""Error pages: every HTTP error a person can meet gets the site's look, in their language.

JSON callers (``/api/``, ``Accept: application/json``) get ``{"error": {...}}`` instead.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wrappers import Response

log = logging.getLogger("permachat.webapp")

MESSAGES = {
    400: _l("The request could not be understood."),
    401: _l("Please log in first."),
    403: _l("You are not allowed to see this page."),
    404: _l("This page does not exist."),
    405: _l("This page cannot be used this way."),
    413: _l("What you sent is too large."),
    429: _l("Too many requests. Please wait a moment and try again."),
    500: _l("Something went wrong on our side. Please try again."),
}


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def render_error(exc: HTTPException) -> Response | HTTPException:
    code = exc.code or 500
    if code < 400:
        return exc  # routing redirects are exceptions too
    if isinstance(exc, CSRFError):
        message = str(_l("The form expired or came from another page. Reload the page and try again."))
    else:
        message = str(MESSAGES.get(code, MESSAGES[400] if code < 500 else MESSAGES[500]))
    if _wants_json():
        response = jsonify({"error": {"message": message, "code": code}})
    else:
        response = Response(render_template("error.html", code=code, message=message),
                            content_type="text/html; charset=utf-8")
    response.status_code = code
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, render_error)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response | HTTPException:
        # HTTP errors reach the more specific handler above; this is everything else.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render_error(InternalServerError())
