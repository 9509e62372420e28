"""``/topup``: the balance, redeeming a code, and how to buy one."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.wrappers import Response

from accounts import RedeemError, redeem_code, topup_info
from kernel.models import RequestLog, User
from kernel.money import format_usd
from webapp.account import limits
from webapp.account.blueprint import bp
from webapp.account.gateway_sync import forget_keys
from webapp.account.respond import account, render
from webapp.http import client_ip

REASONS = {
    "unknown": lambda: _("This code does not exist. Check it for typos."),
    "redeemed": lambda: _("This code has already been redeemed."),
    "disabled": lambda: _("This code has been disabled."),
    "expired": lambda: _("This code has expired."),
}


def _page(user: User, *, error: str = "", notice: str = "", status: int = 200,
          credited: int | None = None) -> Response:
    info = topup_info()
    history = list(RequestLog.select().where((RequestLog.user_id == user.id)
                                             & (RequestLog.kind.in_(["topup", "adjust"])))
                   .order_by(RequestLog.id.desc()).limit(20))
    data: dict[str, Any] = {"balance_units": user.quota, "balance_usd": format_usd(user.quota),
                            "cny_per_usd": str(info.cny_per_usd), "how_to_buy": info.text}
    if credited is not None:
        data["credited_usd"] = format_usd(credited)
    if error:
        data = {"error": {"message": error}, "balance_usd": format_usd(user.quota)}
    return render("account/topup.html", "account/_topup.html", data, status=status, user=user,
                  info=info, history=history, error=error, notice=notice)


@bp.get("/topup.json")
@bp.get("/topup")
@login_required
def topup() -> Response:
    """The balance and the redeem form."""
    return _page(account())


@bp.post("/topup")
@login_required
def topup_redeem() -> Response:
    """Redeem a code (failed attempts are rate-limited per IP and account)."""
    user = account()
    limit_key = f"{client_ip()}|{user.id}"
    redeem_failures = limits.current().redeem
    wait = redeem_failures.retry_after(limit_key)
    if wait:
        return _page(user, error=_("Too many failed attempts. Try again in %(seconds)s seconds.", seconds=wait),
                     status=429)
    try:
        units = redeem_code(user.id, request.form.get("code", ""))
    except RedeemError as exc:
        redeem_failures.fail(limit_key)
        message = REASONS[exc.reason]() if request.form.get("code", "").strip() else _("Enter a code.")
        return _page(user, error=message, status=409 if exc.reason in ("redeemed", "expired", "disabled") else 400)
    forget_keys(user_id=user.id)  # a key refused for an empty balance works at once
    user = account()
    return _page(user, notice=_("%(amount)s added to your balance.", amount=format_usd(units)), credited=units)
