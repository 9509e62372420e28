"""Upload errors, in the gateway's tree so they render as OpenAI-shaped JSON.

    GatewayError (kernel.errors)
    ├── PaymentRequired      402  insufficient_quota    the key or account cannot cover the quote
    ├── UploadsUnavailable   503  server_error          no wallet configured, or it cannot be read
    └── UploadNotFound       404  invalid_request_error no such upload
"""

from __future__ import annotations

from kernel.errors import GatewayError


class PaymentRequired(GatewayError):
    status = 402
    type = "insufficient_quota"
    code = "insufficient_quota"


class UploadsUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "uploads_unavailable"


class UploadNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "upload_not_found"
