"""Register, log in, log out."""

from __future__ import annotations

from flask import jsonify, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import login_required, login_user, logout_user
from werkzeug.wrappers import Response

from gateway.accounts import AccountError, create_user, normalise_email, verify_password
from gateway.models import User
from gateway.money import format_usd
from webapp.account import bp, limits
from webapp.account.messages import localise
from webapp.account.respond import account, client_ip, is_htmx, render
from webapp.auth import SessionUser


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("account.token")


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
                              minutes=max(1, round(wait / 60))), 429
        elif password != request.form.get("password2", password):
            error, status = _("The two passwords differ."), 400
        else:
            try:
                user = create_user(email, password)
            except AccountError as exc:
                error, status = localise(str(exc)), 400
            else:
                if registrations is not None:
                    registrations.fail(client_ip())  # counts an account made, not a failure
                login_user(SessionUser(user), remember=True)
                return redirect(url_for("account.topup"), code=303)
    return render("account/register.html", "account/_register.html", {"error": {"message": error}} if error else None,
                  status=status, error=error, email=email)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    """Log in with email and password (failures are rate-limited per IP and account)."""
    error = ""
    status = 200
    email = request.form.get("email", "") if request.method == "POST" else ""
    next_url = request.values.get("next", "")
    if request.method == "POST":
        try:
            limit_key = f"{client_ip()}|{normalise_email(email)}"
        except AccountError:
            limit_key = f"{client_ip()}|"
        login_failures = limits.current().login
        wait = login_failures.retry_after(limit_key)
        user = User.by_email(email) if "@" in email else None
        if wait:
            error, status = _("Too many failed attempts. Try again in %(seconds)s seconds.", seconds=wait), 429
        elif user is None or not verify_password(user, request.form.get("password", "")):
            login_failures.fail(limit_key)
            error, status = _("Wrong email or password."), 401
        elif user.status != "active":
            error, status = _("This account is disabled."), 403
        else:
            login_failures.clear(limit_key)
            login_user(SessionUser(user), remember=True)
            if is_htmx():  # a whole new page: htmx would swap it into the form otherwise
                return Response(status=200, headers={"HX-Redirect": _safe_next(next_url)})
            return redirect(_safe_next(next_url), code=303)
    return render("account/login.html", "account/_login.html", {"error": {"message": error}} if error else None,
                  status=status, error=error, email=email, next_url=next_url)


@bp.post("/logout")
def logout() -> Response:
    """Log out and go home."""
    logout_user()
    return redirect(url_for("core.index"), code=303)


@bp.get("/account.json")
@login_required
def me() -> Response:
    """The logged-in account as JSON."""
    user = account()
    return jsonify({"email": user.email, "role": user.role, "balance_units": user.quota,
                    "balance_usd": format_usd(user.quota), "used_usd": format_usd(user.used_quota)})
