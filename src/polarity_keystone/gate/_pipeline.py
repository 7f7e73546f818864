"""`ks gate` from inputs to exit code, through the SDK only (an embedded server when none is configured).

1. Check everything that costs nothing: inputs, spec files, secrets, the baseline file.
2. Connect and check the API key (`GET /v1/specs`) before anything runs; fetch a server-side baseline;
   refuse a baseline of another spec version before a sandbox boots.
3. Post the "running…" comment; per spec: upload it, find this job attempt's experiment or create one
   (tagged with repo, branch, commit and CI run; Idempotency-Key derived from the CI run, so a re-run of
   the same attempt never makes a second one), run it, follow it (SSE, resumed; or polling), fetch results.
4. Decide, write every report and the comment, then return the exit code.

A run that cannot decide (exit 2 for invalid input, 3 for infrastructure) still writes every report and
the comment, saying "could not run" with its first errors (a spec error with its file:line), so no
earlier run's verdict is left standing.

An infrastructure failure while experiments run (the server went away, the timeout ran out) does not
abort: it becomes the verdict `error` for the specs it hit, so the reports still say what happened.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import hashlib
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

from .. import exit_codes
from ..results import RunResults, name_spec_file
from ..sdk import (
    APIConnectionError,
    AuthenticationError,
    ConflictError,
    Experiment,
    Keystone,
    KeystoneError,
    PermissionDeniedError,
    StreamEvent,
    collect_declared_secrets_from_file,
)
from ..secrets import Redactor, SecretError
from ..spec import LoadedSpec, SpecError, collect_bundle, load_specs
from ._adaptive import decide_adaptively
from ._baseline import Baselines, from_branch, from_experiment, from_file, spec_change
from ._changed import mark_unchanged, unchanged_specs
from ._ci import CiContext, detect
from ._comments import CommentError, Marker, StickyComment, default_comment_key, thread_for
from ._evals import EvalFileError, is_eval_file, run_eval_file
from ._inputs import GateConfig, GateInputError, matrix_values, parse_baseline, resolve_to_report
from ._locations import InvariantLocations
from ._problems import Problem
from ._publish import publish
from ._report import GateReport, ReportError, read_report
from ._summary import LABELS, could_not_run, headline, running, unchanged_text
from ._verdict import GateVerdict, Policy, Rate, SpecRun, SpecVerdict

EMBEDDED_DIR = Path(".keystone")
"""Where the embedded server keeps its SQLite store (relative to the working directory)."""
POLL_INTERVAL_S = 2.0
GATE_NAME = "keystone-gate"
"""What JUnit calls the gate itself, when it could not run (its one errored testcase)."""


class GateInfrastructureError(Exception):
    """Raised before any experiment runs when the server cannot be reached or started; exit 3."""


class InvalidSpecsError(GateInputError):
    """Raised for spec files with errors; carries each error with its file, line and column."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("invalid specs: the files above have errors")
        self.problems = list(problems)


def expand_specs(patterns: Sequence[str]) -> list[Path]:
    """The files the patterns name. An eval file is Python the gate executes in the job, so a glob yields
    `.py` files only when it ends in `.py` itself: a pull request adding `specs/x.py` under `specs/*`
    does not get its code run unless the workflow asked for Python files there."""
    paths: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            runs_python = is_eval_file(Path(pattern))
            matches = [
                Path(m)
                for m in sorted(glob.glob(pattern, recursive=True))
                if Path(m).is_file() and (runs_python or not is_eval_file(Path(m)))
            ]
        else:
            matches = [Path(pattern)] if Path(pattern).is_file() else []
        if not matches:
            raise GateInputError(f"invalid specs (--specs / KEYSTONE_SPECS): {pattern!r} matches no file")
        paths += [path for path in matches if path not in paths]
    return paths


def _load_distinct_specs(paths: Sequence[Path], err: Console) -> list[LoadedSpec]:
    try:
        loaded = load_specs(paths)
        for item, path in zip(loaded, paths, strict=True):  # before any run: a path no bundle can hold
            collect_bundle(item, str(path))
    except SpecError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise InvalidSpecsError([Problem.of_issue(issue) for issue in exc.issues]) from None
    seen: dict[str, Path] = {}
    for item, path in zip(loaded, paths, strict=True):
        if item.spec.id in seen:
            raise GateInputError(
                f"invalid specs: {seen[item.spec.id]} and {path} both have id {item.spec.id}"
            )
        seen[item.spec.id] = path
    return loaded


def idempotency_key(run_key: str, spec_id: str) -> str:
    """Stable for one CI job attempt and spec; short and free of characters a header would mind."""
    return "ks-gate-" + hashlib.sha256(f"{run_key}\0{spec_id}".encode()).hexdigest()[:40]


def uploaded_sha256(item: LoadedSpec) -> str:
    """The spec hash the server will record for the uploaded text (its run fingerprint's spec_sha256)."""
    return hashlib.sha256(item.text.encode("utf-8")).hexdigest()


class _Progress:
    """Prints one line per finished replica and per status change, from the experiment's events."""

    def __init__(self, err: Console, spec_id: str) -> None:
        self.err = err
        self.spec_id = spec_id
        self.status = ""

    def __call__(self, event: StreamEvent) -> None:
        data = event.data
        if event.event == "replica_done":
            self.err.print(
                f"  [{self.spec_id}] {data.get('scenario_id')} replica {data.get('replica')}: "
                f"{data.get('status')} ({data.get('wall_ms', 0)} ms)",
                markup=False,
            )
        elif event.event == "progress" and data.get("status") and data.get("status") != self.status:
            self.status = str(data["status"])
            self.err.print(
                f"  [{self.spec_id}] {self.status} ({data.get('done', 0)}/{data.get('total', '?')} replicas)",
                markup=False,
            )


class Gate:
    def __init__(self, config: GateConfig, environ: Mapping[str, str], err: Console, out: TextIO) -> None:
        self.config = config
        self.environ = environ
        self.err = err
        self.out = out
        self.ci = _context(config, environ)
        self.policy = Policy.from_config(config)
        self.redact = Redactor(_named(config.secrets()))
        self.locate: InvariantLocations | None = None

    # -- entry points -------------------------------------------------------------------------------

    def run(self) -> int:
        if self.config.from_results is not None:
            return self._report_earlier(self.config.from_results)
        paths = expand_specs(self.config.specs)
        eval_files = [path for path in paths if is_eval_file(path)]
        loaded = _load_distinct_specs([path for path in paths if not is_eval_file(path)], self.err)
        spec_secrets: list[str] = []
        for item in loaded:
            assert item.path is not None  # loaded from files
            spec_secrets += collect_declared_secrets_from_file(item.path).values()
        self.redact = Redactor(_named([*self.config.secrets(), *spec_secrets]))
        self.locate = InvariantLocations(loaded)
        spec_ids = [item.spec.id for item in loaded]
        baseline = parse_baseline(self.config.baseline)
        baselines = (
            from_file(Path(baseline[1]), spec_ids) if baseline and baseline[0] == "file" else Baselines()
        )
        with self._connect() as ks:
            evals = self._run_evals(ks, eval_files)  # first: an eval's name is known once its file ran
            recorded = {run.candidate.experiment_id for run in evals if run.candidate is not None}
            gated_ids = [*spec_ids, *_distinct_names(evals, spec_ids)]
            if baseline and baseline[0] == "file" and evals:
                baselines = from_file(Path(baseline[1]), gated_ids)
            elif baseline and baseline[0] == "experiment":
                baselines = from_experiment(ks, baseline[1], gated_ids)
            elif baseline and baseline[0] == "branch":
                baselines = from_branch(ks, baseline[1], gated_ids, self.ci, exclude=recorded)
            self._refuse_changed_specs(loaded, baselines)
            unchanged: dict[str, str] = {}
            if self.config.changed_only:
                unchanged = unchanged_specs(loaded, baselines, Path.cwd(), self.err)
            with self._sticky() as sticky:
                if sticky is not None:
                    self._comment(sticky, running(gated_ids, self.ci.run_url))
                deadline = time.monotonic() + self.config.timeout
                runs = self._run_all(ks, loaded, baselines, unchanged, deadline)
                runs += [
                    dataclasses.replace(run, **_baseline_fields(run.spec_id, baselines)) for run in evals
                ]
                runs, verdict = self._grow(ks, loaded, runs, deadline)
                mark_unchanged(verdict, unchanged)
                candidates = [run.candidate for run in runs if run.candidate is not None]
                report = GateReport(verdict=verdict, ci=self.ci, runs=candidates)
                self._publish(report, sticky)
        self._print(verdict)
        return verdict.exit_code

    def could_not_run(self, exit_code: int, problems: Sequence[Problem]) -> int:
        """Publish that this run could not decide (every report and the comment say so), then return
        `exit_code`."""
        errors = [problem.describe() for problem in problems]
        stopped = SpecVerdict(spec_id=GATE_NAME, outcome="error", candidate=Rate.of(0, 0), errors=errors)
        verdict = GateVerdict(verdict="error", exit_code=exit_code, specs=[stopped])
        report = GateReport(verdict=verdict, ci=self.ci, problems=list(problems))
        with self._sticky() as sticky:
            self._publish(report, sticky)
        self.err.print(self.redact(could_not_run(report)), markup=False)
        return exit_code

    def _report_earlier(self, path: Path) -> int:
        """The fork-safe second step: publish a verdict decided by an earlier gate, running nothing.
        The file comes from an untrusted run, so only its data is used, under the original job's marker:
        the PR is the one this job names (pr-number, from a trusted source), never the file's, and the
        file's links are dropped."""
        report = read_report(path)
        report.ci = report.ci.model_copy(update={"run_url": "", "project_url": "", "api_url": ""})
        with self._sticky(Marker.for_run(report.ci)) as sticky:
            self._publish(report, sticky)
        if report.problems:
            self.err.print(self.redact(could_not_run(report)), markup=False)
        else:
            self._print(report.verdict)
        return report.verdict.exit_code

    # -- server -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Keystone]:
        url = self.config.server_url
        try:
            ks = Keystone(api_key=self.config.api_key, base_url=url) if url else Keystone.local(EMBEDDED_DIR)
        except (KeystoneError, OSError, RuntimeError) as exc:
            raise GateInfrastructureError(f"could not start the embedded Keystone server: {exc}") from exc
        where = url or f"the embedded server ({ks.base_url})"
        self.err.print(f"Keystone server: {where}", markup=False)
        try:
            try:
                ks.specs.list(limit=1)
            except (AuthenticationError, PermissionDeniedError) as exc:
                raise GateInputError(
                    f"invalid api-key (KEYSTONE_API_KEY): {where} refused it: {exc.message}"
                ) from None
            except APIConnectionError as exc:
                raise GateInfrastructureError(f"cannot reach {where}: {exc.message}") from None
            yield ks
        finally:
            ks.close()

    def _refuse_changed_specs(self, loaded: Sequence[LoadedSpec], baselines: Baselines) -> None:
        """Under strict-baselines, a baseline of another spec version (by meaning) is refused before
        anything runs; other fingerprint differences are judged with the results."""
        if not self.policy.strict_baselines or self.policy.allow_fingerprint_mismatch:
            return
        for item in loaded:
            base = baselines.runs.get(item.spec.id)
            change = spec_change(base, item, uploaded_sha256(item)) if base is not None else None
            if change:
                raise GateInputError(
                    f"invalid baseline for {item.spec.id} (strict-baselines): it ran another version of "
                    f"the spec ({baselines.sources[item.spec.id]}: {change}); run a new baseline, or leave "
                    "strict-baselines off to compare scenario by scenario"
                )

    # -- experiments --------------------------------------------------------------------------------

    def _run_all(
        self,
        ks: Keystone,
        loaded: Sequence[LoadedSpec],
        baselines: Baselines,
        unchanged: Mapping[str, str],
        deadline: float,
    ) -> list[SpecRun]:
        """Every spec's run, except those in `unchanged` (changed-only), which run nothing."""
        runs: list[SpecRun] = []
        lost: str | None = None
        for item in loaded:
            spec_id = item.spec.id
            if spec_id in unchanged:
                runs.append(_spec_run(spec_id, baselines, None, None))
                continue
            if lost is not None:
                runs.append(_spec_run(spec_id, baselines, None, f"not run: {lost}"))
                continue
            try:
                candidate, problem = self._run_spec(ks, item, deadline)
            except APIConnectionError as exc:
                lost = f"lost the Keystone server: {exc.message}"
                candidate, problem = None, lost
            except KeystoneError as exc:
                candidate, problem = None, f"the Keystone server refused the run: {exc.message}"
            runs.append(_spec_run(spec_id, baselines, candidate, problem))
        return runs

    def _run_spec(self, ks: Keystone, item: LoadedSpec, deadline: float) -> tuple[RunResults, str | None]:
        spec_id = item.spec.id
        spec = ks.specs.create(item.text, source_dir=item.spec_dir)
        experiment = self._experiment(ks, item, spec.id)
        self.err.print(
            f"[{spec_id}] experiment {experiment.id} ({experiment.status or 'created'})", markup=False
        )
        key = idempotency_key(self.ci.run_key, spec_id) + "-run" if self.ci.run_key else None
        with contextlib.suppress(ConflictError):  # already queued, running or finished
            ks.experiments.run(experiment.id, idempotency_key=key)
        return self._results(ks, item, experiment.id, deadline)

    def _results(
        self, ks: Keystone, item: LoadedSpec, experiment_id: str, deadline: float
    ) -> tuple[RunResults, str | None]:
        """The experiment's results once it finished, and what went wrong if it did not complete."""
        problem = None
        try:
            results = ks.experiments.wait(
                experiment_id,
                timeout=max(1.0, deadline - time.monotonic()),
                stream=self.config.follow == "stream",
                poll_interval=POLL_INTERVAL_S,
                on_event=_Progress(self.err, item.spec.id),
            )
        except TimeoutError:
            results = ks.experiments.get(experiment_id)
            problem = f"did not finish within the timeout ({self.config.timeout:g}s)"
        if problem is None and results.status and results.status != "completed":
            problem = f"experiment {experiment_id} {results.status}: {results.error or 'no results'}"
        assert item.path is not None  # loaded from files
        name_spec_file(results, item.path)
        return results, problem

    def _run_evals(self, ks: Keystone, paths: Sequence[Path]) -> list[SpecRun]:
        """Each eval file's Evals, recorded through `ks` with the CI tags and an Idempotency-Key derived
        from the CI run like a spec experiment's; one run per Eval (its name in the place of a spec id),
        without a baseline yet."""
        runs: list[SpecRun] = []
        for path in paths:
            self.err.print(f"[{path}] running its evals", markup=False)
            try:
                results = run_eval_file(
                    path,
                    ks=ks,
                    metadata=self.ci.tags(),
                    idempotency_key=lambda name: self._eval_key(ks, name),
                )
            except EvalFileError as exc:
                self.err.print(self.redact(exc.describe()), markup=False)
                raise InvalidSpecsError([Problem(message=str(exc), file=str(path), line=exc.line)]) from None
            except KeystoneError as exc:
                raise GateInfrastructureError(f"{path}: the Keystone server failed: {exc.message}") from None
            for result in results:
                candidate = result.run_results
                if candidate is not None:
                    name_spec_file(candidate, path)
                self.err.print(
                    f"[{result.name}] experiment {result.experiment_id}: {result.passed} of "
                    f"{len(result.cases)} cases passed",
                    markup=False,
                )
                problem = None if candidate is not None else "the eval was not recorded"
                runs.append(SpecRun(result.name, candidate, problem=problem, grows=False))
        return runs

    def _eval_key(self, ks: Keystone, name: str) -> str | None:
        """The Idempotency-Key of this job attempt's experiment of the Eval `name`; None (a fresh one)
        when the attempt already completed one: its cases run again in this process, so they are a new
        run (the key would answer the completed experiment, which takes no more cases)."""
        run_key = self.ci.run_key
        if not run_key:
            return None
        done = ks.experiments.list(spec_id=name, status="completed", metadata={"ci_run": run_key}, limit=1)
        if done:
            self.err.print(
                f"[{name}] this job attempt already completed experiment {done[0].id}: recording a new one",
                markup=False,
            )
            return None
        return idempotency_key(run_key, name)

    # -- adaptive replicas --------------------------------------------------------------------------

    def _grow(
        self, ks: Keystone, loaded: Sequence[LoadedSpec], runs: list[SpecRun], deadline: float
    ) -> tuple[list[SpecRun], GateVerdict]:
        """Decide look by look, growing the undecided scenarios' experiments between looks."""

        def grow(runs: list[SpecRun], wanted: Mapping[str, list[str]], target: int) -> str | None:
            return self._more_replicas(ks, loaded, runs, wanted, target, deadline)

        return decide_adaptively(runs, self.policy, grow)

    def _more_replicas(
        self,
        ks: Keystone,
        loaded: Sequence[LoadedSpec],
        runs: list[SpecRun],
        wanted: Mapping[str, list[str]],
        target: int,
        deadline: float,
    ) -> str | None:
        """Grow each spec's undecided scenarios to `target` replicas and replace its run with the new
        results; None when all grew, else why not (the runs keep what they had)."""
        items = {item.spec.id: item for item in loaded}
        for position, run in enumerate(runs):
            scenarios = wanted.get(run.spec_id)
            if not scenarios or run.candidate is None or not run.grows:
                continue
            if time.monotonic() >= deadline:
                return f"the timeout ({self.config.timeout:g}s) ran out"
            item, experiment_id = items[run.spec_id], run.candidate.experiment_id
            self.err.print(
                f"[{run.spec_id}] undecided: {', '.join(scenarios)}; growing to {target} replicas each",
                markup=False,
            )
            key = (
                f"{idempotency_key(self.ci.run_key, run.spec_id)}-grow-{target}" if self.ci.run_key else None
            )
            try:
                ks.experiments.extend(
                    experiment_id,
                    dict.fromkeys(scenarios, target),
                    spec_path=item.path,
                    idempotency_key=key,
                )
                candidate, problem = self._results(ks, item, experiment_id, deadline)
            except KeystoneError as exc:
                return f"the Keystone server did not run more replicas: {exc.message}"
            if problem is not None:
                return problem
            runs[position] = dataclasses.replace(run, candidate=candidate)
        return None

    def _first_replicas(self, spec_id: str) -> int | None:
        """Replicas per scenario of a new experiment: `replicas`, except on the baseline branch itself
        (`baseline: branch:<name>`, run on <name>, not for a PR), whose runs are the baseline that PRs
        compare with: those run `max-replicas`, since a PR's replicas can tell no more than the baseline's
        allow."""
        baseline = parse_baseline(self.config.baseline)
        on_baseline = baseline == ("branch", self.ci.branch) and not self.ci.pr_number
        if not on_baseline or self.config.replicas == self.config.max_replicas:
            return self.config.replicas
        self.err.print(
            f"[{spec_id}] on {self.ci.branch}, the baseline branch: {self.config.max_replicas} replicas per "
            "scenario (max-replicas), so that PRs can compare with this run",
            markup=False,
        )
        return self.config.max_replicas

    def _experiment(self, ks: Keystone, item: LoadedSpec, spec_id: str) -> Experiment:
        """This job attempt's experiment of the spec: found by its CI-run tag, else created with an
        Idempotency-Key derived from the run (so even concurrent duplicates make one)."""
        run_key = self.ci.run_key
        if run_key:
            found = ks.experiments.list(spec_id=spec_id, metadata={"ci_run": run_key}, limit=1)
            if found:
                self.err.print(
                    f"[{spec_id}] this job attempt already has experiment {found[0].id}: reusing it",
                    markup=False,
                )
                return found[0]
        ci = self.ci
        name = f"gate {spec_id} {ci.branch or 'local'}" + (f"@{ci.commit[:8]}" if ci.commit else "")
        assert item.path is not None  # loaded from files
        return ks.experiments.create(
            name,
            spec_id,
            spec_path=item.path,
            metadata=ci.tags(),
            replicas=self._first_replicas(spec_id),
            concurrency=self.config.concurrency,
            seed=self.config.seed,
            idempotency_key=idempotency_key(run_key, spec_id) if run_key else None,
        )

    # -- comment and console ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _sticky(self, marker: Marker | None = None) -> Iterator[StickyComment | None]:
        """The job's comment on its PR/MR (`self.ci`, with pr-number applied), or None: no PR, no token,
        or comment: off."""
        thread = None
        if self.config.comment != "off":
            thread = thread_for(self.ci, self.config.comment_token)
        if thread is None:
            yield None
            return
        marker = marker or Marker.for_run(self.ci)
        sticky = StickyComment(thread, marker, self.config.comment, self.config.comment_mode)
        try:
            yield sticky
        finally:
            sticky.close()

    def _publish(self, report: GateReport, sticky: StickyComment | None) -> None:
        publish(report, self.config, sticky, self.redact, self.environ, self.err, self.out, self.locate)

    def _comment(self, sticky: StickyComment, body: str) -> None:
        try:
            sticky.post(body)
        except CommentError as exc:
            self.err.print(f"could not write the PR/MR comment: {self.redact(str(exc))}", markup=False)

    def _print(self, verdict: GateVerdict) -> None:
        self.err.print(self.redact(headline(verdict)), markup=False)
        for scenario in verdict.scenarios():
            if scenario.outcome != "passed":
                self.err.print(
                    f"  {LABELS[scenario.outcome]}: {scenario.spec_id} / {scenario.scenario_id}", markup=False
                )
                for reason in scenario.reasons:
                    self.err.print(f"    {self.redact(reason)}", markup=False)
        for spec in verdict.specs:
            if spec.unchanged_since:
                self.err.print(f"  {spec.spec_id}: {unchanged_text(spec)}", markup=False)
            if spec.changes is not None:
                self.err.print(f"  {spec.spec_id}: {self.redact(spec.changes.describe())}", markup=False)
            for problem in [*spec.errors, *spec.reasons, *spec.warnings]:
                self.err.print(f"  {spec.spec_id}: {self.redact(problem)}", markup=False)
        self.err.print(f"exit code {verdict.exit_code}", markup=False)


def _spec_run(
    spec_id: str, baselines: Baselines, candidate: RunResults | None, problem: str | None
) -> SpecRun:
    return SpecRun(spec_id, candidate, problem=problem, **_baseline_fields(spec_id, baselines))


def _baseline_fields(spec_id: str, baselines: Baselines) -> dict[str, Any]:
    """A SpecRun's baseline, its source and notes for this spec (or Eval)."""
    return {
        "baseline": baselines.runs.get(spec_id),
        "baseline_source": baselines.sources.get(spec_id, ""),
        "notes": tuple(baselines.notes.get(spec_id, [])),
    }


def _distinct_names(evals: Sequence[SpecRun], spec_ids: Sequence[str]) -> list[str]:
    """The Evals' names, each once among them and the specs' ids (a verdict is keyed by it)."""
    names: list[str] = []
    for run in evals:
        if run.spec_id in spec_ids or run.spec_id in names:
            raise GateInputError(f"invalid specs: two specs or Evals are named {run.spec_id}")
        names.append(run.spec_id)
    return names


def _named(values: Sequence[str]) -> dict[str, str]:
    return {f"secret-{index}": value for index, value in enumerate(values)}


def _context(config: GateConfig, environ: Mapping[str, str]) -> CiContext:
    """The CI context with the inputs that override it applied. The matrix values join the default
    comment key and run key: GitHub's legs of one job share GITHUB_JOB, so without them they would write
    one comment and find each other's experiments."""
    ci = detect(environ)
    matrix = matrix_values(config.matrix)
    updates: dict[str, object] = {"comment_key": config.comment_key or default_comment_key(ci, matrix)}
    if config.run_key:
        updates["run_key"] = config.run_key
    elif ci.run_key and matrix:
        updates["run_key"] = ":".join([ci.run_key, *matrix])
    if config.pr_number:
        updates["pr_number"] = config.pr_number
    return ci.model_copy(update=updates)


def report_invalid_inputs(
    args: argparse.Namespace | None,
    environ: Mapping[str, str],
    error: GateInputError,
    err: Console,
    out: TextIO,
) -> int:
    """`ks gate` with inputs `resolve` refused: print why, and publish "could not run" with the inputs
    that can be used (so the comment does not keep an earlier verdict); exit 2."""
    err.print(f"invalid input: {error}", markup=False)
    config = resolve_to_report(args, environ)
    if config is None:
        return exit_codes.INVALID_INPUT
    gate = Gate(config, environ, err, out)
    return gate.could_not_run(exit_codes.INVALID_INPUT, [Problem(message=str(error))])


def run_gate(config: GateConfig, environ: Mapping[str, str], err: Console, out: TextIO) -> int:
    """The exit code of one gate run; input and early infrastructure errors are printed and published
    here."""
    gate = Gate(config, environ, err, out)
    try:
        return gate.run()
    except InvalidSpecsError as exc:
        err.print(f"invalid input: {exc}", markup=False)
        return gate.could_not_run(exit_codes.INVALID_INPUT, exc.problems)
    except (GateInputError, ReportError, SecretError) as exc:
        err.print(f"invalid input: {exc}", markup=False)
        return gate.could_not_run(exit_codes.INVALID_INPUT, [Problem(message=str(exc))])
    except GateInfrastructureError as exc:
        err.print(f"infrastructure error: {exc}", markup=False)
        return gate.could_not_run(exit_codes.INFRASTRUCTURE, [Problem(message=str(exc))])
    except KeystoneError as exc:  # the server failed a call before any experiment ran (e.g. a baseline's)
        message = f"the Keystone server failed: {exc.message}"
        err.print(f"infrastructure error: {message}", markup=False)
        return gate.could_not_run(exit_codes.INFRASTRUCTURE, [Problem(message=message)])
