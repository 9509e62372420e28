"""The composed ASGI app over a real socket: health, static files, Flask pages."""

from __future__ import annotations

import httpx


def test_healthz_and_home_page(live_server):
    with httpx.Client(base_url=live_server.url) as client:
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok"}
        home = client.get("/")
        assert home.status_code == 200 and "permachat" in home.text
        js = client.get("/static/vendor/htmx-2.0.11.min.js")
        assert js.status_code == 200 and "htmx" in js.text[:2000]


def test_language_switch(live_server):
    with httpx.Client(base_url=live_server.url, follow_redirects=False) as client:
        page = client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
        assert 'lang="zh-CN"' in page.text
        page = client.get("/", headers={"Accept-Language": "en-US"})
        assert 'lang="en"' in page.text
