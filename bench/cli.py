"""How fast `ks` starts: whole-process wall time (median of N runs) of commands that need no Docker and no
server, beside the floor of any Python CLI and a Python CLI users run every day. Prints figures, asserts
nothing.

    python bench/cli.py [--runs 10]

The floor is `python3 -c pass` (the interpreter alone). The reference is `pytest --version`: a Python CLI
every Keystone user has installed and starts many times a day, which loads its plugin machinery before it
answers. Each command is run once before timing, so every figure is with a warm file cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "examples" / "hello-world" / "hello.yaml"


def _ks() -> list[str]:
    """The `ks` console script next to this interpreter (not a version manager's shim in front of it, which
    adds its own start-up), else the same entry point through the interpreter."""
    script = Path(sys.executable).parent / "ks"
    return (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from polarity_keystone.cli import run; run()"]
    )


def commands() -> list[tuple[str, list[str]]]:
    ks = _ks()
    return [
        ("python3 -c pass (floor)", [sys.executable, "-c", "pass"]),
        ("pytest --version (reference)", [sys.executable, "-m", "pytest", "--version"]),
        ("ks --help", [*ks, "--help"]),
        ("ks gate --help", [*ks, "gate", "--help"]),
        ("ks spec validate hello.yaml", [*ks, "spec", "validate", str(HELLO)]),
    ]


def wall_time(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command (default 10)")
    args = parser.parse_args()
    print(f"{args.runs} runs each, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"{'command':<32} {'median':>8} {'min':>8} {'max':>8}")
    for name, command in commands():
        wall_time(command)
        times = [wall_time(command) for _ in range(args.runs)]
        print(f"{name:<32} {statistics.median(times):>7.3f}s {min(times):>7.3f}s {max(times):>7.3f}s")


if __name__ == "__main__":
    main()
