"""Translations: every catalog compiles, the committed .mo files are fresh, pages speak Chinese."""

from __future__ import annotations

from gettext import GNUTranslations
from pathlib import Path

import httpx
import pytest
from babel.messages.pofile import read_po

from webapp import TRANSLATION_DOMAINS

CATALOGS = Path(__file__).resolve().parents[2] / "webapp" / "translations"


@pytest.mark.parametrize("domain", TRANSLATION_DOMAINS)
def test_committed_mo_matches_po(domain):
    po = CATALOGS / "zh" / "LC_MESSAGES" / f"{domain}.po"
    if not po.exists():
        pytest.skip(f"no {domain}.po catalog yet")
    with po.open("rb") as fh:
        catalog = read_po(fh)
    untranslated = [m.id for m in catalog if m.id and not m.string]
    assert not untranslated, f"{domain}.po has untranslated strings: {untranslated[:5]}"
    mo = po.with_suffix(".mo")
    assert mo.exists(), f"run: pybabel compile -d webapp/translations -D {domain}"
    with mo.open("rb") as fh:
        compiled = GNUTranslations(fh)
    # Compare messages, not bytes: the header carries the compile time.
    stale = [m.id for m in catalog if m.id and isinstance(m.id, str) and compiled.gettext(m.id) != m.string]
    assert not stale, f"{domain}.mo is stale ({stale[:3]}): run pybabel compile -d webapp/translations -D {domain}"


def test_home_page_in_chinese(live_server):
    page = httpx.get(live_server.url + "/", headers={"Accept-Language": "zh-CN"})
    assert "永久保存在 Arweave 上" in page.text
