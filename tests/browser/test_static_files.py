"""Static files as the browser gets them: versioned URLs, cached for a year, gzip-compressed."""

from __future__ import annotations

import time

import httpx
import pytest

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """`permachat serve` in its own process, so its access log shows what reached the server."""
    from tests.processes import clean_env, serve

    data = tmp_path_factory.mktemp("static")
    server = serve(clean_env(PERMACHAT_DATA_DIR=str(data / "data"), PERMACHAT_SECRET_KEY="test-secret"),
                   data / "logs")
    yield server
    server.terminate()


def static_hits(server) -> int:
    return sum(1 for line in server.log().splitlines() if '"GET /static/' in line)


@pytest.mark.parametrize("viewport", [{"width": 1440, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_every_static_file_is_versioned_cached_and_compressed(site, browser, viewport):
    context = browser.new_context(locale="en-US", viewport=viewport)
    page = context.new_page()
    statics = []
    page.on("response", lambda r: statics.append(r) if "/static/" in r.url else None)
    for path in ("/", "/login", "/pricing"):
        page.goto(site.url + path)
        page.wait_for_load_state("load")
    assert len({r.url for r in statics}) >= 5, [r.url for r in statics]
    for response in statics:
        headers = response.all_headers()
        assert "?v=" in response.url and len(response.url.split("?v=")[1]) == 12, response.url
        assert headers["cache-control"] == "public, max-age=31536000, immutable", (response.url, headers)
        if response.url.split("?")[0].endswith((".js", ".css")):
            assert headers.get("content-encoding") == "gzip", (response.url, headers)
    # Visiting again takes every static file from the browser's cache: none reaches the server.
    before = static_hits(site)
    assert before >= 5, "the access log does not show the static requests: the check below would prove nothing"
    for path in ("/login", "/"):
        page.goto(site.url + path)
        page.wait_for_load_state("load")
    time.sleep(0.3)  # the access log is written as each request ends
    assert static_hits(site) == before, "static files were fetched again"
    context.close()


def test_an_old_or_missing_version_is_revalidated_not_kept(site):
    plain = httpx.get(site.url + "/static/chat.js", headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == 200 and plain.headers["cache-control"] == "no-cache"
    assert plain.headers["content-encoding"] == "gzip"
    stale = httpx.get(site.url + "/static/chat.js?v=000000000000")
    assert stale.headers["cache-control"] == "no-cache"
    again = httpx.get(site.url + "/static/chat.js", headers={"If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304
