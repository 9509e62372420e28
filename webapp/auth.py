"""The logged-in account as flask-login sees it, and logging in and out.

A login is a row on the server (:class:`kernel.models.LoginSession`): the
session cookie and the one-year remember cookie carry its secret through
:meth:`SessionUser.get_id`, so logging out (which deletes the row) ends both,
even when an old copy of either cookie is sent again.
"""

from __future__ import annotations

from flask import session
from flask_login import UserMixin, current_user, login_user, logout_user

from accounts import end_all_logins, end_login, login_user_for, start_login
from kernel.models import User
from webapp.chat import keys


class SessionUser(UserMixin):
    """Wraps a :class:`kernel.models.User` row and the login it came through."""

    def __init__(self, user: User, login_secret: str) -> None:
        self.user = user
        self.login_secret = login_secret

    def get_id(self) -> str:
        return f"{self.user.id}:{self.login_secret}"

    @property
    def email(self) -> str:
        return self.user.email

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin


def load(user_id: str) -> SessionUser | None:
    """flask-login's user loader: the account of a login that is still open, else None."""
    uid, _, secret = (user_id or "").partition(":")
    if not uid.isdigit() or not secret:
        return None  # includes the bare ids of cookies made before logins were kept
    user = login_user_for(int(uid), secret)
    return SessionUser(user, secret) if user is not None else None


def log_in(user: User) -> None:
    """Open a login for ``user`` in this browser; a key pasted before now belongs to it."""
    login_user(SessionUser(user, start_login(user)), remember=True)
    keys.bind_to_login()


def log_out(*, everywhere: bool = False) -> None:
    """End this login (or every login of the account) and forget everything this session held."""
    if current_user.is_authenticated:
        if everywhere:
            end_all_logins(current_user.user.id)
        else:
            end_login(current_user.login_secret)
    language = session.get("lang")
    session.clear()  # the pasted key too: logging out must lock what it unlocked
    logout_user()  # after clear(): it asks the browser to delete the remember cookie
    if language:
        session["lang"] = language
