"""JUnit XML (with the junit-xml package): a testsuite per spec, a testcase per scenario.

regressed / threshold failed -> failure, error -> error, inconclusive -> failure when it blocks (exit 4:
a test tab must not look green while the job fails), skipped when it does not, passed -> pass; a spec
the changed-paths filter did not re-run is one skipped testcase saying since which commit. The
message names what went wrong; the body lists each invariant and forbidden rule with its counts and what
the agent printed on its way out, so a CI test tab shows why without opening the report. A testcase's
`time` is the wall time of all its replicas. The suite-level test (all scenarios together) is its own
testsuite when there is one.
"""

from __future__ import annotations

from pathlib import Path

from junit_xml import TestCase, TestSuite, to_xml_report_string

from .. import exit_codes
from ..secrets import Redactor
from ._summary import LABELS, clip, rate_text, unchanged_text
from ._verdict import GateVerdict, Outcome, ScenarioVerdict, Test

SUITE_NAME = "keystone-gate"


def _details(scenario: ScenarioVerdict) -> str:
    lines = [f"pass rate {rate_text(scenario.candidate)}"]
    if scenario.comparison is not None:
        lines.append(f"baseline {rate_text(scenario.comparison.baseline)}")
    lines += [
        f"invariant {s.name}{' (gate)' if s.gate else ''}: {rate_text(s.candidate)}"
        + (f", baseline {rate_text(s.baseline)}" if s.baseline else "")
        for s in scenario.invariants
    ]
    lines += [
        f"forbidden {f.rule}: violated in {f.violated} of {f.total} replicas" for f in scenario.forbidden
    ]
    lines += scenario.reasons
    if scenario.evidence and scenario.outcome != "passed":
        lines.append(scenario.evidence)
    if scenario.replay:
        lines.append(f"replay: {scenario.replay}")
    return "\n".join(lines)


def _mark(case: TestCase, outcome: Outcome, message: str, output: str, *, blocking: bool) -> None:
    """`blocking`: this run's inconclusive verdict fails the job."""
    if outcome in ("regressed", "threshold_failed") or (outcome == "inconclusive" and blocking):
        case.add_failure_info(message=message, output=output, failure_type=outcome)
    elif outcome == "error":
        case.add_error_info(message=message, output=output, error_type="error")
    elif outcome == "inconclusive":
        case.add_skipped_info(message=message, output=output)


def _case(scenario: ScenarioVerdict, blocking: bool) -> TestCase:
    details = _details(scenario)
    case = TestCase(
        scenario.scenario_id,
        classname=scenario.spec_id,
        elapsed_sec=scenario.wall_ms / 1000,
        stdout=details if scenario.outcome == "passed" else None,
    )
    message = clip(scenario.reasons[0]) if scenario.reasons else LABELS[scenario.outcome]
    _mark(case, scenario.outcome, message, details, blocking=blocking)
    return case


def _suite_case(test: Test, outcome: Outcome, blocking: bool) -> TestCase:
    text = (
        f"all scenarios: {rate_text(test.baseline)} -> {rate_text(test.candidate)}, "
        f"p={test.p_value:.3g} (adjusted {test.p_adjusted:.3g})"
    )
    if test.replicas_needed:
        text += f"; about {test.replicas_needed} replicas per scenario would tell"
    case = TestCase("suite pass rate", classname=SUITE_NAME, stdout=text if outcome == "passed" else None)
    _mark(case, outcome, clip(text), text, blocking=blocking)
    return case


def render_junit(verdict: GateVerdict) -> str:
    suites = []
    blocking = verdict.exit_code == exit_codes.INCONCLUSIVE
    for spec in verdict.specs:
        cases = [_case(scenario, blocking) for scenario in spec.scenarios]
        problems = [*spec.errors, *spec.reasons]
        if spec.unchanged_since:
            case = TestCase("spec", classname=spec.spec_id)
            case.add_skipped_info(message=unchanged_text(spec))
            cases.append(case)
        elif problems or not cases:
            case = TestCase("spec", classname=spec.spec_id)
            own: Outcome = "error" if spec.errors or not cases else "threshold_failed"
            message = clip(problems[0]) if problems else "no scenario ran"
            _mark(case, own, message, "\n".join(problems), blocking=blocking)
            cases.append(case)
        properties = {"experiment_id": spec.experiment_id}
        if spec.changes is not None:
            properties["baseline_changes"] = spec.changes.describe()
        suites.append(TestSuite(spec.spec_id, cases, properties=properties))
    if verdict.suite is not None and len(verdict.scenarios()) > 1:
        suite_case = _suite_case(verdict.suite, verdict.suite_outcome, blocking)
        suites.append(TestSuite(SUITE_NAME, [suite_case]))
    return str(to_xml_report_string(suites, prettyprint=True, encoding="utf-8"))


def write_junit(path: Path, verdict: GateVerdict, redact: Redactor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(render_junit(verdict)), encoding="utf-8")
