"""What every page tells the browser about itself: its security headers and how its cookies travel.

The pages load scripts, styles and images from this site only (``data:`` and
``blob:`` images too: uploaded pictures and their previews), may not be framed,
and name no other site in a referrer. Over HTTPS, every cookie is ``Secure`` and
HSTS asks the browser to stay on HTTPS. A request counts as HTTPS when it came
so, directly or through a proxy listed in ``PERMACHAT_TRUSTED_PROXIES`` (the root
app believes those proxies' ``X-Forwarded-Proto``, see :mod:`webapp.asgi`); and
when ``PERMACHAT_PUBLIC_URL`` is ``https://``, cookies are ``Secure`` whatever the
request: then a browser never sends them over plain HTTP, even to an address the
proxy forgot to redirect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, request
from werkzeug.wrappers import Response

from kernel.settings import Settings

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    # A reply's images come from this site or are inline data (webapp.markdown keeps to that too).
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # a conversation's URL never reaches the sites its replies link to
}
HSTS = "max-age=31536000"


def add_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def secure_cookie(value: str) -> str:
    """A ``Set-Cookie`` value with the ``Secure`` attribute (unchanged when it has it)."""
    attributes = {part.split("=", 1)[0].strip().lower() for part in value.split(";")[1:]}
    return value if "secure" in attributes else value + "; Secure"


class SecureCookies:
    """WSGI middleware: every cookie the app sets is ``Secure`` on an HTTPS request (or always).

    Done around the whole app, not per cookie, because Flask writes the session
    cookie after every ``after_request`` hook, and flask-login its remember cookie
    from a setting that cannot vary per request.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], *, always: bool) -> None:
        self.app = app
        self.always = always

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.always and environ.get("wsgi.url_scheme") != "https":
            return self.app(environ, start_response)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [(k, secure_cookie(v) if k.lower() == "set-cookie" else v) for k, v in headers]
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def init_app(app: Flask, settings: Settings) -> None:
    app.after_request(add_headers)
    app.wsgi_app = SecureCookies(app.wsgi_app, always=settings.https_only)  # type: ignore[method-assign]
