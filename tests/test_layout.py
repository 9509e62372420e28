"""The package boundaries of docs/architecture.md: each package imports only the ones below it.

    webapp ─▶ migrations ─▶ telegram_bot ─▶ arweave_store ─▶ gateway ─▶ accounts ─▶ billing ─▶ kernel

and no module imports itself in a circle, even through a package's ``__init__``.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Lowest first: a package may import the ones before it, never one after it.
LAYERS = ["kernel", "billing", "accounts", "gateway", "arweave_store", "telegram_bot", "migrations", "webapp"]
OURS = set(LAYERS)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports by absolute name, at any depth (inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imported_packages(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)}


def packages() -> list[str]:
    return [name for name in LAYERS if (ROOT / name).is_dir()]


@pytest.mark.parametrize("package", [name for name in LAYERS if (ROOT / name).is_dir()])
def test_imports_point_one_way(package):
    above = set(LAYERS[LAYERS.index(package) + 1:])
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_packages(path) & above
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert not offenders, offenders


def test_the_kernel_imports_nothing_of_ours_but_itself():
    offenders = [f"{path.relative_to(ROOT)}: {sorted(imported_packages(path) & OURS - {'kernel'})}"
                 for path in sorted((ROOT / "kernel").rglob("*.py")) if imported_packages(path) & OURS - {"kernel"}]
    assert not offenders, offenders


def module_graph() -> dict[str, set[str]]:
    """Our modules and the modules of ours each imports at import time (top level, not inside functions)."""
    graph: dict[str, set[str]] = {}
    files = {}
    for package in packages():
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            files[name] = path
    for name, path in files.items():
        deps = set()
        for node in ast.parse(path.read_text()).body:  # top level only: a function-level import cannot loop
            if isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports never run
                continue
            found = []
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from pkg import submodule` needs the submodule; `from pkg import name` needs pkg itself.
                found = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in files else node.module
                         for alias in node.names]
            deps.update(dep for dep in found if dep in files and dep != name)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_imports_itself_in_a_circle():
    assert find_cycle(module_graph()) is None


def test_the_checks_see_a_violation(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("from webapp.asgi import create_asgi_app\nimport arweave_store.models\n"
                      "def f():\n    from gateway import relay\n")
    assert imported_packages(sample) == {"webapp", "arweave_store", "gateway"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_money_moves_only_in_billing():
    """Balances (``User.quota``, ``Token.remain_quota``, ``used_quota``) are written in billing/ and nowhere else."""
    writes = ("quota=User.quota", "remain_quota=Token.remain_quota", "used_quota=",
              "User.quota +", "User.quota -", "Token.remain_quota +", "Token.remain_quota -")
    offenders = []
    for package in packages():
        if package == "billing":
            continue
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            offenders += [f"{path.relative_to(ROOT)}: {w}" for w in writes if w in text]
    assert not offenders, offenders


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
