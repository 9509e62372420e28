"""``/pricing`` and ``/docs``: public, no account needed."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from flask_babel import get_locale
from werkzeug.wrappers import Response

from webapp.account.respond import render
from webapp.pages.catalog import price_list
from webapp.views import public_url

bp = Blueprint("pages", __name__)


def free_model_check():
    """The chat's free-tier list decides which models are free, besides those priced at zero."""
    try:
        from webapp.chat import free_tier
    except ImportError:  # the chat's free tier is optional for this page
        return lambda model: False
    models = set(free_tier.read_config().models)
    return lambda model: model in models


@bp.get("/pricing.json")
@bp.get("/pricing")
def pricing() -> Response:
    """Every model on offer with its price per million tokens in USD."""
    models = price_list(free_model_check())
    return render("pages/pricing.html", "pages/_pricing.html",
                  {"models": [m.as_json() for m in models]}, models=models)


@bp.get("/docs")
def docs() -> str:
    """How to use the service, in the visitor's language."""
    lang = "zh" if str(get_locale() or "en") == "zh" else "en"
    settings = current_app.config["PERMACHAT_SETTINGS"]
    return render_template(f"pages/docs_{lang}.html", api_base=public_url(), telegram_on=settings.telegram_enabled,
                           telegram_limit_mb=settings.telegram_download_limit_mb)
