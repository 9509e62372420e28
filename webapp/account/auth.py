"""Register, log in, log out."""

from __future__ import annotations

from flask import jsonify, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.wrappers import Response

from accounts import (
    AccountError,
    EmailUnavailable,
    check_login,
    create_user,
    normalise_email,
)
from kernel.money import format_usd
from webapp.account import limits
from webapp.account.blueprint import bp
from webapp.account.messages import localise
from webapp.account.respond import account, render
from webapp.auth import log_in, log_out
from webapp.http import client_ip, is_htmx
from webapp.redirects import safe_next


def _minutes(seconds: int) -> int:
    return max(1, round(seconds / 60))


@bp.route("/register", methods=["GET", "POST"])
def register() -> Response:
    """Create an account and log in."""
    error = ""
    email = ""
    status = 200
    if request.method == "POST":
        email = request.form.get("email", "")
        password = request.form.get("password", "")
        registrations = limits.current().register
        wait = registrations.retry_after(client_ip()) if registrations is not None else 0
        if wait:
            error, status = _("Too many new accounts from your address. Try again in %(minutes)s minutes.",
                              minutes=_minutes(wait)), 429
        elif password != request.form.get("password2", password):
            error, status = _("The two passwords differ."), 400
        else:
            try:
                user = create_user(email, password)
            except EmailUnavailable:
                # Taken or reserved: one answer that names neither, and it counts like an
                # account made, so /register cannot be used to list who has an account.
                if registrations is not None:
                    registrations.fail(client_ip())
                error, status = _("This email address cannot be registered. If you already have an account, "
                                  "log in; otherwise use another address."), 400
            except AccountError as exc:
                error, status = localise(str(exc)), 400
            else:
                if registrations is not None:
                    registrations.fail(client_ip())  # counts an account made, not a failure
                log_in(user)
                return redirect(url_for("account.topup"), code=303)
    return render("account/register.html", "account/_register.html", {"error": {"message": error}} if error else None,
                  status=status, error=error, email=email)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    """Log in with email and password (failures are rate-limited per address and account, and per account)."""
    error = ""
    status = 200
    email = request.form.get("email", "") if request.method == "POST" else ""
    next_url = safe_next(request.values.get("next", ""), "")
    if request.method == "POST":
        try:
            account_key = normalise_email(email)
        except AccountError:
            account_key = ""
        address_key = f"{client_ip()}|{account_key}"
        lim = limits.current()
        wait = lim.login.retry_after(address_key)
        account_wait = lim.login_account.retry_after(account_key) if lim.login_account is not None else 0
        if account_wait:
            error, status = _("Too many failed attempts for this account. Try again in %(minutes)s minutes.",
                              minutes=_minutes(account_wait)), 429
        elif wait:
            error, status = _("Too many failed attempts. Try again in %(seconds)s seconds.", seconds=wait), 429
        else:
            # Unknown email or wrong password: the same time (see check_login) and the same answer.
            user = check_login(email, request.form.get("password", ""))
            if user is None:
                lim.login.fail(address_key)
                if lim.login_account is not None:
                    lim.login_account.fail(account_key)
                error, status = _("Wrong email or password."), 401
            elif user.status != "active":
                error, status = _("This account is disabled."), 403
            else:
                lim.login.clear(address_key)
                log_in(user)
                target = safe_next(next_url, url_for("account.token"))
                if is_htmx():  # a whole new page: htmx would swap it into the form otherwise
                    return Response(status=200, headers={"HX-Redirect": target})
                return redirect(target, code=303)
    return render("account/login.html", "account/_login.html", {"error": {"message": error}} if error else None,
                  status=status, error=error, email=email, next_url=next_url)


@bp.post("/logout")
def logout() -> Response:
    """Log out: this login ends, and so does everything this browser had unlocked."""
    log_out()
    return redirect(url_for("core.index"), code=303)


@bp.post("/logout/everywhere")
@login_required
def logout_everywhere() -> Response:
    """End every login of this account, on every browser and device, this one included."""
    log_out(everywhere=True)
    return redirect(url_for("account.login"), code=303)


@bp.get("/account.json")
@login_required
def me() -> Response:
    """The logged-in account as JSON."""
    user = account()
    return jsonify({"email": user.email, "role": user.role, "balance_units": user.quota,
                    "balance_usd": format_usd(user.quota), "used_usd": format_usd(user.used_quota)})
