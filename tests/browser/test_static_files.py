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


def settled_hits(server, *, at_least: int = 0, quiet: float = 1.0, timeout: float = 20.0) -> int:
    """The static requests in the access log once it has them all: at least ``at_least``, then unchanged for ``quiet`` s.

    The server writes a line as each request ends, in its own process: right
    after the page's load event some lines may not be there yet, more so on a
    loaded machine. Counting before they are all in would make a late line
    look like a second fetch.
    """
    deadline = time.monotonic() + timeout
    count, since = static_hits(server), time.monotonic()
    while True:
        time.sleep(0.05)
        now, seen = time.monotonic(), static_hits(server)
        if seen != count:
            count, since = seen, now
        elif count >= at_least and now - since >= quiet:
            return count
        if now > deadline:
            raise AssertionError(f"the access log shows {count} static requests, expected at least {at_least}")


@pytest.mark.parametrize("viewport", [{"width": 1440, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_every_static_file_is_versioned_cached_and_compressed(site, browser, viewport):
    earlier = settled_hits(site, quiet=0.3)  # the module's server: another test's visits are in its log
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
    # (The first visit fetched each distinct file once: the log must show at least that many first.)
    before = settled_hits(site, at_least=earlier + len({r.url for r in statics}))
    assert before - earlier >= 5, "the access log does not show the static requests: the check below would prove nothing"
    for path in ("/login", "/"):
        page.goto(site.url + path)
        page.wait_for_load_state("load")
    assert settled_hits(site) == before, "static files were fetched again"
    context.close()


def test_an_old_or_missing_version_is_revalidated_not_kept(site):
    plain = httpx.get(site.url + "/static/chat.js", headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == 200 and plain.headers["cache-control"] == "no-cache"
    assert plain.headers["content-encoding"] == "gzip"
    stale = httpx.get(site.url + "/static/chat.js?v=000000000000")
    assert stale.headers["cache-control"] == "no-cache"
    again = httpx.get(site.url + "/static/chat.js", headers={"If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304
