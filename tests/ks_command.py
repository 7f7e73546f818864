"""The installed `ks` console script, run as a user runs it: a subprocess in the repository's root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def ks_executable() -> str:
    found = shutil.which("ks") or str(Path(sysconfig.get_path("scripts")) / "ks")
    assert Path(found).exists(), "the `ks` console script is not installed"
    return found


def run_ks(args: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """`ks ARGS...`; a wide terminal keeps long paths on one line of its report."""
    env = {**os.environ, "COLUMNS": "1000"}
    return subprocess.run(
        [ks_executable(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False
    )
