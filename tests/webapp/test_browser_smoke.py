"""The home page loads in a real browser with htmx running."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_home_page_runs_htmx(live_server, page):
    page.goto(live_server.url + "/")
    assert page.title() == "permachat"
    page.wait_for_function("() => window.htmx && htmx.version.startsWith('2.0')")
