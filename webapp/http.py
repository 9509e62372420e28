"""The request and response helpers every blueprint shares: htmx detection and replies, the client's address.

htmx-flask offered the first two, but its constants make ``HX-Reswap`` values
such as ``afterbegin`` raise, and it replaces ``app.request_class``; what is
needed here is a header read and two headers written, so they live here instead.
"""

from __future__ import annotations

from flask import Response, request


def is_htmx() -> bool:
    """An htmx request (``HX-Request: true``), which gets a fragment instead of a whole page."""
    return request.headers.get("HX-Request") == "true"


def retarget(response: Response, target: str, swap: str = "innerHTML") -> Response:
    """Have htmx put ``response`` into ``target`` (a CSS selector) instead of the element that asked."""
    response.headers["HX-Retarget"] = target
    response.headers["HX-Reswap"] = swap
    return response


def client_ip() -> str:
    """The client's address; ``webapp.asgi.Deployment.trust_proxies`` already applied the trusted proxies."""
    return request.remote_addr or ""
