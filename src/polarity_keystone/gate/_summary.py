"""The Markdown report: the GitHub job summary, the summary file, and the body of the PR/MR comment.

Problems first (what blocked, with the numbers behind it and the command that replays a failure), the
full table folded below. Text from runs (reasons quote agent output and check evidence) is escaped for
tables and cut to a bounded length, so one chatty agent cannot break the layout or the comment limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

from ._problems import MAX_PROBLEMS
from ._report import GateReport
from ._verdict import GateVerdict, Outcome, Rate, ScenarioVerdict, SpecVerdict, Test

ICONS: dict[Outcome, str] = {
    "passed": "✅",
    "regressed": "❌",
    "threshold_failed": "❌",
    "inconclusive": "⚠️",
    "error": "💥",
}
LABELS: dict[Outcome, str] = {
    "passed": "passed",
    "regressed": "regressed",
    "threshold_failed": "threshold failed",
    "inconclusive": "inconclusive",
    "error": "error",
}
MAX_TEXT = 400
"""Longest reason or note shown (characters)."""
MAX_ROWS = 200
"""Scenarios listed in the full table; the rest are counted."""
MAX_BODY = 60_000
"""GitHub refuses comments over 65,536 characters; GitLab notes allow 1,000,000."""


def clip(text: str, limit: int = MAX_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cell(text: str) -> str:
    return clip(text).replace("|", "\\|")


def rate_text(rate: Rate | None) -> str:
    return rate.describe() if rate is not None else "—"


def unchanged_text(spec: SpecVerdict) -> str:
    """What a spec the changed-paths filter skipped says instead of a verdict."""
    return f"unchanged since {spec.unchanged_since[:12]}, not re-run"


def headline(verdict: GateVerdict) -> str:
    """One sentence: what the gate decided and why."""
    scenarios = verdict.scenarios()
    counted = {outcome: sum(s.outcome == outcome for s in scenarios) for outcome in LABELS}
    parts = [f"{count} {LABELS[outcome]}" for outcome, count in counted.items() if count]
    what = f"{len(scenarios)} scenario(s) in {len(verdict.specs)} spec(s)" + (
        f": {', '.join(parts)}" if parts else ""
    )
    unchanged = sum(bool(spec.unchanged_since) for spec in verdict.specs)
    what += f"; {unchanged} spec(s) unchanged since the baseline, not re-run" if unchanged else ""
    suite = verdict.suite if len(scenarios) > 1 else None  # with one scenario, the suite is that scenario
    if verdict.suite_outcome == "regressed" and suite is not None:
        what += f"; suite pass rate {suite.baseline.rate:.0%} -> {suite.candidate.rate:.0%} (significant)"
    elif verdict.suite_outcome == "inconclusive" and suite is not None:
        what += (
            f"; suite pass rate {suite.baseline.rate:.0%} -> {suite.candidate.rate:.0%} is not significant, "
            f"about {suite.replicas_needed} replicas per scenario would tell"
        )
    blocking = "" if verdict.exit_code or verdict.verdict == "passed" else " (not blocking)"
    return f"Keystone gate {LABELS[verdict.verdict]}{blocking}: {what}"


def _test_text(test: Test | None) -> str:
    if test is None:
        return "—"
    return f"{-test.drop:+.0%} (p={test.p_value:.2g}, adj. {test.p_adjusted:.2g})"


def _evidence(text: str) -> list[str]:
    """The agent's exit code as a list item, its last output lines in a code block under it (fenced with
    more backticks than the output holds, so the output cannot close the block)."""
    head, _, output = text.partition("\n")
    lines = [f"  - {clip(head)}"]
    if output:
        longest = max((len(run) for run in re.findall(r"`+", output)), default=0)
        fence = "`" * max(3, longest + 1)
        lines += [f"    {fence}", *(f"    {line}" for line in output.splitlines()), f"    {fence}"]
    return lines


def _attention(scenarios: Iterable[ScenarioVerdict]) -> list[str]:
    lines = []
    for s in scenarios:
        if s.outcome == "passed":
            continue
        lines.append(f"- {ICONS[s.outcome]} **{s.spec_id} / {s.scenario_id}** — {LABELS[s.outcome]}")
        lines += [f"  - {clip(reason)}" for reason in s.reasons]
        if s.evidence:
            lines += _evidence(s.evidence)
        if s.replay and s.outcome != "inconclusive":
            lines.append(f"  - replay a failure: `{clip(s.replay, 300)}`")
    return lines


def _scenario_table(scenarios: list[ScenarioVerdict]) -> list[str]:
    lines = [
        f"<details><summary>All scenarios ({len(scenarios)})</summary>",
        "",
        "| Scenario | Verdict | Pass rate | Baseline | Change |",
        "|---|---|---|---|---|",
    ]
    for s in scenarios[:MAX_ROWS]:
        baseline = s.comparison.baseline if s.comparison else None
        lines.append(
            f"| {cell(s.spec_id + ' / ' + s.scenario_id)} | {ICONS[s.outcome]} {LABELS[s.outcome]} | "
            f"{rate_text(s.candidate)} | {rate_text(baseline)} | {_test_text(s.comparison)} |"
        )
    if len(scenarios) > MAX_ROWS:
        lines.append(f"| … and {len(scenarios) - MAX_ROWS} more | | | | |")
    return [*lines, "", "</details>"]


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def _cost_changes(scenarios: list[ScenarioVerdict]) -> list[str]:
    """Mean cost per run of each scenario whose cost is known, against the baseline's where it has one."""
    costed = [
        s
        for s in scenarios
        if s.mean_cost_per_run_usd is not None or s.baseline_mean_cost_per_run_usd is not None
    ]
    lines = []
    for s in costed[:MAX_ROWS]:
        before, after = s.baseline_mean_cost_per_run_usd, s.mean_cost_per_run_usd
        change = f" ({(after - before) / before:+.1%})" if before and after is not None else ""
        shown = _usd(after) if before is None else f"{_usd(before)} → {_usd(after)}{change}"
        lines.append(f"- {s.spec_id} / {s.scenario_id}: {shown}")
    if len(costed) > MAX_ROWS:
        lines.append(f"- … and {len(costed) - MAX_ROWS} more")
    return ["", "#### Mean cost per run (baseline → candidate)", "", *lines] if lines else []


COULD_NOT_RUN = {2: "invalid input", 3: "infrastructure error"}
"""What stopped a run that could not decide, by exit code."""


def could_not_run(report: GateReport) -> str:
    """One sentence for a run that could not decide: what stopped it and its first error."""
    code = report.verdict.exit_code
    first = report.problems[0].describe() if report.problems else ""
    more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
    return f"Keystone gate could not run: {COULD_NOT_RUN.get(code, 'error')} (exit {code}): {first}{more}"


def _render_could_not_run(report: GateReport) -> str:
    code = report.verdict.exit_code
    lines = [f"### ❗ Keystone gate could not run: {COULD_NOT_RUN.get(code, 'error')} (exit {code})", ""]
    for problem in report.problems[:MAX_PROBLEMS]:
        where = f"`{clip(problem.where(), 300)}`: " if problem.where() else ""
        lines.append(f"- {where}{clip(problem.message)}")
    if len(report.problems) > MAX_PROBLEMS:
        lines.append(f"- … and {len(report.problems) - MAX_PROBLEMS} more: see the job's log")
    link = f" · [CI run]({report.ci.run_url})" if report.ci.run_url else ""
    lines += ["", f"<sub>Keystone {report.keystone_version}{link}</sub>"]
    return "\n".join(lines) + "\n"


def _experiment_cell(experiment_id: str, dashboard: str | None) -> str:
    if not experiment_id:
        return "—"
    if dashboard is None:
        return cell(experiment_id)
    return f"[{cell(experiment_id)}]({dashboard}/ui/experiments/{quote(experiment_id, safe='')})"


def render(report: GateReport, dashboard: str | None = None) -> str:
    """The Markdown of `report`; with a `dashboard` URL each spec's experiment links to its page there."""
    if report.problems:
        return _render_could_not_run(report)
    verdict = report.verdict
    lines = [f"### {ICONS[verdict.verdict]} {clip(headline(verdict), 1000)}", ""]
    lines += ["| Spec | Verdict | Pass rate | Baseline | Experiment |", "|---|---|---|---|---|"]
    for spec in verdict.specs:
        source = f" ({cell(spec.baseline_source)})" if spec.baseline_source else ""
        experiment = _experiment_cell(spec.experiment_id, dashboard)
        said = f"{ICONS[spec.outcome]} {LABELS[spec.outcome]}"
        said = f"⏭️ {unchanged_text(spec)}" if spec.unchanged_since else said
        lines.append(
            f"| {cell(spec.spec_id)} | {said} | "
            f"{rate_text(spec.candidate)} | {rate_text(spec.baseline)}{source} | {experiment} |"
        )
    for spec in verdict.specs:
        lines += ["", f"🔀 **{spec.spec_id}**: {clip(spec.changes.describe())}"] if spec.changes else []
        lines += [line for warning in spec.warnings for line in ("", f"⚠️ **{spec.spec_id}**: {warning}")]
    if verdict.suite is not None and len(verdict.scenarios()) > 1:
        suite = verdict.suite
        lines += [
            "",
            f"**All scenarios together:** {rate_text(suite.baseline)} → {rate_text(suite.candidate)}, "
            f"change {_test_text(suite)}: {LABELS[verdict.suite_outcome]}",
        ]
    problems = [f"- 💥 **{spec.spec_id}**: {clip(error)}" for spec in verdict.specs for error in spec.errors]
    problems += [
        f"- ❌ **{spec.spec_id}**: {clip(reason)}" for spec in verdict.specs for reason in spec.reasons
    ]
    problems += _attention(verdict.scenarios())
    if problems:
        lines += ["", "#### Needs attention", "", *problems]
    lines += ["", *_scenario_table(verdict.scenarios())]
    lines += _cost_changes(verdict.scenarios())
    notes = [f"- {spec.spec_id}: {clip(note)}" for spec in verdict.specs for note in spec.notes]
    if notes:
        lines += ["", "<details><summary>Notes</summary>", "", *notes, "", "</details>"]
    policy = verdict.policy
    settings = (
        f"alpha {policy.get('alpha')}, min-effect {policy.get('min_effect')}, "
        f"correction {policy.get('correction')}, inconclusive {policy.get('inconclusive')}, "
        f"fail-on {','.join(policy.get('fail_on', [])) or 'none'}"
    )
    if "max_replicas" in policy:  # results of earlier versions do not say
        settings += f", max-replicas {policy['max_replicas']}"
    link = f" · [CI run]({report.ci.run_url})" if report.ci.run_url else ""
    lines += ["", f"<sub>Keystone {report.keystone_version} · {settings}{link}</sub>"]
    text = "\n".join(lines) + "\n"
    if len(text) > MAX_BODY:
        text = text[: MAX_BODY - 200] + "\n\n… (cut: the full report is in the job's artifacts)\n"
    return text


def running(specs: Iterable[str], run_url: str) -> str:
    link = f" ([CI run]({run_url}))" if run_url else ""
    return f"### ⏳ Keystone gate is running{link}\n\nSpecs: {', '.join(f'`{s}`' for s in specs)}\n"
