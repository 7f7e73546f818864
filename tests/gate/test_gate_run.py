"""`ks gate` without sandboxes: CI detection, checks before anything runs, and the fork-safe publish step."""

from __future__ import annotations

import json
from pathlib import Path

from polarity_keystone.gate import CiContext, GateReport, Policy, SpecRun, decide, detect, idempotency_key
from polarity_keystone.gate._report import write_report
from polarity_keystone.secrets import Redactor
from polarity_keystone.server import ServerSettings, serve_in_thread
from polarity_keystone.store import open_store
from tests.gate.gate_env import gate, github_env
from tests.gate.gate_forges import Forge
from tests.gate.gate_results import FINGERPRINT, run


def test_github_context_from_the_environment(tmp_path: Path) -> None:
    ci = detect(github_env(tmp_path, run_id="77", attempt="2", pr=12))
    assert (ci.provider, ci.repository, ci.branch, ci.pr_number) == ("github", "o/r", "feature", 12)
    assert ci.run_key == "github:o/r:77:2:gate" and ci.run_order == [77, 2]
    assert ci.run_url == "https://github.test/o/r/actions/runs/77"
    assert ci.tags() == {
        "gate": "keystone",
        "ci": "github",
        "repo": "o/r",
        "branch": "feature",
        "commit": "0123456789abcdef",
        "ci_run": "github:o/r:77:2:gate",
        "pr": "12",
    }
    push = detect({"GITHUB_ACTIONS": "true", "GITHUB_REF_NAME": "main", "GITHUB_RUN_ID": "9"})
    assert (push.branch, push.pr_number, push.run_order) == ("main", None, [0, 1])


def test_gitlab_context_from_the_environment() -> None:
    environ = {
        "GITLAB_CI": "true",
        "CI_PROJECT_ID": "42",
        "CI_PROJECT_PATH": "group/project",
        "CI_JOB_ID": "9001",
        "CI_PIPELINE_IID": "311",
        "CI_COMMIT_REF_NAME": "feature",
        "CI_OPEN_MERGE_REQUESTS": "group/project!17,group/project!18",
        "CI_API_V4_URL": "https://gitlab.test/api/v4",
        "CI_PROJECT_URL": "https://gitlab.test/group/project",
        "CI_JOB_NAME": "keystone-gate",
    }
    ci = detect(environ)
    assert (ci.provider, ci.pr_number, ci.run_key, ci.run_order) == (
        "gitlab",
        17,
        "gitlab:42:9001",
        [311, 9001],
    )
    assert detect({**environ, "CI_MERGE_REQUEST_IID": "3"}).pr_number == 3
    assert detect({}).run_key is None


def test_the_idempotency_key_is_stable_per_job_attempt_and_spec() -> None:
    key = idempotency_key("github:o/r:77:1:gate", "hello-world")
    assert key == idempotency_key("github:o/r:77:1:gate", "hello-world")
    assert key != idempotency_key("github:o/r:77:2:gate", "hello-world")
    assert key != idempotency_key("github:o/r:77:1:gate", "other")
    assert key.startswith("ks-gate-") and len(key) < 64


def test_the_fork_safe_step_publishes_an_earlier_verdict_without_running(
    tmp_path: Path, forge: Forge
) -> None:
    """Workflow 2 of the fork-safe pair: it has the write token, the untrusted run's results file and the
    PR number; it comments under the original job's marker and keeps no link from the file."""
    verdict = decide(
        [SpecRun("spec", run({"s": "F" * 8}), run({"s": "P" * 8}, experiment_id="exp-b"))], Policy()
    )
    verdict.specs[0].scenarios[0].reasons.append("the agent printed pat-alice")  # a leaked token value
    ci = CiContext(
        provider="github", job="gate", run_order=[41, 2], run_url="https://evil.test/phish", pr_number=99
    )
    results = tmp_path / "untrusted.json"
    write_report(results, GateReport(verdict=verdict, ci=ci, runs=[]), Redactor({}))
    environ = github_env(tmp_path, pr=1, GITHUB_API_URL=forge.base_url, KEYSTONE_COMMENT_TOKEN="pat-alice")
    result = gate(tmp_path, environ, "--from-results", str(results), "--pr-number", "5")
    assert result.code == 1
    (comment,) = forge.github.values()
    assert comment["body"].startswith(
        "<!-- keystone-gate key=gate order=41.2 state=regressed -->\n### ❌ Keystone gate regressed"
    )
    assert "evil.test" not in comment["body"]
    assert ("POST", "/repos/o/r/issues/5/comments") in forge.writes()
    assert result.outputs["comment-url"].endswith(f"#issuecomment-{comment['id']}")
    assert result.outputs["verdict"] == "regressed"
    assert result.stdout.startswith("::error title=Keystone gate::Keystone gate regressed")
    assert "Keystone gate regressed" in (tmp_path / "step-summary.md").read_text()
    workflow_run = tmp_path / "workflow-run.json"
    workflow_run.write_text(json.dumps({"workflow_run": {"pull_requests": []}}))
    no_pr = {**environ, "GITHUB_EVENT_PATH": str(workflow_run), "GITHUB_REF": "refs/heads/main"}
    assert gate(tmp_path, no_pr, "--from-results", str(results)).code == 1
    assert len(forge.github) == 1  # the file's own PR number (99) is never used
    files = [p.read_text() for p in tmp_path.iterdir() if p.is_file() and p != results]
    assert not [text for text in [comment["body"], result.stdout, result.log, *files] if "pat-alice" in text]


def test_a_refused_api_key_is_invalid_input_before_anything_is_uploaded(
    tmp_path: Path, workdir: Path
) -> None:
    store_url = f"sqlite://{tmp_path / 'server.db'}"
    with serve_in_thread(ServerSettings(store_url=store_url)) as server:
        environ = {"KEYSTONE_BASE_URL": server.url, "KEYSTONE_API_KEY": "ks_live_wrong"}
        result = gate(workdir, environ, "--specs", "specs/hello.yaml")
    assert result.code == 2
    assert f"invalid input: invalid api-key (KEYSTONE_API_KEY): {server.url} refused it" in result.log
    assert "ks_live_wrong" not in result.log
    store = open_store(store_url)
    try:
        assert store.list_specs("default", cursor=None, limit=10).items == []
    finally:
        store.close()


def test_an_unreachable_server_is_an_infrastructure_error(workdir: Path) -> None:
    environ = {"KEYSTONE_BASE_URL": "http://127.0.0.1:9", "KEYSTONE_API_KEY": "ks_live_x"}
    result = gate(workdir, environ, "--specs", "specs/hello.yaml")
    assert result.code == 3
    assert "infrastructure error: cannot reach http://127.0.0.1:9" in result.log


def test_a_baseline_of_another_spec_version_is_refused_before_a_sandbox_boots_when_strict(
    workdir: Path,
) -> None:
    baseline = run(
        {"hello-world": "PPPP"}, spec_id="hello-world", fingerprint=dict(FINGERPRINT, spec_sha256="0" * 64)
    )
    (workdir / "base.json").write_text(baseline.model_dump_json())
    flags = ("--specs", "specs/*.yaml", "--baseline", "file:base.json", "--strict-baselines")
    result = gate(workdir, {}, *flags)
    assert result.code == 2
    assert (
        "invalid baseline for hello-world (strict-baselines): it ran another version of the spec "
        "(file base.json: spec_sha256 000000000000…" in result.log
    )
    assert "experiment exp-" not in result.log  # nothing was created


def test_spec_errors_and_unreadable_baselines_are_invalid_input(workdir: Path) -> None:
    (workdir / "broken.yaml").write_text("version: 1\nid: broken\nbogus: true\n")
    broken = gate(workdir, {}, "--specs", "broken.yaml")
    assert broken.code == 2 and "broken.yaml" in broken.log
    (workdir / "base.json").write_text(json.dumps({"kind": "something else"}))
    unreadable = gate(workdir, {}, "--specs", "specs/hello.yaml", "--baseline", "file:base.json")
    assert unreadable.code == 2 and "holds neither gate results nor RunResults" in unreadable.log
    missing = gate(workdir, {}, "--specs", "specs/hello.yaml", "--baseline", "file:nope.json")
    assert missing.code == 2 and "cannot read nope.json" in missing.log
