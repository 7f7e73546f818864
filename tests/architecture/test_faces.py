"""Packages use each other through their `__init__` faces only: a module of one package never imports
another package's private modules (`_name`), so each package can rearrange its insides freely."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "polarity_keystone"


def _imported(module: Path, root: Path) -> Iterator[tuple[int, list[str]]]:
    """(line, absolute dotted parts) of every module or name `module` imports from this package."""
    here = list(module.relative_to(root.parent).with_suffix("").parts)
    if here[-1] == "__init__":
        here.pop()
    package = here if module.name == "__init__.py" else here[:-1]
    for node in ast.walk(ast.parse(module.read_text(), str(module))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = (node.module or "").split(".")
            else:
                relative = node.module.split(".") if node.module else []
                base = package[: len(package) - node.level + 1] + relative
            for alias in node.names:
                yield node.lineno, [*base, alias.name]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")


def private_reaches(root: Path) -> list[str]:
    found: list[str] = []
    for module in sorted(root.rglob("*.py")):
        own = module.relative_to(root).parts[0]
        for line, parts in _imported(module, root):
            if parts[0] != root.name or len(parts) < 3:
                continue
            owner, inner = parts[1], parts[2]
            reach = f"{module.relative_to(root)}:{line} imports {'.'.join(parts[:3])}"
            if owner != own.removesuffix(".py") and inner.startswith("_") and not inner.startswith("__"):
                found += [] if reach in found else [reach]
    return found


def test_no_module_reaches_into_another_packages_private_modules() -> None:
    assert private_reaches(PACKAGE) == []


def test_a_reach_into_a_private_module_is_found(tmp_path: Path) -> None:
    root = tmp_path / "polarity_keystone"
    (root / "engine").mkdir(parents=True)
    (root / "engine" / "_replica.py").write_text(
        "from ..spec._models import Spec\n"
        "from ..sandbox import _labels\n"
        "from ..spec import Spec\n"
        "from ._prepare import x\n"
    )
    assert private_reaches(root) == [
        "engine/_replica.py:1 imports polarity_keystone.spec._models",
        "engine/_replica.py:2 imports polarity_keystone.sandbox._labels",
    ]
