"""The gate's own overhead: the wall time of `ks gate` minus the time its experiment ran (sandboxes and the
agent), for a real run of a spec through the embedded server. Needs Docker; prints figures, asserts nothing.

    python bench/gate.py [--runs 5] [--replicas 1] [--spec examples/hello-world/hello.yaml]

Overhead here is everything the gate adds around the experiment: checking inputs and specs, starting the
embedded server and checking the key, uploading the spec, creating and starting the experiment, waiting
for it to be picked up, following its events, fetching results, deciding, and writing JUnit, summary,
results JSON and outputs (no PR comment: that is one or two HTTP calls to the forge). The experiment's
time is the server's `started_at` to `finished_at`. Also printed: the embedded server's start and stop
alone, and the decision plus reports alone, on the same results.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from rich.console import Console

from polarity_keystone import Keystone
from polarity_keystone.gate import GateReport, Policy, SpecRun, decide, read_report, resolve, run_gate
from polarity_keystone.gate._publish import publish
from polarity_keystone.secrets import Redactor

ROOT = Path(__file__).resolve().parents[1]


def one_gate_run(spec: Path, replicas: int) -> tuple[float, float, GateReport]:
    """(gate wall seconds, experiment seconds, report) of one `ks gate` in the current directory."""
    environ = {"KEYSTONE_SPECS": str(spec), "KEYSTONE_REPLICAS": str(replicas), "KEYSTONE_COMMENT": "off"}
    log = io.StringIO()
    started = time.perf_counter()
    code = run_gate(resolve(None, environ), environ, Console(file=log), io.StringIO())
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"the gate exited {code}:\n{log.getvalue()}")
    report = read_report(Path("keystone-results.json"))
    extra = report.runs[0].model_extra or {}
    ran = datetime.fromisoformat(extra["finished_at"]) - datetime.fromisoformat(extra["started_at"])
    return wall, ran.total_seconds(), report


def embedded_server_start_stop() -> float:
    started = time.perf_counter()
    Keystone.local(".keystone").close()
    return time.perf_counter() - started


def decide_and_publish(report: GateReport) -> float:
    config = resolve(None, {})
    started = time.perf_counter()
    runs = [SpecRun(run.spec_id, run) for run in report.runs]
    verdict = decide(runs, Policy.from_config(config))
    publish(
        GateReport(verdict=verdict, runs=report.runs),
        config,
        None,
        Redactor({}),
        {},
        Console(file=io.StringIO()),
        io.StringIO(),
    )
    return time.perf_counter() - started


def row(label: str, values: Sequence[float]) -> str:
    return f"  {label:<44} median {statistics.median(values):6.2f}s   min {min(values):6.2f}s   max {max(values):6.2f}s"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--spec", type=Path, default=ROOT / "examples" / "hello-world" / "hello.yaml")
    args = parser.parse_args(argv)
    walls, experiments, overheads, servers, reports = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="keystone-bench-gate-") as folder:
        shutil.copytree(args.spec.resolve().parent, Path(folder) / "spec")
        spec = Path("spec") / args.spec.name
        previous = Path.cwd()
        os.chdir(folder)
        try:
            one_gate_run(spec, args.replicas)  # warm-up: images built or found, imports done
            for _ in range(args.runs):
                wall, experiment, report = one_gate_run(spec, args.replicas)
                walls.append(wall)
                experiments.append(experiment)
                overheads.append(wall - experiment)
                servers.append(embedded_server_start_stop())
                reports.append(decide_and_publish(report))
        finally:
            os.chdir(previous)
    print(
        f"ks gate on {args.spec.relative_to(ROOT) if args.spec.is_relative_to(ROOT) else args.spec}, {args.replicas} replica(s), embedded server, {args.runs} runs after one warm-up"
    )
    print(row("gate wall time", walls))
    print(row("experiment (sandboxes + agent, server-side)", experiments))
    print(row("gate overhead (wall - experiment)", overheads))
    print(row("  of which: embedded server start + stop", servers))
    print(row("  of which: decide + write reports", reports))


if __name__ == "__main__":
    main()
