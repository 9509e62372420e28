"""docs/architecture.md stays true: what it names exists, and it names every package."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "architecture.md").read_text()


def test_every_path_it_names_exists():
    named = set(re.findall(r"`((?:[a-z_]+/)+[a-z_.]*)`", DOC))
    assert len(named) > 30  # the check reads the doc's paths at all
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_package_is_on_the_map():
    packages = sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name != "tests")
    assert "gateway" in packages
    unnamed = [name for name in packages if f"`{name}/`" not in DOC]
    assert not unnamed, f"packages missing from docs/architecture.md: {unnamed}"


def test_the_functions_of_the_lifecycle_exist():
    from billing import holds, quota
    from gateway.relay import Relay

    for owner, name in [(Relay, "prepare"), (Relay, "serve"), (Relay, "finish"), (quota, "reserve_in"),
                        (quota, "settle"), (holds, "resolve_process")]:
        assert name in DOC and hasattr(owner, name), name
