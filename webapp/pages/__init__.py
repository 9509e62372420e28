"""Public pages: ``/pricing`` and ``/docs`` (``pages`` blueprint)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages", __name__)

from webapp.pages import views  # noqa: E402,F401  (views register on bp)
