"""Upload tickets: short-lived signed permission for a web page to upload with a key.

The browser never holds the API key itself (the chat session keeps only its token
id), so the uploads page gets a ticket naming the token id, signed with the
deployment's secret key, and sends it as ``X-Upload-Ticket``.
"""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from kernel.errors import AuthenticationError

SALT = "permachat.arweave.upload-ticket"
MAX_AGE = 600  # seconds; a page asks for a new one when it is reloaded


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def issue_ticket(secret_key: str, token_id: int) -> str:
    return _serializer(secret_key).dumps({"t": int(token_id)})


def read_ticket(secret_key: str, ticket: str, *, max_age: int = MAX_AGE) -> int:
    """The token id a ticket carries; raises the gateway's 401 if it is forged or expired."""
    try:
        payload = _serializer(secret_key).loads(ticket, max_age=max_age)
    except SignatureExpired:
        raise AuthenticationError("The upload ticket expired; reload the page.", code="ticket_expired") from None
    except BadSignature:
        raise AuthenticationError("The upload ticket is not valid; reload the page.", code="invalid_ticket") from None
    token_id = payload.get("t") if isinstance(payload, dict) else None
    if not isinstance(token_id, int):
        raise AuthenticationError("The upload ticket is not valid; reload the page.", code="invalid_ticket")
    return token_id
