"""Errors a person meets look like the site and speak their language; JSON callers get JSON."""

from __future__ import annotations

import httpx


def test_error_pages(live_server):
    with httpx.Client(base_url=live_server.url) as client:
        missing = client.get("/c/999999")
        assert missing.status_code == 404 and "This page does not exist." in missing.text
        assert 'class="topbar"' in missing.text  # the site's layout, not Werkzeug's bare page
        zh = client.get("/c/999999", headers={"Accept-Language": "zh-CN"})
        assert zh.status_code == 404 and "此页面不存在" in zh.text
        no_csrf = client.post("/topup", data={"code": "x"})
        assert no_csrf.status_code == 400 and "Reload the page" in no_csrf.text
        api = client.get("/api/no-such-thing")
        assert api.status_code == 404 and api.json()["error"]["code"] == 404
