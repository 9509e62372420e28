"""``/token``: the account's API keys. A new key is shown in full once, then only its prefix."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.wrappers import Response

from accounts import (
    AccountError,
    NewToken,
    create_token,
    delete_token,
    owned_token,
    set_token_status,
    update_token,
)
from kernel.models import Token, User
from kernel.money import format_usd
from webapp.account.blueprint import bp
from webapp.account.gateway_sync import forget_keys
from webapp.account.messages import localise
from webapp.account.respond import account, render


def token_json(token: Token) -> dict[str, Any]:
    return {
        "id": token.id, "name": token.name, "prefix": token.key_prefix, "status": token.status,
        "unlimited": token.unlimited, "remain_usd": None if token.unlimited else format_usd(token.remain_quota),
        "used_usd": format_usd(token.used_quota), "models": token.models, "allowed_ips": token.allowed_ips,
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "created_at": token.created_at.isoformat(),
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
    }


def _page(user: User, *, new: NewToken | None = None, error: str = "", status: int = 200,
          notice: str = "") -> Response:
    tokens = list(Token.select().where(Token.user == user.id).order_by(Token.id.desc()))
    data: dict[str, Any] = {"balance_usd": format_usd(user.quota), "tokens": [token_json(t) for t in tokens]}
    if new is not None:
        data["new_key"] = new.key
    if error:
        data = {"error": {"message": error}}
    return render("account/token.html", "account/_tokens.html", data, status=status, user=user,
                  tokens=tokens, new=new, error=error, notice=notice, form=request.form)


@bp.get("/token.json")
@bp.get("/token")
@login_required
def token() -> Response:
    """List the account's keys and the form to create one."""
    return _page(account())


@bp.post("/token")
@login_required
def token_create() -> Response:
    """Create a key; the response is the only place the full key ever appears."""
    user = account()
    form = request.form
    usd = form.get("usd", "").strip()
    try:
        new = create_token(user, name=form.get("name", ""), usd=usd or None,
                           unlimited=not usd, models=form.get("models", ""),
                           expires=form.get("expires", ""), allowed_ips=form.get("allowed_ips", ""))
    except AccountError as exc:
        return _page(user, error=localise(str(exc)), status=400)
    return _page(user, new=new, status=201)


@bp.post("/token/<int:token_id>")
@login_required
def token_update(token_id: int) -> Response:
    """Edit a key's limits, enable/disable it, or delete it (``action`` field)."""
    user = account()
    form = request.form
    action = form.get("action", "save")
    try:
        row = owned_token(user.id, token_id)
        if action == "delete":
            delete_token(row)
            notice = _("Key %(name)s deleted.", name=row.name)
        elif action in ("enable", "disable"):
            set_token_status(row, action + "d")
            notice = _("Key %(name)s enabled.", name=row.name) if action == "enable" else _(
                "Key %(name)s disabled.", name=row.name)
        elif action == "save":
            usd = form.get("usd", "").strip()
            update_token(row, name=form.get("name"), usd=usd or None, unlimited=not usd,
                         models=form.get("models", ""), expires=form.get("expires", ""),
                         allowed_ips=form.get("allowed_ips", ""))
            notice = _("Key %(name)s saved.", name=form.get("name") or row.name)
        else:
            raise AccountError(f"unknown action {action!r}")
    except AccountError as exc:
        return _page(user, error=localise(str(exc)), status=400 if str(exc) != "no such key" else 404)
    forget_keys(key_hash=row.key_hash)
    return _page(user, notice=notice)
