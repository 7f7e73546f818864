"""`ks gate` end to end: real server (embedded, or on a socket), real sandboxes, a local GitHub for the
comment. One baseline run of the hello-world agent is shared; each test changes the agent and gates it."""

from __future__ import annotations

import shutil
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from polarity_keystone.server import ServerSettings, create_api_key, serve_in_thread
from polarity_keystone.store import open_store
from tests.examples.shipped_examples import EXAMPLES
from tests.gate.gate_env import GateRun, gate, github_env
from tests.gate.gate_forges import Forge, running_forge
from tests.waiting import wait_until

pytestmark = pytest.mark.docker

EXAMPLE = EXAMPLES / "hello-world"
SECRET = "gate-e2e-token-5f1c9a"
"""A secret the spec declares; the broken agent prints it, and no report may show it."""
REPLICAS = "4"
"""4 of 4 against 0 of 4 is significant (p = 0.014); 3 against 3 would sit exactly on alpha."""


@dataclass
class Workspace:
    root: Path
    forge: Forge

    def env(self, **extra: str) -> dict[str, str]:
        return github_env(
            self.root, GITHUB_API_URL=self.forge.base_url, KEYSTONE_COMMENT_TOKEN="pat-alice", **extra
        )

    def agent(self, body: str) -> None:
        """Replace the agent's code (its digest changes; the spec does not)."""
        (self.root / "specs" / "agent" / "agent.py").write_text(body)


def checkout(root: Path, forge: Forge) -> Workspace:
    shutil.copytree(EXAMPLE, root / "specs")
    spec = root / "specs" / "hello.yaml"
    spec.write_text(spec.read_text() + "secrets:\n  - name: GATE_E2E_TOKEN\n")
    return Workspace(root, forge)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, GateRun, Path]]:
    """The passing agent gated on a PR (GitHub run 100, attempt 1); its results JSON is the baseline."""
    with running_forge() as forge, pytest.MonkeyPatch.context() as patch:
        workspace = checkout(tmp_path_factory.mktemp("baseline"), forge)
        patch.chdir(workspace.root)
        patch.setenv("GATE_E2E_TOKEN", SECRET)
        result = gate(workspace.root, workspace.env(), "--specs", "specs/*.yaml", "--replicas", REPLICAS)
        saved = shutil.copy(workspace.root / "keystone-results.json", workspace.root / "base.json")
        yield workspace, result, Path(saved)


@pytest.fixture
def candidate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    with running_forge() as forge:
        workspace = checkout(tmp_path, forge)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("GATE_E2E_TOKEN", SECRET)
        yield workspace


def gate_against(baseline: Path, candidate: Workspace, run_id: str, *flags: str) -> GateRun:
    """The candidate's hello spec gated against the baseline's results file, as GitHub run `run_id`."""
    return gate(
        candidate.root,
        candidate.env(GITHUB_RUN_ID=run_id, GITHUB_RUN_NUMBER=run_id),
        "--specs",
        "specs/hello.yaml",
        "--replicas",
        REPLICAS,
        "--baseline",
        f"file:{baseline}",
        *flags,
    )


def outputs_without_secret(workspace: Workspace, result: GateRun) -> None:
    texts = [result.log, result.stdout, *(c["body"] for c in workspace.forge.github.values())]
    texts += [p.read_text() for p in workspace.root.iterdir() if p.is_file()]
    assert texts and not [text for text in texts if SECRET in text]


def test_a_passing_agent_exits_0_with_junit_outputs_and_a_comment(
    baseline: tuple[Workspace, GateRun, Path],
) -> None:
    workspace, result, _ = baseline
    assert result.code == 0, result.log
    suite = ET.fromstring(result.junit).find("testsuite")
    assert suite is not None and (suite.get("name"), suite.get("failures"), suite.get("errors")) == (
        "hello-world",
        "0",
        "0",
    )
    outputs = result.outputs
    assert outputs["verdict"] == "passed" and outputs["pass-rate"] == "1.0000"
    assert outputs["experiment-id"].startswith("exp-")
    (comment,) = workspace.forge.github.values()
    assert "### ✅ Keystone gate passed" in comment["body"]
    posts = [m for m, path in workspace.forge.writes() if path.startswith("/repos/o/r/issues")]
    assert posts == ["POST", "PATCH"]  # "running…" first, the verdict last


def test_a_regressed_agent_exits_1_and_says_which_invariant_regressed(
    baseline: tuple[Workspace, GateRun, Path], candidate: Workspace
) -> None:
    candidate.agent(
        "import os\n"
        "print('token', os.environ.get('GATE_E2E_TOKEN'))\n"
        "open(os.path.join(os.environ['WORKSPACE'], 'hello.txt'), 'w').write('goodbye\\n')\n"
    )
    result = gate_against(baseline[2], candidate, "101", "--max-replicas", REPLICAS)
    assert result.code == 1, result.log
    case = ET.fromstring(result.junit).find("testsuite/testcase")
    assert case is not None and case.find("failure") is not None
    (comment,) = candidate.forge.github.values()
    body = comment["body"]
    assert "❌ Keystone gate regressed" in body
    assert "hello_file_correct 4/4 (100%, CI 51%-100%) -> 0/4 (0%, CI 0%-49%)" in body
    assert "replay a failure: `ks replay specs/hello.yaml --seed" in body
    assert "agent_digest" in body  # noted: the agent is what changed
    spec_lines = (candidate.root / "specs" / "hello.yaml").read_text().splitlines()
    line = spec_lines.index("  hello_file_correct:") + 1
    where = f"::error file=specs/hello.yaml,line={line},col=3,title=hello-world / hello-world%3A regressed::"
    assert where in result.stdout  # the failing invariant's line of the spec
    assert (result.outputs["passed"], result.outputs["failed"], result.outputs["errored"]) == ("0", "1", "0")
    outputs_without_secret(candidate, result)


def test_a_flaky_agent_with_a_fixed_few_replicas_is_inconclusive(
    baseline: tuple[Workspace, GateRun, Path], candidate: Workspace
) -> None:
    candidate.agent(
        "import os\n"
        "text = 'Hello, World!' if int(os.environ['KEYSTONE_REPLICA']) >= 2 else 'oops'\n"
        "open(os.path.join(os.environ['WORKSPACE'], 'hello.txt'), 'w').write(text + '\\n')\n"
    )
    result = gate_against(baseline[2], candidate, "102", "--max-replicas", REPLICAS)
    assert result.code == 4, result.log
    assert result.outputs["verdict"] == "inconclusive"
    failure = ET.fromstring(result.junit).find("testsuite/testcase/failure")  # blocking: red in test tabs
    assert failure is not None and failure.get("type") == "inconclusive"
    assert "replicas would tell" in next(iter(candidate.forge.github.values()))["body"]


def test_adaptive_replicas_grow_an_undecided_scenario_until_a_regression_is_clear(
    baseline: tuple[Workspace, GateRun, Path], candidate: Workspace
) -> None:
    candidate.agent("print('nothing written')\n")
    # --fail-on none: a gate invariant failing in every replica would block at once; this tests the statistics
    result = gate_against(baseline[2], candidate, "103", "--max-replicas", "16", "--fail-on", "none")
    # 0/4 against 4/4 (p = 0.014) is not enough at the first look's share of alpha; 0/8 (p = 0.002) is.
    assert result.code == 1, result.log
    assert "undecided: hello-world; growing to 8 replicas each" in result.log
    assert "growing to 16" not in result.log  # clear at 8: stopped there
    (run,) = result.results["runs"]
    assert run["scenarios"][0]["replicas_total"] == 8
    assert "-> 0/8 (0%" in next(iter(candidate.forge.github.values()))["body"]


def test_adaptive_replicas_stop_when_more_data_no_longer_lean_towards_a_drop(
    baseline: tuple[Workspace, GateRun, Path], candidate: Workspace
) -> None:
    candidate.agent(
        "import os\n"
        "text = 'oops' if os.environ['KEYSTONE_REPLICA'] == '0' else 'Hello, World!'\n"
        "open(os.path.join(os.environ['WORKSPACE'], 'hello.txt'), 'w').write(text + '\\n')\n"
    )
    result = gate_against(baseline[2], candidate, "104", "--max-replicas", "16")
    # 3/4 leans towards a drop, so it grows; 7/8 against 4/4 (p = 0.67) no longer does: passed at 8.
    assert result.code == 0, result.log
    assert "growing to 8 replicas each" in result.log and "growing to 16" not in result.log
    assert result.results["runs"][0]["scenarios"][0]["replicas_total"] == 8


def test_the_baseline_branch_runs_max_replicas(candidate: Workspace) -> None:
    push = candidate.root / "push-event.json"
    push.write_text("{}")
    environ = candidate.env(
        GITHUB_RUN_ID="105", GITHUB_HEAD_REF="", GITHUB_REF="refs/heads/main", GITHUB_EVENT_PATH=str(push)
    )
    environ["GITHUB_REF_NAME"] = "main"
    result = gate(
        candidate.root,
        environ,
        "--specs",
        "specs/hello.yaml",
        "--replicas",
        "1",
        "--max-replicas",
        "2",
        "--baseline",
        "branch:main",
        "--comment",
        "off",
    )
    assert result.code == 0, result.log
    assert "on main, the baseline branch: 2 replicas per scenario (max-replicas)" in result.log
    assert result.results["runs"][0]["scenarios"][0]["replicas_total"] == 2


def test_rerunning_the_same_job_attempt_reuses_its_experiment(
    baseline: tuple[Workspace, GateRun, Path],
) -> None:
    workspace, first, _ = baseline
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workspace.root)
        patch.setenv("GATE_E2E_TOKEN", SECRET)
        again = gate(workspace.root, workspace.env(), "--specs", "specs/*.yaml", "--replicas", REPLICAS)
        assert again.code == 0, again.log
        assert "this job attempt already has experiment" in again.log
        assert again.outputs["experiment-id"] == first.outputs["experiment-id"]
        new_attempt = gate(
            workspace.root,
            workspace.env(GITHUB_RUN_ATTEMPT="2"),
            "--specs",
            "specs/*.yaml",
            "--replicas",
            "2",
        )
        assert new_attempt.code == 0, new_attempt.log
        assert new_attempt.outputs["experiment-id"] != first.outputs["experiment-id"]
    store = open_store(f"sqlite://{workspace.root / '.keystone' / 'keystone.db'}")
    try:
        runs = [
            e.metadata.get("ci_run") for e in store.list_experiments("default", cursor=None, limit=50).items
        ]
    finally:
        store.close()
    assert sorted(runs) == ["github:o/r:100:1:gate", "github:o/r:100:2:gate"]
    comments = list(workspace.forge.github.values())
    assert len(comments) == 1 and "order=100.2" in comments[0]["body"]


def test_a_server_that_dies_mid_run_is_an_infrastructure_error(candidate: Workspace, tmp_path: Path) -> None:
    candidate.agent("import time\ntime.sleep(30)\n")
    store_url = f"sqlite://{tmp_path / 'shared.db'}"
    store = open_store(store_url)
    key = create_api_key(store, "gate e2e")[0]
    server = serve_in_thread(ServerSettings(store_url=store_url, spec_root=candidate.root / "specs"))

    def running() -> bool:
        items = store.list_experiments("default", cursor=None, limit=1).items
        return bool(items) and items[0].status == "running"

    def kill_when_running() -> None:
        try:
            wait_until(running, 120, "the experiment running")
        finally:
            server.stop()

    killer = threading.Thread(target=kill_when_running)
    killer.start()
    try:
        environ = {"KEYSTONE_BASE_URL": server.url, "KEYSTONE_API_KEY": key, "KEYSTONE_COMMENT": "off"}
        result = gate(candidate.root, environ, "--specs", "specs/hello.yaml", "--replicas", "1")
    finally:
        killer.join()
        store.close()
    assert result.code == 3, result.log
    assert "lost the Keystone server" in result.log
    assert ET.fromstring(result.junit).find("testsuite/testcase/error") is not None
