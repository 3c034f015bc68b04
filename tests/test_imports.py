"""Dependencies point one way: realtime <- models <- training (ARCHITECTURE.md). Read from the source with ast, so a
lazy import inside a function counts as much as one at the top of a module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_modules(path: Path, package: str) -> set[str]:
    """Absolute names of every module ``path`` imports anywhere in its body (relative imports resolved)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                if node.module:
                    names.add(f"{base}.{node.module}")
                else:  # `from . import x`: x is a module of the package (or a name in its __init__; same rule)
                    names.update(f"{base}.{alias.name}" for alias in node.names)
            elif node.module:
                names.add(node.module)
    return names


def offending(package: str, forbidden: str) -> list[str]:
    """'file: module' for each import of ``forbidden`` (or a submodule of it) in the package's .py files."""
    root = REPO / package
    found = []
    for path in sorted(root.rglob("*.py")):
        dotted = ".".join(path.relative_to(REPO).with_suffix("").parts)
        pkg = dotted if path.name == "__init__.py" else dotted.rpartition(".")[0]
        for name in sorted(imported_modules(path, pkg)):
            if name == forbidden or name.startswith(forbidden + "."):
                found.append(f"{path.relative_to(REPO)}: {name}")
    return found


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from training.train import train\n\nfrom . import sibling\nimport training\n")
    assert imported_modules(module, "models") == {"training.train", "models.sibling", "training"}


@pytest.mark.parametrize("package, forbidden", [("models", "training"), ("realtime", "training")])
def test_dependencies_point_down(package, forbidden):
    """Neither models nor realtime (the live core) imports training. (realtime.cli names training's commands as
    strings for importlib: a table, not a dependency of the live path.)"""
    assert offending(package, forbidden) == []


def test_contract_imports_without_torch():
    """realtime reads model metadata through models.contract on machines that only run live (no torch there)."""
    code = "import sys, models.contract; assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr
