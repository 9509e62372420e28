"""A person's browser without the browser: cookies, CSRF tokens from the last page, plain forms."""

from __future__ import annotations

import re

import httpx

from tests.webapp.console.conftest import text_of

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class WebUser:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, follow_redirects=True, timeout=20)
        self.csrf = ""

    def get(self, path: str, **kwargs) -> httpx.Response:
        response = self.http.get(path, **kwargs)
        self._remember(response)
        return response

    def post(self, path: str, data: dict[str, str] | None = None, **kwargs) -> httpx.Response:
        if not self.csrf:
            self.get("/login")
        response = self.http.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kwargs)
        self._remember(response)
        return response

    def text(self, path: str) -> str:
        return text_of(self.get(path).text)

    def _remember(self, response: httpx.Response) -> None:
        found = CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)

    def close(self) -> None:
        self.http.close()
