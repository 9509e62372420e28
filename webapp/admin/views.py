"""Admin pages. Every change goes through :mod:`webapp.admin.actions`, which audits it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from accounts import (
    CHANNEL_TYPES,
    AccountError,
    code_rows,
    search_users,
    set_topup_info,
    topup_info,
)
from kernel.models import AuditLog, Channel, ModelPrice, RedemptionCode, RefusedWrite, User
from kernel.money import format_usd, parse_usd, usd_to_units
from webapp.account.gateway_sync import forget_keys, reload_channels
from webapp.account.respond import render
from webapp.admin import actions
from webapp.admin.probe import probe_channel

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _admins_only() -> Response | None:
    if not current_user.is_authenticated:
        return redirect(url_for("account.login", next=request.full_path.rstrip("?")), code=303)
    if not current_user.is_admin:
        abort(403)
    return None


def _actor() -> int:
    return current_user.user.id


@bp.get("/")
def home() -> Response:
    """The admin starts at the channels."""
    return redirect(url_for("admin.channels"))


# --- channels -------------------------------------------------------------------------------

def _channels_page(*, error: str = "", notice: str = "", status: int = 200, probe: Any = None,
                   probed: int | None = None) -> Response:
    rows = list(Channel.select().order_by(Channel.priority.desc(), Channel.id))
    data = {"channels": [actions.channel_json(c) for c in rows]}
    if error:
        data = {"error": {"message": error}}
    return render("admin/channels.html", "admin/_channels.html", data, status=status, channels=rows,
                  types=CHANNEL_TYPES, error=error, notice=notice, probe=probe, probed=probed)


@bp.get("/channels.json")
@bp.get("/channels")
def channels() -> Response:
    """Channels with status, last error and latency."""
    return _channels_page()


@bp.post("/channels")
def channel_create() -> Response:
    """Add a channel."""
    try:
        channel = actions.channel_create(request.form, _actor())
    except AccountError as exc:
        return _channels_page(error=str(exc), status=400)
    reload_channels()
    return _channels_page(notice=_("Channel %(name)s added.", name=channel.name), status=201)


@bp.post("/channels/<int:channel_id>")
def channel_change(channel_id: int) -> Response:
    """Save, enable, disable, delete or test one channel (``action`` field)."""
    channel = Channel.get_or_none(Channel.id == channel_id)
    if channel is None:
        return _channels_page(error=_("No such channel."), status=404)
    action = request.form.get("action", "save")
    try:
        if action == "test":
            result = probe_channel(channel, request.form.get("model"), actor_id=_actor())
            return _channels_page(probe=result, probed=channel.id)
        if action == "delete":
            actions.channel_remove(channel, _actor())
            reload_channels()
            return _channels_page(notice=_("Channel %(name)s deleted.", name=channel.name))
        if action in ("enable", "disable"):
            actions.channel_save(channel, {"status": action + "d"}, _actor())
        elif action == "save":
            actions.channel_save(channel, request.form, _actor())
        else:
            raise AccountError(f"unknown action {action!r}")
    except AccountError as exc:
        return _channels_page(error=str(exc), status=400)
    reload_channels()
    return _channels_page(notice=_("Channel %(name)s saved.", name=channel.name))


# --- redemption codes -----------------------------------------------------------------------

def _codes_page(*, error: str = "", notice: str = "", status: int = 200, new_codes: list[str] | None = None,
                new_csv: str = "") -> Response:
    state = request.args.get("status", "")
    batch = request.args.get("batch", "")
    rows = code_rows(state or None, batch=batch or None)
    counts = {s: RedemptionCode.select().where(RedemptionCode.status == s).count()
              for s in ("unused", "redeemed", "disabled")}
    batches = [r.name for r in RedemptionCode.select(RedemptionCode.name).distinct()
               .where(RedemptionCode.name != "").order_by(RedemptionCode.name)]
    data: dict[str, Any] = {"codes": [actions.code_json(c) for c in rows], "counts": counts}
    if error:
        data = {"error": {"message": error}}
    return render("admin/codes.html", "admin/_codes.html", data, status=status, codes=rows, counts=counts,
                  batches=batches, state=state, batch=batch, error=error, notice=notice, new_codes=new_codes,
                  new_csv=new_csv)


@bp.get("/codes.json")
@bp.get("/codes")
def codes() -> Response:
    """Redemption codes by status and batch."""
    return _codes_page()


@bp.post("/codes")
def codes_create() -> Response:
    """Generate a batch; the plain codes appear in this answer only."""
    form = request.form
    try:
        new = actions.codes_generate(form, _actor())
    except AccountError as exc:
        return _codes_page(error=str(exc), status=400)
    value = format_usd(usd_to_units(parse_usd(form["usd"])))
    csv_text = actions.codes_csv(new, value, form.get("name", "").strip())
    return _codes_page(notice=_("%(count)s codes created.", count=len(new)), new_codes=new, new_csv=csv_text,
                       status=201)


@bp.post("/codes/disable")
def codes_disable() -> Response:
    """Disable unused codes, one or a whole batch."""
    try:
        changed = actions.codes_disable(request.form, _actor())
    except AccountError as exc:
        return _codes_page(error=str(exc), status=400)
    return _codes_page(notice=_("%(count)s codes disabled.", count=changed))


# --- users ----------------------------------------------------------------------------------

def _users_page(*, error: str = "", notice: str = "", status: int = 200) -> Response:
    query = request.values.get("q", "")
    rows = search_users(query)
    data = {"users": [actions.user_json(u) for u in rows]}
    if error:
        data = {"error": {"message": error}}
    return render("admin/users.html", "admin/_users.html", data, status=status, users=rows, q=query,
                  error=error, notice=notice)


@bp.get("/users.json")
@bp.get("/users")
def users() -> Response:
    """Accounts, newest first; ``q`` searches emails."""
    return _users_page()


@bp.post("/users/<int:user_id>")
def user_change(user_id: int) -> Response:
    """Adjust a balance, disable/enable, make or unmake admin."""
    user = User.get_or_none(User.id == user_id)
    if user is None:
        return _users_page(error=_("No such user."), status=404)
    try:
        actions.user_change(user, request.form, _actor())
    except AccountError as exc:
        return _users_page(error=str(exc), status=400)
    forget_keys(user_id=user.id)
    return _users_page(notice=_user_notice(User.get_by_id(user.id), request.form.get("action", "")))


def _user_notice(user: User, action: str) -> str:
    if action == "adjust":
        return _("%(email)s now has %(amount)s.", email=user.email, amount=format_usd(user.quota))
    if action in ("disable", "enable"):
        return _("%(email)s is disabled.", email=user.email) if action == "disable" else _(
            "%(email)s is active again.", email=user.email)
    return _("%(email)s is an admin now.", email=user.email) if action == "make_admin" else _(
        "%(email)s is no longer an admin.", email=user.email)


# --- prices, free tier, top-up text ---------------------------------------------------------

def _prices_page(*, error: str = "", notice: str = "", status: int = 200) -> Response:
    rows = list(ModelPrice.select().order_by(ModelPrice.model))
    info = topup_info()
    free = actions.free_tier_view()
    fallback = actions.default_price_view()
    data = {"prices": [actions.price_json(p) for p in rows], "default_price": fallback, "topup_text": info.text,
            "cny_per_usd": str(info.cny_per_usd), "free_tier": free}
    if error:
        data = {"error": {"message": error}}
    return render("admin/prices.html", "admin/_prices.html", data, status=status, prices=rows, info=info,
                  free=free, fallback=fallback, error=error, notice=notice)


@bp.get("/prices.json")
@bp.get("/prices")
def prices() -> Response:
    """Per-model prices, the top-up text and the exchange rate."""
    return _prices_page()


@bp.post("/prices")
def price_set() -> Response:
    """Set (or, with ``action=delete``, remove) a model's price."""
    try:
        if request.form.get("action") == "delete":
            actions.price_remove(request.form.get("model", ""), _actor())
            notice = _("Price of %(model)s removed.", model=request.form.get("model", ""))
        else:
            price = actions.price_save(request.form, _actor())
            notice = _("Price of %(model)s saved.", model=price.model)
    except AccountError as exc:
        return _prices_page(error=str(exc), status=400)
    reload_channels()
    return _prices_page(notice=notice)


@bp.post("/default-price")
def default_price() -> Response:
    """Set or clear the price of served models that have none of their own."""
    try:
        saved = actions.default_price_save(request.form, _actor())
    except AccountError as exc:
        return _prices_page(error=str(exc), status=400)
    reload_channels()
    return _prices_page(notice=_("Default price saved.") if saved else _("Default price removed."))


@bp.post("/topup-options")
def topup_options() -> Response:
    """Save the top-up page's text and the CNY-per-USD rate."""
    try:
        set_topup_info(text=request.form.get("text"), cny_per_usd=request.form.get("cny_per_usd"),
                       actor_id=_actor())
    except AccountError as exc:
        return _prices_page(error=str(exc), status=400)
    return _prices_page(notice=_("Top-up page saved."))


@bp.post("/free-tier")
def free_tier() -> Response:
    """Save the free models and the free tier's limits (the chat's settings)."""
    try:
        actions.free_tier_save(request.form, _actor())
    except AccountError as exc:
        return _prices_page(error=str(exc), status=400)
    return _prices_page(notice=_("Free tier saved."))


# --- audit log ------------------------------------------------------------------------------

@bp.get("/audit.json")
@bp.get("/audit")
def audit() -> Response:
    """What admins changed, newest first; above it, any ledger entry the database refused."""
    rows = list(AuditLog.select().order_by(AuditLog.id.desc()).limit(300))
    refused = list(RefusedWrite.select().order_by(RefusedWrite.id.desc()).limit(100))
    emails = {u.id: u.email for u in User.select(User.id, User.email)
              .where(User.id.in_({r.actor_id for r in rows if r.actor_id}))} if rows else {}
    return render("admin/audit.html", "admin/audit.html",
                  {"entries": [actions.audit_json(a) for a in rows],
                   "refused_writes": [{"time": r.created_at.isoformat(), "request_id": r.request_id,
                                       "user_id": r.user_id, "cost_usd": format_usd(r.cost_quota),
                                       "reserved_usd": format_usd(r.reserved_quota), "error": r.error,
                                       "record": r.record} for r in refused]},
                  entries=rows, emails=emails, refused=refused)
