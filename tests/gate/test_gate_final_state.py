"""A run that cannot decide (exit 2 or 3) still tells its final state everywhere: the PR comment, the
summary, JUnit, the outputs and the annotations say "could not run" with the first errors and their
file:line, so an earlier run's green comment never stays (real gate, fake GitHub)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from polarity_keystone.gate import CiContext, GateReport, Policy, SpecRun, decide
from polarity_keystone.gate._report import write_report
from polarity_keystone.secrets import Redactor
from tests.gate.gate_env import gate, github_env
from tests.gate.gate_forges import Forge
from tests.gate.gate_results import run


def write_broken(workdir: Path) -> tuple[str, int]:
    """The hello-world spec with one unknown key: its path and the key's line."""
    lines = (workdir / "specs" / "hello.yaml").read_text().splitlines()
    line = lines.index("agent:") + 1
    lines.insert(line - 1, "bogus: true")
    path = workdir / "specs" / "broken.yaml"
    path.write_text("\n".join(lines) + "\n")
    return "specs/broken.yaml", line


def _environ(workdir: Path, forge: Forge, run_id: str) -> dict[str, str]:
    return github_env(
        workdir, run_id=run_id, GITHUB_API_URL=forge.base_url, KEYSTONE_COMMENT_TOKEN="pat-alice"
    )


def _comment_a_pass(workdir: Path, forge: Forge) -> None:
    """An earlier run's green comment, written by the real gate (the fork-safe step of run 4)."""
    passed = decide([SpecRun("spec", run({"s": "PPPP"}))], Policy())
    results = workdir / "earlier.json"
    ci = CiContext(provider="github", job="gate", run_order=[4, 1])
    write_report(results, GateReport(verdict=passed, ci=ci), Redactor({}))
    assert gate(workdir, _environ(workdir, forge, "4"), "--from-results", str(results)).code == 0
    (comment,) = forge.github.values()
    assert "✅ Keystone gate passed" in comment["body"]


def test_an_invalid_spec_replaces_a_green_comment_with_could_not_run_and_its_line(
    workdir: Path, forge: Forge
) -> None:
    _comment_a_pass(workdir, forge)
    broken, line = write_broken(workdir)
    result = gate(workdir, _environ(workdir, forge, "5"), "--specs", broken)
    assert result.code == 2
    (comment,) = forge.github.values()
    body = comment["body"]
    assert "### ❗ Keystone gate could not run: invalid input (exit 2)" in body
    assert f"- `{broken}:{line}:1`: bogus: " in body
    assert "✅" not in body
    summary = (workdir / "keystone-summary.md").read_text()
    assert summary in body and summary in (workdir / "step-summary.md").read_text()
    assert result.outputs["verdict"] == "error" and result.outputs["exit-code"] == "2"
    assert result.outputs["comment-url"].endswith(f"#issuecomment-{comment['id']}")
    assert result.outputs["passed"] == "0"
    assert "KEYSTONE_EXIT_CODE=2" in (workdir / "keystone.env").read_text().splitlines()
    (error,) = ET.fromstring(result.junit).iter("error")
    assert f"{broken}:{line}:1: bogus" in (error.get("message") or "")
    annotations = result.stdout.splitlines()
    assert annotations[0].startswith("::error title=Keystone gate could not run::Keystone gate could not run")
    assert annotations[1].startswith(
        f"::error file={broken},line={line},col=1,title=Keystone gate could not run::bogus"
    )
    assert result.results["problems"][0]["line"] == line
    assert f"Keystone gate could not run: invalid input (exit 2): {broken}:{line}:1: bogus" in result.log


def test_an_unreachable_server_says_infrastructure_error_in_the_comment(workdir: Path, forge: Forge) -> None:
    _comment_a_pass(workdir, forge)
    environ = {
        **_environ(workdir, forge, "5"),
        "KEYSTONE_BASE_URL": "http://127.0.0.1:9",
        "KEYSTONE_API_KEY": "ks_live_x",
    }
    result = gate(workdir, environ, "--specs", "specs/hello.yaml")
    assert result.code == 3
    (comment,) = forge.github.values()
    assert "### ❗ Keystone gate could not run: infrastructure error (exit 3)" in comment["body"]
    assert "- cannot reach http://127.0.0.1:9" in comment["body"]
    assert "ks_live_x" not in comment["body"]
    assert result.outputs["verdict"] == "error" and result.outputs["exit-code"] == "3"


def test_an_unusable_input_replaces_a_green_comment_too(workdir: Path, forge: Forge) -> None:
    """The inputs that can be used say where to report; the unusable one is named."""
    _comment_a_pass(workdir, forge)
    environ = {**_environ(workdir, forge, "5"), "KEYSTONE_REPLICAS": "many", "KEYSTONE_ALPHA": "2"}
    result = gate(workdir, environ, "--specs", "specs/hello.yaml")
    assert result.code == 2
    (comment,) = forge.github.values()
    assert "could not run: invalid input (exit 2)" in comment["body"]
    assert "- invalid replicas (--replicas / KEYSTONE_REPLICAS): expected a whole number" in comment["body"]
    assert result.outputs["verdict"] == "error"
    assert not (workdir / ".keystone").exists()  # nothing ran


def test_an_unusable_comment_input_posts_nothing(workdir: Path, forge: Forge) -> None:
    """`comment: of` (meant `off`) must not post: the report falls back to no comment, not to update."""
    environ = {**_environ(workdir, forge, "5"), "KEYSTONE_COMMENT": "of"}
    result = gate(workdir, environ, "--specs", "specs/hello.yaml")
    assert result.code == 2 and forge.requests == []
    assert "invalid comment" in (workdir / "keystone-summary.md").read_text()


def test_without_a_token_nothing_is_posted_but_the_files_still_tell(workdir: Path, forge: Forge) -> None:
    environ = github_env(workdir, GITHUB_API_URL=forge.base_url)
    result = gate(workdir, environ, "--specs", write_broken(workdir)[0])
    assert result.code == 2
    assert forge.requests == []
    assert "could not run" in (workdir / "keystone-summary.md").read_text()
    assert result.outputs["verdict"] == "error"


def test_gitlab_gets_the_dotenv_and_no_annotations(workdir: Path) -> None:
    environ = {"GITLAB_CI": "true", "CI_JOB_NAME": "keystone-gate", "CI_JOB_ID": "9"}
    result = gate(workdir, environ, "--specs", write_broken(workdir)[0])
    assert result.code == 2 and result.stdout == ""
    dotenv = (workdir / "keystone.env").read_text().splitlines()
    assert "KEYSTONE_VERDICT=error" in dotenv and "KEYSTONE_ERRORED=0" in dotenv


def test_the_fork_safe_step_tells_an_earlier_could_not_run(workdir: Path, forge: Forge) -> None:
    """The untrusted run could not run; the comment step publishes that, errors and lines included."""
    broken, line = write_broken(workdir)
    gate(workdir, {}, "--specs", broken)  # the eval run: no token, no comment
    saved = shutil.copy(workdir / "keystone-results.json", workdir / "eval-results.json")
    result = gate(workdir, _environ(workdir, forge, "6"), "--from-results", str(saved))
    assert result.code == 2
    (comment,) = forge.github.values()
    assert f"- `{broken}:{line}:1`: bogus: " in comment["body"]
    assert result.outputs["exit-code"] == "2"
