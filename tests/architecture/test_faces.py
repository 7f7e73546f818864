"""Packages use each other through their `__init__` faces only: a module of one package never imports
from inside another package (`from ..services.postgres import …`, `from ..sandbox import _labels`), so
each package can rearrange its insides freely."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "polarity_keystone"


def _imported(module: Path, root: Path) -> Iterator[tuple[int, list[str], str]]:
    """(line, absolute dotted parts of the module imported from, name) of every import in `module`."""
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
                yield node.lineno, base, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                *base, name = alias.name.split(".")
                yield node.lineno, base, name


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def reaches_past_faces(root: Path) -> list[str]:
    found: list[str] = []
    for module in sorted(root.rglob("*.py")):
        own = module.relative_to(root).parts[0].removesuffix(".py")
        for line, base, name in _imported(module, root):
            if base[:1] != [root.name] or len(base) < 2 or base[1] == own:
                continue
            if len(base) > 2:
                reached = ".".join(base[:3])
            elif _is_private(name):
                reached = ".".join([*base, name])
            else:
                continue
            reach = f"{module.relative_to(root)}:{line} imports {reached}"
            found += [] if reach in found else [reach]
    return found


def test_no_module_reaches_past_another_packages_face() -> None:
    assert reaches_past_faces(PACKAGE) == []


def test_a_reach_past_a_face_is_found(tmp_path: Path) -> None:
    root = tmp_path / "polarity_keystone"
    (root / "engine").mkdir(parents=True)
    (root / "engine" / "_replica.py").write_text(
        "from ..spec._models import Spec\n"
        "from ..sandbox import _labels\n"
        "from ..services.postgres_audit import TableWrite\n"
        "import polarity_keystone.store._sql\n"
        "from ..spec import Spec\n"
        "from .. import exit_codes\n"
        "from ._prepare import x\n"
        "from .._prepare import y\n"
    )
    assert reaches_past_faces(root) == [
        "engine/_replica.py:1 imports polarity_keystone.spec._models",
        "engine/_replica.py:2 imports polarity_keystone.sandbox._labels",
        "engine/_replica.py:3 imports polarity_keystone.services.postgres_audit",
        "engine/_replica.py:4 imports polarity_keystone.store._sql",
    ]
