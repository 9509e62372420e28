"""The admin's pages: channels, redemption codes, users, prices and options, audit log."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _admins_only() -> Response | None:
    if not current_user.is_authenticated:
        return redirect(url_for("account.login", next=request.full_path.rstrip("?")), code=303)
    if not current_user.is_admin:
        abort(403)
    return None


from webapp.admin import views  # noqa: E402,F401  (views register on bp)
