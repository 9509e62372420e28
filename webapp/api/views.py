"""``/api/...``: channels, codes, users, prices, options and the audit log as JSON."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from accounts import AccountError, code_rows, search_users, set_topup_info, topup_info
from gateway.auth import check_key, extract_key, load_key
from kernel.errors import GatewayError, InsufficientQuotaError
from kernel.keys import hash_secret
from kernel.models import AuditLog, Channel, ModelPrice, User
from kernel.money import format_usd, parse_usd, usd_to_units
from webapp.account.gateway_sync import forget_keys, reload_channels
from webapp.account.respond import json_error
from webapp.admin import actions
from webapp.admin.probe import probe_channel
from webapp.http import client_ip

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.before_request
def _admin_key() -> Response | None:
    """An enabled admin's key, unexpired and from an allowed IP; a zero balance does not matter here."""
    key = extract_key({k.lower(): v for k, v in request.headers.items()})
    if not key:
        return json_error("send an admin's API key as 'Authorization: Bearer sk-...'", 401)
    info = load_key(hash_secret(key))
    try:
        check_key(info, client_ip())
    except InsufficientQuotaError:
        pass  # admin calls spend nothing
    except GatewayError as exc:
        return json_error(exc.message, exc.status)
    assert info is not None
    if not info.is_admin:
        return json_error("this key does not belong to an admin", 403)
    g.actor_id = info.user_id
    return None


@bp.errorhandler(AccountError)
def _bad_input(exc: AccountError) -> Response:
    return json_error(str(exc), 400)


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if data is None and request.form:
        return request.form.to_dict()
    if not isinstance(data, dict):
        raise AccountError("send a JSON object")
    return data


def _limit(default: int, maximum: int) -> int:
    raw = request.args.get("limit", "")
    if raw and not (raw.isascii() and raw.isdigit()):  # "²" is a digit to isdigit() but not to int()
        raise AccountError("limit must be a whole number")
    return min(int(raw or default), maximum)


def _created(data: Any) -> Response:
    response = jsonify(data)
    response.status_code = 201
    return response


# --- channels -------------------------------------------------------------------------------

@bp.get("/channels")
def channels() -> Response:
    return jsonify({"channels": [actions.channel_json(c) for c in Channel.select().order_by(Channel.id)]})


@bp.post("/channels")
def channel_create() -> Response:
    channel = actions.channel_create(body(), g.actor_id)
    reload_channels()
    return _created(actions.channel_json(channel))


def _channel(channel_id: int) -> Channel:
    channel = Channel.get_or_none(Channel.id == channel_id)
    if channel is None:
        raise AccountError(f"no channel {channel_id}")
    return channel


@bp.get("/channels/<int:channel_id>")
def channel_get(channel_id: int) -> Response:
    return jsonify(actions.channel_json(_channel(channel_id)))


@bp.patch("/channels/<int:channel_id>")
def channel_update(channel_id: int) -> Response:
    channel = actions.channel_save(_channel(channel_id), body(), g.actor_id)
    reload_channels()
    return jsonify(actions.channel_json(channel))


@bp.delete("/channels/<int:channel_id>")
def channel_delete(channel_id: int) -> Response:
    actions.channel_remove(_channel(channel_id), g.actor_id)
    reload_channels()
    return jsonify({"deleted": channel_id})


@bp.post("/channels/<int:channel_id>/test")
def channel_test(channel_id: int) -> Response:
    data = request.get_json(silent=True) or {}
    result = probe_channel(_channel(channel_id), data.get("model") if isinstance(data, dict) else None,
                           actor_id=g.actor_id)
    return jsonify({"ok": result.ok, "model": result.model, "latency_ms": result.latency_ms, "error": result.error})


# --- codes ----------------------------------------------------------------------------------

@bp.get("/codes")
def codes() -> Response:
    rows = code_rows(request.args.get("status") or None, batch=request.args.get("batch") or None,
                     limit=_limit(1000, 10_000))
    return jsonify({"codes": [actions.code_json(c) for c in rows]})


@bp.post("/codes")
def codes_create() -> Response:
    """Generate a batch; ``?format=csv`` or ``text`` answers with the plain codes as a file."""
    data = body()
    new = actions.codes_generate(data, g.actor_id)
    value = format_usd(usd_to_units(parse_usd(str(data["usd"]))))
    fmt = request.args.get("format", "json")
    if fmt == "csv":
        return Response(actions.codes_csv(new, value, str(data.get("name") or "")), status=201,
                        mimetype="text/csv", headers={"Content-Disposition": "attachment; filename=codes.csv"})
    if fmt == "text":
        return Response("\n".join(new) + "\n", status=201, mimetype="text/plain")
    return _created({"codes": new, "usd": value, "name": data.get("name") or ""})


@bp.post("/codes/disable")
def codes_disable() -> Response:
    return jsonify({"disabled": actions.codes_disable(body(), g.actor_id)})


# --- users ----------------------------------------------------------------------------------

@bp.get("/users")
def users() -> Response:
    rows = search_users(request.args.get("q", ""), limit=_limit(100, 1000))
    return jsonify({"users": [actions.user_json(u) for u in rows]})


def _user(user_id: int) -> User:
    user = User.get_or_none(User.id == user_id)
    if user is None:
        raise AccountError(f"no user {user_id}")
    return user


@bp.post("/users/<int:user_id>")
def user_change(user_id: int) -> Response:
    """``{"action": "adjust", "usd": "-2", "reason": "..."}``, or disable/enable/make_admin/remove_admin."""
    user = _user(user_id)
    notice = actions.user_change(user, body(), g.actor_id)
    forget_keys(user_id=user.id)
    return jsonify({"user": actions.user_json(User.get_by_id(user.id)), "message": notice})


# --- prices and options ---------------------------------------------------------------------

@bp.get("/prices")
def prices() -> Response:
    return jsonify({"prices": [actions.price_json(p) for p in ModelPrice.select().order_by(ModelPrice.model)]})


@bp.post("/prices")
def price_set() -> Response:
    """``{"model": "...", "input": "0.15", "output": "0.6", "per_call": "0"}`` in USD per million tokens."""
    price = actions.price_save(body(), g.actor_id)
    reload_channels()
    return jsonify(actions.price_json(price))


@bp.delete("/prices/<path:model>")
def price_delete(model: str) -> Response:
    actions.price_remove(model, g.actor_id)
    reload_channels()
    return jsonify({"deleted": model})


@bp.get("/options/default-price")
def default_price() -> Response:
    return jsonify({"default_price": actions.default_price_view()})


@bp.put("/options/default-price")
def default_price_set() -> Response:
    """``{"input": "0.5", "output": "1.5", "per_call": "0"}``; ``{"action": "clear"}`` removes it."""
    saved = actions.default_price_save(body(), g.actor_id)
    reload_channels()
    return jsonify({"default_price": saved})


@bp.get("/options/topup")
def topup_options() -> Response:
    info = topup_info()
    return jsonify({"text": info.text, "cny_per_usd": str(info.cny_per_usd)})


@bp.put("/options/topup")
def topup_options_set() -> Response:
    data = body()
    info = set_topup_info(text=data.get("text"), cny_per_usd=data.get("cny_per_usd"), actor_id=g.actor_id)
    return jsonify({"text": info.text, "cny_per_usd": str(info.cny_per_usd)})


@bp.get("/options/free-tier")
def free_tier_options() -> Response:
    return jsonify(actions.free_tier_view())


@bp.put("/options/free-tier")
def free_tier_options_set() -> Response:
    """``{"free_models": "a,b", "free_rpm": 5, ...}``: the chat's free-tier settings."""
    return jsonify(actions.free_tier_save(body(), g.actor_id))


@bp.get("/audit")
def audit() -> Response:
    rows = AuditLog.select().order_by(AuditLog.id.desc()).limit(_limit(300, 5000))
    return jsonify({"entries": [actions.audit_json(a) for a in rows]})
