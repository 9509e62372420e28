"""Who an upload acts for: an API key, or a web page's upload ticket, checked like the gateway checks keys.

Every door (the HTTP endpoints, GraphQL, the Telegram bot) resolves its caller
here, so a key that is disabled, expired, out of its IP range or out of money is
refused the same way whichever door it knocks on.
"""

from __future__ import annotations

from collections.abc import Mapping

from arweave_store.errors import PaymentRequired
from arweave_store.store import UploadStore
from arweave_store.tickets import read_ticket
from gateway.auth import KeyInfo, check_key, extract_key, load_key
from kernel.errors import AuthenticationError, InsufficientQuotaError
from kernel.models import Token

NO_KEY = ("Uploading to Arweave needs an API key with a balance; free-tier visitors cannot upload. "
          "Send it as 'Authorization: Bearer sk-...' (or unlock a key on the chat page).")


def key_for_token(token_id: int) -> KeyInfo | None:
    """The key of a token id (blocking); None when it no longer exists."""
    key_hash = Token.select(Token.key_hash).where(Token.id == token_id).scalar()
    return load_key(key_hash) if key_hash else None


def checked(info: KeyInfo | None, client_ip: str, *, spending: bool) -> KeyInfo:
    """``info`` if it may act; a key out of money is refused only when ``spending`` (402). Blocking."""
    try:
        return check_key(info, client_ip)
    except InsufficientQuotaError as exc:
        if spending:
            raise PaymentRequired(exc.message) from None
        assert info is not None  # check_key tests the balance last: everything else passed
        return info


def who(store: UploadStore, headers: Mapping[str, str], query: Mapping[str, str], client_ip: str,
        *, spending: bool) -> KeyInfo:
    """The key a request acts with (API key, or a page's upload ticket), checked. Blocking."""
    ticket = headers.get("x-upload-ticket", "").strip()
    if ticket:
        info = key_for_token(read_ticket(store.settings.secret_key, ticket))
    else:
        key = extract_key(headers, query)
        if not key:
            raise AuthenticationError(NO_KEY)
        info = store.keys.lookup(key)
    return checked(info, client_ip, spending=spending)
