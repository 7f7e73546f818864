"""Where the baseline comes from: an experiment id, the latest completed experiment of the spec on a
branch (experiments the gate tagged with repo and branch), or a results file from an earlier run.
Everything goes through the SDK; nothing here reaches into a server."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..results import RunResults
from ..sdk import Keystone, NotFoundError
from ..spec import SEMANTIC_KEY, LoadedSpec, semantic_fingerprint
from ._ci import CiContext
from ._inputs import GateInputError
from ._report import read_runs

BRANCH_CANDIDATES = 10
"""Completed experiments looked at per spec and branch (newest first); the first not of this run wins."""


@dataclass
class Baselines:
    runs: dict[str, RunResults] = field(default_factory=dict)
    """spec id -> baseline RunResults."""
    sources: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)

    def add(self, spec_id: str, results: RunResults, source: str) -> None:
        self.runs[spec_id] = results
        self.sources[spec_id] = source

    def note(self, spec_id: str, text: str) -> None:
        self.notes.setdefault(spec_id, []).append(text)


def spec_change(baseline: RunResults, item: LoadedSpec, uploaded_sha256: str) -> str | None:
    """How the spec to run differs from the one the baseline ran, or None: by meaning when the baseline
    has a semantic fingerprint, else (results written before it existed) by the hash of the text."""
    before = baseline.fingerprint
    key = SEMANTIC_KEY if SEMANTIC_KEY in before else "spec_sha256"
    now = semantic_fingerprint(item.spec)[SEMANTIC_KEY] if key == SEMANTIC_KEY else uploaded_sha256
    then = str(before.get(key) or "")
    return f"{key} {then[:12]}…, now {now[:12]}…" if then and then != now else None


def from_file(path: Path, spec_ids: Sequence[str]) -> Baselines:
    """Raises ReportError for a file that cannot be read (an input error)."""
    baselines = Baselines()
    found = {run.spec_id: run for run in read_runs(path)}
    for spec_id in spec_ids:
        if spec_id in found:
            baselines.add(spec_id, found[spec_id], f"file {path}")
        else:
            baselines.note(spec_id, f"{path} has no results for this spec: compared with nothing")
    return baselines


def from_experiment(ks: Keystone, experiment_id: str, spec_ids: Sequence[str]) -> Baselines:
    try:
        results = ks.experiments.get(experiment_id)
    except NotFoundError:
        raise GateInputError(
            f"invalid baseline: experiment {experiment_id} does not exist on this server"
        ) from None
    if not results.finished:
        raise GateInputError(
            f"invalid baseline: experiment {experiment_id} is {results.status}, not finished"
        )
    if results.spec_id not in spec_ids:
        raise GateInputError(
            f"invalid baseline: experiment {experiment_id} ran spec {results.spec_id}, "
            f"which is not among the gated specs ({', '.join(spec_ids)})"
        )
    baselines = Baselines()
    baselines.add(results.spec_id, results, f"experiment {experiment_id}")
    return baselines


def from_branch(
    ks: Keystone, branch: str, spec_ids: Sequence[str], ci: CiContext, exclude: Collection[str] = ()
) -> Baselines:
    """The newest completed experiment per spec tagged with this branch (and repository, when known),
    other than one of this very run (a re-run of the same job attempt, or one in `exclude`: the eval
    experiments this run recorded before it looked for their baselines)."""
    baselines = Baselines()
    tags = {"branch": branch, **({"repo": ci.repository} if ci.repository else {})}
    for spec_id in spec_ids:
        found = ks.experiments.list(
            spec_id=spec_id, status="completed", metadata=tags, limit=BRANCH_CANDIDATES
        )
        earlier = [
            e
            for e in found
            if e.id not in exclude and (not ci.run_key or e.metadata.get("ci_run") != ci.run_key)
        ]
        if not earlier:
            baselines.note(
                spec_id, f"no completed run of this spec on branch {branch} yet: compared with nothing"
            )
            continue
        chosen = earlier[0]
        results = ks.experiments.get(chosen.id)
        commit = str(chosen.metadata.get("commit", ""))[:12]
        where = f"{branch}@{commit}" if commit else branch
        baselines.add(spec_id, results, f"experiment {chosen.id} on {where}")
    return baselines
