"""The package boundaries of ARCHITECTURE.md: webapp -> telegram_bot -> arweave_store -> gateway, one way."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "gateway": {"webapp", "arweave_store", "telegram_bot"},
    "arweave_store": {"webapp", "telegram_bot"},
    "telegram_bot": {"webapp"},
}


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_packages(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert not offenders, offenders


def test_the_check_sees_a_violation(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("from webapp.asgi import create_asgi_app\nimport arweave_store.models\n")
    assert imported_packages(sample) == {"webapp", "arweave_store"}


def project_files() -> list[Path]:
    """The files git tracks or would track (caches and virtualenvs are ignored)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if line]


def test_no_machine_paths_in_the_project():
    # Split so this file does not match itself.
    machine_paths = ("/wo" + "rk/", "/ro" + "ot/")
    offenders = []
    for path in project_files():
        if path.is_file() and path.suffix in {".py", ".md", ".toml", ".html", ".js", ".css", ".json", ".txt", ".po", ""}:
            text = path.read_text(errors="ignore")
            if any(p in text for p in machine_paths):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders
