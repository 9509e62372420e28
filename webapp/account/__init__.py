"""The account console: register, log in, API keys, top-up, usage (``account`` blueprint).

:func:`init_app` also registers the console's neighbours: the public pages
(``/pricing``, ``/docs``), the admin pages and the admin's JSON API.
"""

from __future__ import annotations

from flask import Flask

from kernel.money import format_usd
from webapp.account import auth, tokens, topup, usage  # noqa: F401  (their views register on bp)
from webapp.account.blueprint import bp


def init_app(app: Flask) -> None:
    from webapp import csrf
    from webapp.account.limits import Limits
    from webapp.admin import bp as admin_bp
    from webapp.api import bp as api_bp
    from webapp.pages import bp as pages_bp

    settings = app.config["PERMACHAT_SETTINGS"]
    app.extensions["permachat.console_limits"] = Limits(settings.redis_url, settings.registrations_per_hour,
                                                             settings.login_failures_per_hour,
                                                             namespace=settings.secret_key)
    app.add_template_filter(lambda units: format_usd(int(units or 0)), "usd")
    csrf.exempt(api_bp)
    for blueprint in (bp, pages_bp, admin_bp, api_bp):
        app.register_blueprint(blueprint)
