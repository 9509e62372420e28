"""Which API key the chat spends from: a pasted key, the account's own key, or none.

A pasted key never stays in a page or in the cookie: the session (signed, HttpOnly)
holds only the key's token id and its hash, so a key that is deleted or replaced
stops working for the browser too. A key pasted by someone logged in (or before
they log in) belongs to that login: once it ends, an old copy of the cookie
unlocks nothing either. The uploads endpoint relies on
:func:`current_token_id` (and on ``session["key_token_id"]``) to bill the same key.
"""

from __future__ import annotations

from flask import session
from flask_login import current_user

from accounts import create_token
from gateway import auth
from kernel.db import db
from kernel.models import Token

SESSION_TOKEN = "key_token_id"
SESSION_HASH = "key_hash"
SESSION_LOGIN = "key_login"


def unlock(key: str, client_ip: str) -> auth.KeyInfo:
    """Check a pasted key on the server and remember it in the session.

    Raises the gateway's error (unknown, disabled, expired, exhausted) for the page to show.
    """
    info = auth.authenticate((key or "").strip(), client_ip)
    token = Token.get_by_id(info.token_id)
    session[SESSION_TOKEN] = info.token_id
    session[SESSION_HASH] = token.key_hash
    bind_to_login()
    return info


def bind_to_login() -> None:
    """Tie the pasted key (if any) to the login now open, so it ends with that login."""
    if SESSION_TOKEN in session:
        session[SESSION_LOGIN] = current_user.get_id() if current_user.is_authenticated else None


def forget() -> None:
    """Drop the pasted key from the session."""
    session.pop(SESSION_TOKEN, None)
    session.pop(SESSION_HASH, None)
    session.pop(SESSION_LOGIN, None)


def pasted_token_id() -> int | None:
    """The pasted key's token id, if it still names the same key."""
    token_id = session.get(SESSION_TOKEN)
    if not isinstance(token_id, int):
        return None
    login = session.get(SESSION_LOGIN)
    if login is not None and (not current_user.is_authenticated or current_user.get_id() != login):
        forget()  # pasted during a login that has ended (logged out, possibly elsewhere)
        return None
    token = Token.get_or_none(Token.id == token_id)
    if token is None or token.key_hash != session.get(SESSION_HASH):
        forget()
        return None
    return token_id


def default_token_for(user) -> Token:
    """The account's own key for the chat page, created the first time it is needed."""
    with db.atomic():
        token = (Token.select().where((Token.user == user) & (Token.is_default == True))  # noqa: E712
                 .order_by(Token.id).first())
        if token is None:
            token = create_token(user, name="web", unlimited=True, is_default=True).token
    return token


def current_token_id() -> int | None:
    """The pasted key's token id, else the logged-in user's default key id, else None (free visitor)."""
    token_id = pasted_token_id()
    if token_id is not None:
        return token_id
    if current_user.is_authenticated:
        return default_token_for(current_user.user).id
    return None
