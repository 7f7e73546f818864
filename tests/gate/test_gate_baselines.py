"""Baselines that survive spec edits: the semantic spec fingerprint, what the gate says changed, how new
scenarios and redefined invariants are judged, and strict-baselines."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from polarity_keystone.gate import GateReport, Policy, SpecRun, decide
from polarity_keystone.gate._junit import render_junit
from polarity_keystone.gate._summary import render
from polarity_keystone.results import RunResults
from polarity_keystone.spec import SEMANTIC_KEY, parse_spec, semantic_fingerprint
from tests.examples.shipped_examples import EXAMPLES
from tests.gate.gate_env import gate
from tests.gate.gate_results import FINGERPRINT, run

HELLO = EXAMPLES / "hello-world"
SPEC_TEXT = (HELLO / "hello.yaml").read_text()

REFORMATTED = (
    "# The same spec, written differently: comments, key order, quoting, flow style.\n"
    + yaml.safe_dump(yaml.safe_load(SPEC_TEXT), sort_keys=True, default_flow_style=True, width=60)
    + "# a trailing comment\n"
)


def changed(text: str) -> str:
    """The hello spec with `tidy` added, `hello_file_correct` redefined and a matrix of two scenarios."""
    text = text.replace('contains: "Hello, World!"', 'contains: "Hello"')
    tidy = "  tidy:\n    check: {type: file_absent, path: junk.txt}\nscoring:\n"
    return text.replace("scoring:\n", tidy) + "parallelism:\n  matrix:\n    greeting: [plain, loud]\n"


def fingerprint(text: str) -> dict[str, Any]:
    """The run fingerprint's spec keys for `text`, as the engine records them."""
    loaded = parse_spec(text, "hello.yaml", HELLO)
    return {**FINGERPRINT, "spec_sha256": loaded.sha256, **semantic_fingerprint(loaded.spec)}


def runs(base: dict[str, str], base_text: str, now: dict[str, str], now_text: str) -> SpecRun:
    baseline = run(base, fingerprint=fingerprint(base_text), experiment_id="exp-base")
    return SpecRun("spec", run(now, fingerprint=fingerprint(now_text)), baseline, "file base.json")


def test_comments_order_quoting_and_formatting_leave_the_semantic_fingerprint_alone() -> None:
    before, after = fingerprint(SPEC_TEXT), fingerprint(REFORMATTED)
    assert before["spec_sha256"] != after["spec_sha256"]
    assert before[SEMANTIC_KEY] == after[SEMANTIC_KEY]
    assert before["spec_parts"] == after["spec_parts"]
    edited = fingerprint(SPEC_TEXT.replace("weight: 1.0\n    gate: true", "weight: 2.0\n    gate: true"))
    assert edited[SEMANTIC_KEY] != before[SEMANTIC_KEY]
    invariants = (before["spec_parts"], edited["spec_parts"])
    assert [parts["invariants"]["hello_file_correct"] for parts in invariants] == [
        invariants[0]["invariants"]["hello_file_correct"]
    ] * 2
    assert len({parts["invariants"]["hello_file_exists"] for parts in invariants}) == 2


def test_a_reformatted_spec_is_compared_as_before_even_under_strict_baselines() -> None:
    strict = Policy(strict_baselines=True)
    same = decide([runs({"s": "P" * 10}, SPEC_TEXT, {"s": "P" * 5 + "F" * 5}, SPEC_TEXT)], strict)
    edited = decide([runs({"s": "P" * 10}, SPEC_TEXT, {"s": "P" * 5 + "F" * 5}, REFORMATTED)], strict)
    assert (edited.verdict, edited.exit_code) == (same.verdict, same.exit_code) == ("regressed", 1)
    assert edited.specs[0].changes is None and edited.specs[0].notes == same.specs[0].notes == []
    assert edited.scenarios()[0].reasons == same.scenarios()[0].reasons


def test_an_added_scenario_is_judged_by_thresholds_only_and_listed() -> None:
    spec = runs(
        {"greeting=plain": "PPPP"},
        SPEC_TEXT,
        {"greeting=plain": "PPPP", "greeting=loud": "PPFF"},
        changed(SPEC_TEXT),
    )
    verdict = decide([spec], Policy())
    assert (verdict.verdict, verdict.exit_code) == ("passed", 0)
    plain, loud = verdict.scenarios()
    assert plain.comparison is not None and loud.comparison is None and loud.outcome == "passed"
    changes = verdict.specs[0].changes
    assert changes is not None and changes.scenarios_added == ["greeting=loud"]
    assert "scenarios added (judged by thresholds only): greeting=loud" in changes.describe()
    with_threshold = decide([spec], Policy(min_pass_rate=0.8))
    assert with_threshold.exit_code == 1
    assert with_threshold.specs[0].reasons == ["pass rate 6/8 (75%, CI 41%-93%) is below min-pass-rate 80%"]
    broken = decide([runs({"a": "PPPP"}, SPEC_TEXT, {"a": "PPPP", "b": "FFFF"}, SPEC_TEXT)], Policy())
    assert broken.scenarios()[1].outcome == "threshold_failed"  # a gate invariant failed in every replica
    removed = decide([runs({"a": "PPPP", "b": "PPPP"}, SPEC_TEXT, {"a": "PPPP"}, SPEC_TEXT)], Policy())
    assert removed.specs[0].changes is not None and removed.specs[0].changes.scenarios_removed == ["b"]
    assert removed.specs[0].changes.describe() == "runs differ since the baseline: scenarios removed: b"


def test_changed_invariants_and_parts_are_named_in_the_verdict_and_the_summary() -> None:
    verdict = decide([runs({"s": "PPPP"}, SPEC_TEXT, {"s": "PPPP"}, changed(SPEC_TEXT))], Policy())
    assert (verdict.verdict, verdict.exit_code) == ("passed", 0)
    changes = verdict.specs[0].changes
    assert changes is not None and changes.spec_changed and not changes.unknown
    assert (changes.invariants_changed, changes.invariants_added, changes.invariants_removed) == (
        ["hello_file_correct"],
        ["tidy"],
        [],
    )
    assert changes.sections == ["parallelism"]
    assert changes.describe() == (
        "spec changed since the baseline: invariants changed: hello_file_correct; invariants added: tidy; "
        "also changed: parallelism"
    )
    summary = render(GateReport(verdict=verdict))
    assert f"🔀 **spec**: {changes.describe()}" in summary
    junit = ET.fromstring(render_junit(verdict))
    property_ = junit.find("testsuite/properties/property[@name='baseline_changes']")
    assert property_ is not None and property_.get("value") == changes.describe()


def test_a_redefined_gate_invariant_is_judged_without_the_baselines_figures() -> None:
    """`task_done` passed in every baseline replica; redefined, its failure now is newly broken even
    though a baseline figure for the old definition exists (and would be paired with it otherwise)."""
    base = dict(FINGERPRINT, spec_semantic_sha256="1", spec_parts={"invariants": {"task_done": "a"}})
    now = dict(FINGERPRINT, spec_semantic_sha256="2", spec_parts={"invariants": {"task_done": "b"}})
    baseline = run({"s": "PPPP"}, fingerprint=base, experiment_id="exp-base")
    verdict = decide([SpecRun("spec", run({"s": "FFFF"}, fingerprint=now), baseline)], Policy())
    (task_done,) = [stat for stat in verdict.scenarios()[0].invariants if stat.name == "task_done"]
    assert task_done.baseline is None
    unchanged = decide([SpecRun("spec", run({"s": "FFFF"}, fingerprint=base), baseline)], Policy())
    (paired,) = [stat for stat in unchanged.scenarios()[0].invariants if stat.name == "task_done"]
    assert paired.baseline is not None and paired.baseline.passed == 4


def test_strict_baselines_refuse_a_changed_spec_unless_allowed() -> None:
    spec = runs({"s": "P" * 10}, SPEC_TEXT, {"s": "P" * 5 + "F" * 5}, changed(SPEC_TEXT))
    assert decide([spec], Policy()).verdict == "regressed"  # compared by default
    refused = decide([spec], Policy(strict_baselines=True))
    assert (refused.verdict, refused.exit_code, refused.specs[0].refused) == ("error", 2, True)
    assert refused.specs[0].errors == [
        "refused to compare (strict-baselines): spec changed since the baseline: invariants changed: "
        "hello_file_correct; invariants added: tidy; also changed: parallelism; run a new baseline, or "
        "leave strict-baselines off to compare scenario by scenario"
    ]
    allowed = decide([spec], Policy(strict_baselines=True, allow_fingerprint_mismatch=True))
    assert allowed.verdict == "regressed"
    images = dict(FINGERPRINT, service_images={"db": "sha256:2"})
    other_images = runs({"s": "PPPP"}, SPEC_TEXT, {"s": "PPPP"}, SPEC_TEXT)
    other_images = SpecRun("spec", run({"s": "PPPP"}, fingerprint=images), other_images.baseline)
    assert decide([other_images], Policy(strict_baselines=True)).exit_code == 2


def test_a_baseline_from_before_semantic_fingerprints_is_compared_by_its_text() -> None:
    legacy = {key: value for key, value in fingerprint(SPEC_TEXT).items() if not key.startswith("spec_")}
    old = run({"s": "PPPP"}, fingerprint={**legacy, "spec_sha256": fingerprint(SPEC_TEXT)["spec_sha256"]})
    same = decide([SpecRun("spec", run({"s": "PPPP"}, fingerprint=fingerprint(SPEC_TEXT)), old)], Policy())
    assert same.specs[0].changes is None
    edited = run({"s": "PPPP"}, fingerprint=fingerprint(REFORMATTED))
    compared = decide([SpecRun("spec", edited, old)], Policy())
    changes = compared.specs[0].changes
    assert compared.exit_code == 0 and changes is not None and changes.unknown
    assert "what changed is unknown" in changes.describe()
    assert decide([SpecRun("spec", edited, old)], Policy(strict_baselines=True)).exit_code == 2


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(HELLO, tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def baseline_file(workdir: Path, text: str) -> None:
    results = run({"hello-world": "PPPP"}, spec_id="hello-world", fingerprint=fingerprint(text))
    (workdir / "base.json").write_text(results.model_dump_json())


def test_ks_gate_with_strict_baselines_exits_2_before_a_sandbox_boots(workdir: Path) -> None:
    baseline_file(workdir, changed(SPEC_TEXT))
    environ = {"KEYSTONE_STRICT_BASELINES": "true"}
    result = gate(workdir, environ, "--specs", "specs/hello.yaml", "--baseline", "file:base.json")
    assert result.code == 2, result.log
    assert (
        "invalid input: invalid baseline for hello-world (strict-baselines): it ran another version of the "
        "spec (file base.json: spec_semantic_sha256 " in result.log
    )
    assert "run a new baseline, or leave strict-baselines off" in result.log
    assert "experiment exp-" not in result.log  # nothing was created


@pytest.mark.docker
def test_a_commented_and_reformatted_spec_keeps_the_gates_decision(workdir: Path) -> None:
    """Through the real gate and real sandboxes: the baseline run of the hello spec, then the same spec
    reformatted with comments, gated against it under strict-baselines: compared, same decision."""
    flags = ("--specs", "specs/hello.yaml", "--replicas", "2", "--comment", "off")
    first = gate(workdir, {}, *flags)
    assert first.code == 0, first.log
    shutil.copy(workdir / "keystone-results.json", workdir / "base.json")
    (workdir / "specs" / "hello.yaml").write_text(REFORMATTED)
    second = gate(workdir, {}, *flags, "--baseline", "file:base.json", "--strict-baselines")
    assert second.code == 0, second.log
    before, after = (RunResults.model_validate(r["runs"][0]) for r in (first.results, second.results))
    assert before.fingerprint["spec_sha256"] != after.fingerprint["spec_sha256"]
    assert before.fingerprint[SEMANTIC_KEY] == after.fingerprint[SEMANTIC_KEY]
    (spec,) = second.results["verdict"]["specs"]
    assert (spec["outcome"], spec["changes"], spec["baseline"]["total"]) == ("passed", None, 2)
    assert "changed since the baseline" not in second.log
