"""Every string the console shows through ``_()`` has a Chinese translation in console.po."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[3]
SOURCES = [ROOT / "webapp" / d for d in ("account", "pages", "admin", "api")] + [
    ROOT / "webapp" / "templates" / d for d in ("account", "pages", "admin")]
METHODS = [("**/docs_*.html", "ignore"), ("**.py", "python"), ("**.html", "jinja2.ext:babel_extract")]


def test_every_console_string_is_translated():
    with (ROOT / "webapp/translations/zh/LC_MESSAGES/console.po").open("rb") as fh:
        catalog = read_po(fh)
    found = set()
    for source in SOURCES:
        for _file, _line, message, _comments, _context in extract_from_dir(
                source, METHODS, keywords={"_": None, "gettext": None}):
            found.add(message if isinstance(message, str) else message[0])
    assert len(found) > 150
    missing = sorted(m for m in found if m not in catalog or not catalog[m].string)
    assert not missing, f"add to console.po and run pybabel compile: {missing}"
