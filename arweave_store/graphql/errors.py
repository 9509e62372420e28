"""Our exception tree as GraphQL errors: one stable ``extensions.code`` per kind, mapped once.

    exception (arweave_store.errors, kernel.errors)   extensions.code
    AuthenticationError                                UNAUTHENTICATED
    PermissionDenied                                   FORBIDDEN
    PaymentRequired, InsufficientQuotaError            INSUFFICIENT_QUOTA
    BodyTooLarge                                       PAYLOAD_TOO_LARGE
    MethodNotAllowed                                   METHOD_NOT_ALLOWED
    BadRequest                                         BAD_INPUT
    UploadNotFound, NotFound                           NOT_FOUND
    RateLimited                                        RATE_LIMITED
    UploadsUnavailable                                 UNAVAILABLE
    UpstreamError                                      UPSTREAM_ERROR
    (a syntax error, or too many tokens)               GRAPHQL_PARSE_FAILED
    (invalid for the schema, too deep, too many aliases) GRAPHQL_VALIDATION_FAILED
    anything else                                      INTERNAL_SERVER_ERROR  (logged; a generic message)

``extensions.reason`` carries the finer code of our error when it has one
(``invalid_api_key``, ``ticket_expired``, ``key_expired``...).
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError

from arweave_store.errors import PaymentRequired, UploadNotFound, UploadsUnavailable
from kernel.errors import (
    AuthenticationError,
    BadRequest,
    BodyTooLarge,
    GatewayError,
    InsufficientQuotaError,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
    RateLimited,
    UpstreamError,
)

log = logging.getLogger("permachat.graphql")

# Most specific first: BodyTooLarge and MethodNotAllowed are BadRequests.
CODES: tuple[tuple[type[GatewayError], str], ...] = (
    (AuthenticationError, "UNAUTHENTICATED"),
    (PermissionDenied, "FORBIDDEN"),
    (PaymentRequired, "INSUFFICIENT_QUOTA"),
    (InsufficientQuotaError, "INSUFFICIENT_QUOTA"),
    (BodyTooLarge, "PAYLOAD_TOO_LARGE"),
    (MethodNotAllowed, "METHOD_NOT_ALLOWED"),
    (BadRequest, "BAD_INPUT"),
    (UploadNotFound, "NOT_FOUND"),
    (NotFound, "NOT_FOUND"),
    (RateLimited, "RATE_LIMITED"),
    (UploadsUnavailable, "UNAVAILABLE"),
    (UpstreamError, "UPSTREAM_ERROR"),
)
INTERNAL = "INTERNAL_SERVER_ERROR"
INTERNAL_MESSAGE = "Something went wrong on our side; nothing was charged for it. Try again in a moment."


def code_of(exc: GatewayError) -> str:
    return next((code for kind, code in CODES if isinstance(exc, kind)), INTERNAL)


def gateway_error(exc: GatewayError) -> dict[str, Any]:
    """One entry of a response's ``errors`` array for an error of ours raised outside execution."""
    extensions: dict[str, Any] = {"code": code_of(exc)}
    if exc.code:
        extensions["reason"] = exc.code
    return {"message": exc.message, "extensions": extensions}


def format_error(error: GraphQLError) -> dict[str, Any]:
    """A GraphQL error as the client sees it: our message and code, never a traceback."""
    entry = error.formatted
    original = error.original_error
    if isinstance(original, GatewayError):
        entry.update(gateway_error(original))
    elif original is None or isinstance(original, GraphQLError):  # the document or its variables
        entry["extensions"] = {"code": "GRAPHQL_PARSE_FAILED" if isinstance(error, GraphQLSyntaxError)
                               else "GRAPHQL_VALIDATION_FAILED"}
    else:
        entry["message"] = INTERNAL_MESSAGE
        entry["extensions"] = {"code": INTERNAL}
    return dict(entry)


def log_unexpected(errors: list[GraphQLError]) -> None:
    """Log what is a bug of ours, with its traceback; a refusal is an answer, not a log line."""
    for error in errors:
        original = error.original_error
        if original is not None and not isinstance(original, GatewayError | GraphQLError):
            log.error("GraphQL %s failed: %s", ".".join(map(str, error.path or ())) or "operation", original,
                      exc_info=original)
