"""The changed-paths filter (`changed-only`): a spec none of whose local files (the spec file, the agent
directory, fixture sources, SQL files, check scripts, local git repos) changed since its baseline's
commit is not run again, and is reported as unchanged.

Changed means: in `git diff <baseline commit>` against the working tree (so committed and uncommitted
changes both count), or untracked and not ignored. Whenever that cannot be known for sure, the spec runs
and a note says why: no baseline, a baseline that records no commit, no git, no repository, a commit
missing from the clone (a shallow one), a local file outside the repository. The filter sees files
only: a new image under the same tag, other gate inputs or another Keystone version do not count.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console

from ..results import RunResults
from ..spec import LoadedSpec, local_files
from ._baseline import Baselines
from ._verdict import GateVerdict

GIT_TIMEOUT_S = 60.0
NOTE = "changed-only could not apply, so it ran"


class _Uncertain(Exception):
    """Why the filter cannot tell whether a spec changed."""


def baseline_commit(baseline: RunResults) -> str:
    """The commit the baseline ran on, from the CI tags of its experiment (empty when it has none: a
    `ks eval run` results file, a run outside CI)."""
    metadata = getattr(baseline, "metadata", None)
    return str(metadata.get("commit") or "") if isinstance(metadata, dict) else ""


def _git(workspace: Path, *args: str) -> str:
    """Git's stdout; `safe.directory` because a Docker action runs as root in a checkout owned by the
    runner's user, which git otherwise refuses to read."""
    command = ["git", "-c", "safe.directory=*", "-C", str(workspace), *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
    except FileNotFoundError:
        raise _Uncertain("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise _Uncertain(f"git {args[0]} did not finish within {GIT_TIMEOUT_S:g}s") from None
    if done.returncode != 0:
        raise _Uncertain(f"git {args[0]} failed: {' '.join(done.stderr.split()) or done.returncode}")
    return done.stdout


def _changed_paths(workspace: Path, commit: str) -> set[str]:
    """Paths (relative to the repository's top) that differ from `commit`, or are new and not ignored."""
    try:
        _git(workspace, "cat-file", "-e", f"{commit}^{{commit}}")
    except _Uncertain:
        shallow = _git(workspace, "rev-parse", "--is-shallow-repository").strip() == "true"
        why = "this is a shallow clone: check out with fetch-depth: 0" if shallow else "fetch it"
        raise _Uncertain(f"the baseline's commit {commit[:12]} is not in this clone ({why})") from None
    diff = _git(workspace, "diff", "--name-only", "--no-renames", "-z", commit, "--")
    untracked = _git(workspace, "ls-files", "-z", "--others", "--exclude-standard")
    return {path for path in (diff + untracked).split("\0") if path}


def _repository_paths(item: LoadedSpec, top: Path) -> list[str]:
    paths = []
    for file in local_files(item):
        absolute = (item.spec_dir / file.path).resolve()
        if not absolute.is_relative_to(top):
            raise _Uncertain(f"{file.field} ({file.path}) is outside the repository {top}")
        paths.append(absolute.relative_to(top).as_posix())
    return paths


def _touches(changed: set[str], path: str) -> bool:
    if path == ".":  # a local file that is the whole repository
        return bool(changed)
    return any(p == path or p.startswith(path + "/") for p in changed)


class _Filter:
    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.changed: dict[str, set[str]] = {}
        self._top: Path | None = None

    def top(self) -> Path:
        if self._top is None:
            self._top = Path(_git(self.workspace, "rev-parse", "--show-toplevel").strip()).resolve()
        return self._top

    def unchanged(self, item: LoadedSpec, baseline: RunResults | None) -> str:
        """The baseline's commit when none of the spec's files changed since it, else empty; raises
        _Uncertain."""
        if baseline is None:
            raise _Uncertain("there is no baseline to compare with")
        commit = baseline_commit(baseline)
        if not commit:
            raise _Uncertain("the baseline records no commit (it did not come from a gate run in CI)")
        paths = _repository_paths(item, self.top())
        if commit not in self.changed:
            self.changed[commit] = _changed_paths(self.workspace, commit)
        return "" if any(_touches(self.changed[commit], path) for path in paths) else commit


def unchanged_specs(
    loaded: Sequence[LoadedSpec], baselines: Baselines, workspace: Path, err: Console
) -> dict[str, str]:
    """Spec id -> the baseline commit, for each spec to skip; each spec the filter cannot judge gets a
    note saying why it ran."""
    judge = _Filter(workspace)
    skipped: dict[str, str] = {}
    for item in loaded:
        spec_id = item.spec.id
        try:
            commit = judge.unchanged(item, baselines.runs.get(spec_id))
        except _Uncertain as exc:
            baselines.note(spec_id, f"{NOTE}: {exc}")
            err.print(f"[{spec_id}] {NOTE}: {exc}", markup=False)
            continue
        if commit:
            skipped[spec_id] = commit
            err.print(f"[{spec_id}] unchanged since {commit[:12]}: not re-run", markup=False)
    return skipped


def mark_unchanged(verdict: GateVerdict, unchanged: Mapping[str, str]) -> None:
    for spec in verdict.specs:
        spec.unchanged_since = unchanged.get(spec.spec_id, "")
