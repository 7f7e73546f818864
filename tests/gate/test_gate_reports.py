"""What the gate writes: JUnit, Markdown, outputs, annotations and the versioned results JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from polarity_keystone.gate import GateReport, Policy, ReportError, SpecRun, decide, read_report, read_runs
from polarity_keystone.gate._junit import render_junit
from polarity_keystone.gate._outputs import (
    MAX_ANNOTATIONS,
    annotation_lines,
    outputs,
    write_dotenv,
    write_github_output,
)
from polarity_keystone.gate._report import write_report
from polarity_keystone.gate._summary import MAX_BODY, render
from polarity_keystone.sdk import ExperimentResults
from polarity_keystone.secrets import Redactor
from tests.gate.gate_results import run

NO_SECRETS = Redactor({})


def mixed_verdict():  # type: ignore[no-untyped-def]
    """Spec `spec`: s-reg regressed, s-err errored, s-flaky inconclusive (p = 0.024 alone, not among the
    five hypotheses that could be significant: s-err, which passed every judged replica, could not), s-ok
    and s-ok2 passed; spec `other`: a forbidden violation (threshold failed)."""
    same = {"s-ok": "PPFF", "s-ok2": "PPFF"}
    baseline = run({"s-reg": "P" * 10, "s-err": "PPPP", "s-flaky": "PPPPP", **same}, experiment_id="exp-b")
    candidate = run({"s-reg": "F" * 10, "s-err": "PPPE", "s-flaky": "PFFFF", **same})
    other = run({"t": "PP"}, spec_id="other", experiment_id="exp-o", forbidden={"t": "http_except"})
    return decide([SpecRun("spec", candidate, baseline, "file base.json"), SpecRun("other", other)], Policy())


def test_junit_has_a_suite_per_spec_and_maps_outcomes() -> None:
    verdict = mixed_verdict()
    assert [s.outcome for s in verdict.scenarios()] == [
        "regressed",
        "error",
        "inconclusive",
        "passed",
        "passed",
        "threshold_failed",
    ]
    root = ET.fromstring(render_junit(verdict))
    suites = {suite.get("name"): suite for suite in root.iter("testsuite")}
    assert list(suites) == ["spec", "other", "keystone-gate"]
    cases = {case.get("name"): case for case in suites["spec"].iter("testcase")}
    assert cases["s-reg"].find("failure") is not None
    assert "task_done 10/10 (100%, CI 72%-100%) -> 0/10" in cases["s-reg"].find("failure").get("message", "")  # type: ignore[union-attr]
    assert cases["s-err"].find("error") is not None
    assert cases["s-flaky"].find("skipped") is not None
    assert list(cases["s-ok"]) == [cases["s-ok"].find("system-out")]
    other = suites["other"].find("testcase")
    assert other is not None and other.find("failure") is not None
    assert "forbidden http_except: violated in 1 of 2 replicas" in (other.find("failure").text or "")  # type: ignore[union-attr]
    assert suites["spec"].find("properties/property").get("value") != ""  # type: ignore[union-attr]


def test_the_markdown_puts_problems_first_and_escapes_table_cells() -> None:
    verdict = mixed_verdict()
    verdict.specs[0].scenarios[3].scenario_id = "a|b"
    text = render(GateReport(verdict=verdict))
    assert text.startswith("### ❌ Keystone gate regressed: 6 scenario(s) in 2 spec(s)")
    attention = text.index("#### Needs attention")
    assert attention < text.index("<details><summary>All scenarios (6)</summary>")
    assert "- ❌ **spec / s-reg** — regressed" in text
    assert "replay a failure: `ks replay spec.yaml --seed 1000`" in text
    assert "spec / a\\|b" in text
    assert "⚠️ inconclusive" in text


def test_the_markdown_stays_under_the_comment_limit() -> None:
    many = {f"scenario-{'x' * 40}-{i}": "PF" for i in range(400)}
    text = render(GateReport(verdict=decide([SpecRun("spec", run(many))], Policy())))
    assert len(text) <= MAX_BODY
    assert "… and 200 more" in text
    long = {f"scenario-{'x' * 400}-{i}": "PF" for i in range(400)}
    cut = render(GateReport(verdict=decide([SpecRun("spec", run(long))], Policy())))
    assert len(cut) <= MAX_BODY
    assert cut.endswith("… (cut: the full report is in the job's artifacts)\n")


def test_annotations_are_escaped_and_capped() -> None:
    verdict = mixed_verdict()
    verdict.specs[0].scenarios[0].reasons[0] = "line one\nline two 100%"
    lines = annotation_lines(GateReport(verdict=verdict), NO_SECRETS)
    assert lines[0].startswith("::error title=Keystone gate::Keystone gate regressed")
    assert lines[1].endswith("::line one line two 100%25")  # one line; % escaped
    assert lines[1].startswith("::error title=spec / s-reg%3A regressed::")
    many = decide([SpecRun("spec", run({f"s{i}": "E" for i in range(20)}))], Policy())
    capped = annotation_lines(GateReport(verdict=many), NO_SECRETS)
    assert len(capped) == MAX_ANNOTATIONS
    assert capped[-1] == f"::notice::{21 - (MAX_ANNOTATIONS - 1)} more problem(s): see the job summary"


def test_outputs_for_github_and_gitlab(tmp_path: Path) -> None:
    verdict = mixed_verdict()
    values = outputs(verdict, Path("out/results.json"), "https://github.test/c/1")
    assert values == {
        "verdict": "regressed",
        "exit-code": "1",
        "pass-rate": f"{(0 + 3 + 1 + 2 + 2 + 2) / (10 + 3 + 5 + 4 + 4 + 2):.4f}",
        "experiment-id": "exp-candidate,exp-o",
        "results-json": "out/results.json",
        "comment-url": "https://github.test/c/1",
        "passed": "2",
        "failed": "2",
        "errored": "1",
        "inconclusive": "1",
        "skipped": "0",
    }
    github_output = tmp_path / "out.txt"
    write_github_output(github_output, {**values, "verdict": "two\nlines"}, NO_SECRETS)
    text = github_output.read_text()
    assert "exit-code=1\n" in text
    delimiter = text.split("verdict<<", 1)[1].split("\n", 1)[0]
    assert f"verdict<<{delimiter}\ntwo\nlines\n{delimiter}\n" in text
    write_dotenv(tmp_path / "gate.env", values, Redactor({"url": "github.test"}))
    dotenv = (tmp_path / "gate.env").read_text().splitlines()
    assert dotenv[0] == "KEYSTONE_VERDICT=regressed"
    assert "KEYSTONE_COMMENT_URL=https://***/c/1" in dotenv
    assert dotenv[-5:] == [
        "KEYSTONE_PASSED=2",
        "KEYSTONE_FAILED=2",
        "KEYSTONE_ERRORED=1",
        "KEYSTONE_INCONCLUSIVE=1",
        "KEYSTONE_SKIPPED=0",
    ]


def test_a_failed_scenario_is_annotated_at_the_line_of_its_failing_invariant() -> None:
    """A gate invariant that failed is preferred to other failing invariants; where `locate` knows no line
    (or there is no failing invariant, as for a forbidden rule) the annotation has no location."""
    seen: list[tuple[str, str]] = []

    def locate(spec_id: str, invariant: str) -> tuple[str, int | None, int | None] | None:
        seen.append((spec_id, invariant))
        return ("specs/a, b.yaml", 14, 3) if spec_id == "spec" else None

    lines = annotation_lines(GateReport(verdict=mixed_verdict()), NO_SECRETS, locate)
    assert lines[1].startswith(
        "::error file=specs/a%2C b.yaml,line=14,col=3,title=spec / s-reg%3A regressed::"
    )
    forbidden = next(line for line in lines if "other / t" in line)
    assert forbidden.startswith("::error title=other / t%3A threshold failed::")
    assert ("spec", "task_done") in seen and not any(invariant == "tidy_output" for _, invariant in seen)


def test_results_json_round_trips_and_serves_as_a_baseline(tmp_path: Path) -> None:
    verdict = mixed_verdict()
    candidate = run({"s": "PPPP"})
    path = tmp_path / "results.json"
    write_report(path, GateReport(verdict=verdict, runs=[candidate]), Redactor({"k": "exp-candidate"}))
    data = json.loads(path.read_text())
    assert (data["schema_version"], data["kind"]) == (1, "keystone-gate-results")
    assert "exp-candidate" not in path.read_text()
    again = read_report(path)
    assert again.verdict.verdict == "regressed" and again.verdict.exit_code == 1
    assert [r.spec_id for r in read_runs(path)] == ["spec"]
    plain = tmp_path / "plain.json"
    plain.write_text(candidate.model_dump_json())
    assert read_runs(plain)[0].scenarios[0].replicas_passed == 4


def test_a_run_from_the_server_keeps_its_experiment_record_in_the_results_json(tmp_path: Path) -> None:
    record = {"id": "exp-1", "name": "pr-7", "started_at": "2026-12-03T08:00:00Z", "metadata": {"b": "x"}}
    served = ExperimentResults.model_validate({**run({"s": "PP"}).model_dump(), **record})
    path = tmp_path / "results.json"
    write_report(path, GateReport(verdict=mixed_verdict(), runs=[served]), NO_SECRETS)
    written = json.loads(path.read_text())["runs"][0]
    assert {key: written[key] for key in record} == {**record, "started_at": "2026-12-03T08:00:00Z"}


def test_unreadable_or_newer_results_files_are_input_errors(tmp_path: Path) -> None:
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"kind": "keystone-gate-results", "schema_version": 99}))
    with pytest.raises(ReportError, match="schema_version 99"):
        read_report(newer)
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    with pytest.raises(ReportError, match="cannot read"):
        read_runs(junk)
    with pytest.raises(ReportError, match="neither gate results nor RunResults"):
        junk.write_text("[1, 2]")
        read_runs(junk)


@pytest.mark.parametrize(("blocking", "element"), [(True, "failure"), (False, "skipped")])
def test_an_inconclusive_scenario_is_a_junit_failure_when_it_blocks(blocking: bool, element: str) -> None:
    baseline = run({"s": "PPPPP"}, experiment_id="exp-b")
    candidate = run({"s": "PPFFF"})
    verdict = decide([SpecRun("spec", candidate, baseline)], Policy(inconclusive_blocking=blocking))
    assert (verdict.verdict, verdict.exit_code) == ("inconclusive", 4 if blocking else 0)
    case = ET.fromstring(render_junit(verdict)).find("testsuite/testcase")
    assert case is not None and case.find(element) is not None


def test_the_summary_warns_when_nothing_could_block_a_weaker_agent() -> None:
    weaker = run({"s": "PPPPPPPPFF"})
    alone = decide([SpecRun("spec", weaker)], Policy())
    assert alone.exit_code == 0
    text = render(GateReport(verdict=alone))
    assert "⚠️ **spec**: no baseline and no min-pass-rate" in text
    assert "min-pass-rate (e.g. 0.9" in text
    with_bar = decide([SpecRun("spec", weaker)], Policy(min_pass_rate=0.9))
    compared = decide([SpecRun("spec", weaker, run({"s": "P" * 10}, experiment_id="exp-b"))], Policy())
    assert with_bar.exit_code == 1 and not with_bar.specs[0].warnings
    assert not compared.specs[0].warnings
