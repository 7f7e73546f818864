"""The house's layering (pyproject's `[tool.importlinter]` contracts) holds, and would catch a breach."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over the package under `project/src`, with `project/pyproject.toml`'s contracts."""
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", str(project / "pyproject.toml")],
        cwd=project,
        env={"PYTHONPATH": str(project / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_with_breach(tmp_path: Path, module: str, source: str) -> Path:
    """A copy of the project whose package holds one more module, `module` (a path under the package)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "src/polarity_keystone" / module).write_text(source)
    return tmp_path


def test_every_package_imports_only_the_layers_below_it() -> None:
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr


def test_an_import_from_a_lower_layer_to_a_higher_one_breaks_the_contract(tmp_path: Path) -> None:
    run = lint_imports(copy_with_breach(tmp_path, "sandbox/_breach.py", "from ..gate import run_gate\n"))
    assert run.returncode != 0
    assert "polarity_keystone.sandbox is not allowed to import polarity_keystone.gate" in run.stdout
    assert "polarity_keystone.sandbox._breach -> polarity_keystone.gate" in run.stdout


def test_the_gate_may_not_load_docker_even_through_a_package_below_it(tmp_path: Path) -> None:
    run = lint_imports(copy_with_breach(tmp_path, "gate/_breach.py", "import docker\n"))
    assert run.returncode != 0
    assert "polarity_keystone.gate is not allowed to import docker" in run.stdout


def test_a_server_with_the_local_executor_never_loads_ray(tmp_path: Path) -> None:
    """Ray is an optional extra: the default server (and everything else) runs without it."""
    program = (
        "import sys\n"
        "from polarity_keystone.server import ServerSettings, create_app\n"
        f"app = create_app(ServerSettings(store_url='sqlite://{tmp_path}/k.db'))\n"
        "print(sorted(name for name in sys.modules if name == 'ray' or name.startswith('ray.')))\n"
    )
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert (run.returncode, run.stdout.strip()) == (0, "[]"), run.stderr


def test_a_ray_import_outside_the_cluster_package_breaks_the_contract(tmp_path: Path) -> None:
    project = copy_with_breach(tmp_path, "engine/_ray_breach.py", "import ray\n")
    run = lint_imports(project)
    assert run.returncode != 0
    assert "polarity_keystone.engine is not allowed to import ray" in run.stdout
