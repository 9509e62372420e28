"""The gateway's exception tree, and the one function that renders it as OpenAI does.

    GatewayError                      status  type                    code
    ├── BadRequest                    400     invalid_request_error   (field-specific)
    │   ├── BodyTooLarge              413     invalid_request_error   request_too_large
    │   └── MethodNotAllowed          405     invalid_request_error   method_not_allowed
    ├── AuthenticationError           401     invalid_request_error   invalid_api_key
    ├── PermissionDenied              403     permission_error        (key_disabled, key_expired, ip_not_allowed, model_not_allowed)
    ├── InsufficientQuotaError        429     insufficient_quota      insufficient_quota
    ├── NotFound                      404     invalid_request_error   model_not_found
    ├── RateLimited                   429     rate_limit_error        rate_limit_exceeded   (+ Retry-After)
    └── UpstreamError                 502     upstream_error          (see subclasses)
        ├── UpstreamUnavailable       503     upstream_error          no_available_channel
        └── UpstreamTimeout           504     upstream_error          upstream_timeout

Anything raised below the HTTP layer is one of these; third-party errors are
translated where they happen (adaptors map their provider's errors), so routes
only ever call :func:`error_response`.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class BadRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class BodyTooLarge(BadRequest):
    status = 413
    code = "request_too_large"


class MethodNotAllowed(BadRequest):
    status = 405
    code = "method_not_allowed"


class AuthenticationError(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"


class InsufficientQuotaError(GatewayError):
    # OpenAI answers 429 with type/code insufficient_quota; clients key off the code.
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = max(1, int(retry_after))
        self.headers["Retry-After"] = str(self.retry_after)


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class UpstreamUnavailable(UpstreamError):
    status = 503
    code = "no_available_channel"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class ClientGone(GatewayError):
    """The client hung up before the answer began (nginx's 499); nobody reads this error."""

    status = 499
    type = "client_closed_request"
    code = "client_closed_request"


def error_response(exc: GatewayError, request_id: str | None = None) -> JSONResponse:
    """Render any gateway error as OpenAI's ``{"error": {...}}`` body with the right status."""
    headers = dict(exc.headers)
    if request_id:
        headers["X-Request-Id"] = request_id
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
