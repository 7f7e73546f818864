"""run_experiment end to end in real Docker sandboxes: replicas and seeds, the matrix, scoring rules,
what the agent is given, timeouts and boot failures (the shipped examples' own runs are in tests/examples)."""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable

import pytest

from polarity_keystone.engine import PreparedSpec, prepare, scenarios_of
from polarity_keystone.results import RunResults
from polarity_keystone.sandbox import ImageError, ImageResolver
from polarity_keystone.spec import Parallelism, load_spec
from tests.examples.shipped_examples import RunSpec

pytestmark = pytest.mark.docker

PrepareFrom = Callable[..., PreparedSpec]
FLAKY_SEED = 1
"""An experiment seed whose 10 flaky-example replicas are mixed (checked by the tests below)."""


def flaky_fails(seed: int) -> bool:
    """Whether the flaky example's agent answers wrong with this replica seed (its own documented rule)."""
    return random.Random(seed).random() < 0.3


def _replicas(results: RunResults) -> list:
    return [replica for scenario in results.scenarios for replica in scenario.replicas]


# --- replicas, seeds and flakiness --------------------------------------------------------------


@pytest.fixture(scope="module")
def flaky_run(example, run: RunSpec) -> RunResults:
    return run(example("flaky-agent/flaky.yaml"), replicas=10, concurrency=4, seed=FLAKY_SEED)


def test_flaky_agent_is_reported_flaky_with_its_pass_rate(flaky_run: RunResults) -> None:
    (scenario,) = flaky_run.scenarios
    statuses = [r.status for r in scenario.replicas]
    passed = statuses.count("pass")
    assert 0 < passed < 10, "the fixed seed must give a mix of passes and failures"

    assert scenario.status == "flaky"
    assert (flaky_run.flaky, flaky_run.passed, flaky_run.failed, flaky_run.errors) == (1, 0, 0, 0)
    assert [r.replica for r in scenario.replicas] == list(range(10))
    assert (scenario.replicas_total, scenario.replicas_passed) == (10, passed)
    assert scenario.pass_rate == pytest.approx(passed / 10)
    assert flaky_run.metrics.pass_rate == pytest.approx(passed / 10)
    low, high = flaky_run.metrics.pass_rate_ci
    assert low <= flaky_run.metrics.pass_rate <= high
    assert 0.0 < low < high < 1.0
    assert scenario.pass_rate_ci == flaky_run.metrics.pass_rate_ci
    assert flaky_run.metrics.k == 10
    assert flaky_run.metrics.pass_hat_k == 0.0  # not every replica passed, so pass^10 is 0
    # The scenario shows a failing replica.
    assert scenario.reproducer is not None
    assert scenario.reproducer.seed in {r.seed for r in scenario.replicas if r.status == "fail"}


def test_flaky_outcomes_follow_the_replica_seed(flaky_run: RunResults) -> None:
    for replica in flaky_run.scenarios[0].replicas:
        expected = "fail" if flaky_fails(replica.seed) else "pass"
        assert replica.status == expected, replica
        assert replica.agent_output.strip() == ("total: 30" if expected == "fail" else "total: 42")


def test_each_failing_replica_has_a_replay_command(flaky_run: RunResults) -> None:
    failing = [r for r in flaky_run.scenarios[0].replicas if r.status == "fail"]
    assert failing
    for replica in failing:
        reproducer = replica.reproducer
        assert reproducer is not None
        assert reproducer.seed == replica.seed
        assert reproducer.replica == replica.replica
        assert reproducer.scenario_id == "flaky-agent"
        assert reproducer.spec_file.endswith("flaky.yaml")
        assert reproducer.fingerprint == flaky_run.fingerprint
        command = reproducer.command.split()
        assert command[:2] == ["ks", "replay"]
        assert command[2].endswith("flaky.yaml")
        assert command[command.index("--seed") + 1] == str(replica.seed)
        assert command[command.index("--replica") + 1] == str(replica.replica)
        assert "--fingerprint" in command
        assert len(command[command.index("--fingerprint") + 1]) == 16
    for replica in flaky_run.scenarios[0].replicas:
        if replica.status == "pass":
            assert replica.reproducer is None


def test_the_same_experiment_seed_reproduces_every_replica(
    example, run: RunSpec, flaky_run: RunResults
) -> None:
    # Replica seeds depend on (experiment seed, scenario, index) only, so a shorter re-run repeats the
    # first replicas exactly; the first four of FLAKY_SEED include a failure.
    again = run(example("flaky-agent/flaky.yaml"), replicas=4, concurrency=4, seed=FLAKY_SEED)

    first = [(r.replica, r.seed, r.status) for r in flaky_run.scenarios[0].replicas[:4]]
    second = [(r.replica, r.seed, r.status) for r in again.scenarios[0].replicas]
    assert {status for _, _, status in first} == {"pass", "fail"}
    assert second == first
    assert again.experiment_id != flaky_run.experiment_id


def test_different_experiment_seeds_give_different_replica_seeds(
    prepared_from: PrepareFrom, run: RunSpec
) -> None:
    prepared = prepared_from(
        """
        version: 1
        id: seeds
        base: "ubuntu:24.04"
        task: {prompt: "print the seed"}
        agent: {type: cli, command: 'echo "$KEYSTONE_SEED"'}
        invariants:
          ok: {check: {type: command_exit, command: "true"}}
        parallelism: {replicas: 2}
        """
    )
    one, two = run(prepared, seed=1), run(prepared, seed=2)

    seeds_one = [r.seed for r in _replicas(one)]
    seeds_two = [r.seed for r in _replicas(two)]
    assert len(seeds_one) == len(seeds_two) == 2
    assert len(set(seeds_one)) == 2  # replicas of one run differ too
    assert not set(seeds_one) & set(seeds_two)
    assert [int(r.agent_output) for r in _replicas(one)] == seeds_one


# --- the matrix -----------------------------------------------------------------------------------

MATRIX_SPEC = """
version: 1
id: moody
base: "ubuntu:24.04"
task: {prompt: "write ok.txt when in a good mood"}
agent:
  type: cli
  command: >-
    echo "mode=$mode params=$KEYSTONE_PARAMETERS scenario=$KEYSTONE_SCENARIO_ID";
    if [ "$mode" = good ]; then echo ok > ok.txt; fi
invariants:
  wrote_ok:
    gate: true
    check: {type: file_exists, path: ok.txt}
parallelism:
  replicas: 2
  matrix:
    mode: [good, bad]
"""


def test_matrix_runs_one_scenario_per_cell_times_replicas(prepared_from: PrepareFrom, run: RunSpec) -> None:
    results = run(prepared_from(MATRIX_SPEC), seed=9)

    assert results.total_scenarios == 2
    assert (results.passed, results.failed, results.flaky, results.errors) == (1, 1, 0, 0)
    by_id = {s.scenario_id: s for s in results.scenarios}
    assert list(by_id) == ["moody[mode=good]", "moody[mode=bad]"]
    good, bad = by_id["moody[mode=good]"], by_id["moody[mode=bad]"]
    assert good.parameters == {"mode": "good"}
    assert bad.parameters == {"mode": "bad"}
    assert good.spec_id == bad.spec_id == "moody"
    assert (good.status, good.replicas_total, good.replicas_passed) == ("pass", 2, 2)
    assert (bad.status, bad.replicas_total, bad.replicas_passed) == ("fail", 2, 0)
    assert len(_replicas(results)) == 4
    assert results.metrics.pass_rate == 0.5
    assert good.agent_output.strip() == 'mode=good params={"mode": "good"} scenario=moody[mode=good]'
    # Replica seeds differ per cell, and the failing cell's reproducer carries its parameters.
    assert len({r.seed for r in _replicas(results)}) == 4
    assert bad.reproducer is not None
    assert bad.reproducer.parameters == {"mode": "bad"}
    assert "--param mode=bad" in bad.reproducer.command


def test_matrix_scenarios_are_the_cartesian_product() -> None:
    cells = scenarios_of(Parallelism(matrix={"size": [1, 2, 3], "mode": ["a", "b"]}), "spec")

    assert len(cells) == 6
    assert cells[0] == ("spec[mode=a,size=1]", {"mode": "a", "size": 1})
    assert len({scenario_id for scenario_id, _ in cells}) == 6
    assert scenarios_of(Parallelism(), "spec") == [("spec", {})]


def test_replica_count_multiplies_the_matrix(prepared_from: PrepareFrom, run: RunSpec) -> None:
    prepared = prepared_from(MATRIX_SPEC.replace("mode: [good, bad]", "mode: [good, bad]\n    size: [s, m]"))

    results = run(prepared, replicas=1, seed=4)

    assert results.total_scenarios == 4
    assert len(_replicas(results)) == 4
    assert all(s.replicas_total == 1 for s in results.scenarios)
    assert {s.scenario_id for s in results.scenarios} == {
        "moody[mode=bad,size=m]",
        "moody[mode=bad,size=s]",
        "moody[mode=good,size=m]",
        "moody[mode=good,size=s]",
    }
    assert results.passed == 2 and results.failed == 2


# --- scoring rules --------------------------------------------------------------------------------

WEIGHTED_SPEC = """
version: 1
id: weighted
base: "ubuntu:24.04"
task: {prompt: "write a.txt"}
agent: {type: cli, command: "echo a > a.txt"}
invariants:
  heavy:
    weight: 3
    check: {type: file_exists, path: a.txt}
  light:
    weight: 1
    check: {type: file_exists, path: b.txt}
scoring:
  pass_threshold: THRESHOLD
"""


@pytest.mark.parametrize(("threshold", "status"), [(0.7, "pass"), (0.8, "fail")])
def test_weighted_composite_is_judged_against_the_threshold(
    prepared_from: PrepareFrom, run: RunSpec, threshold: float, status: str
) -> None:
    results = run(prepared_from(WEIGHTED_SPEC.replace("THRESHOLD", str(threshold))), seed=1)

    (scenario,) = results.scenarios
    assert scenario.composite_score == pytest.approx(0.75)
    assert {i.name: (i.weight, i.passed) for i in scenario.invariants} == {
        "heavy": (3.0, True),
        "light": (1.0, False),
    }
    assert scenario.status == status
    reasons = scenario.replicas[0].reasons
    if status == "pass":
        assert reasons == []
    else:
        assert reasons == ["composite 0.75 below pass_threshold 0.80"]


def test_a_failing_gate_fails_the_run_despite_a_high_composite(
    prepared_from: PrepareFrom, run: RunSpec
) -> None:
    prepared = prepared_from(
        """
        version: 1
        id: gated
        base: "ubuntu:24.04"
        task: {prompt: "write a.txt"}
        agent: {type: cli, command: "echo a > a.txt"}
        invariants:
          must_have_b:
            gate: true
            weight: 1
            check: {type: file_exists, path: b.txt}
          has_a:
            weight: 9
            check: {type: file_exists, path: a.txt}
        scoring: {pass_threshold: 0.5}
        """
    )

    results = run(prepared, seed=1)

    (scenario,) = results.scenarios
    assert scenario.composite_score == pytest.approx(0.9)
    assert scenario.status == "fail"
    (reason,) = scenario.replicas[0].reasons
    assert "gate invariant 'must_have_b' failed" in reason


# --- what the agent is given ----------------------------------------------------------------------

ENV_SPEC = """
version: 1
id: env-probe
base: "ubuntu:24.04"
task:
  prompt: "Report what you were given."
  context: "Extra context for the agent."
agent:
  type: cli
  path: agent
  command: sh /opt/agent/probe.sh
  env:
    FROM_AGENT: agent-value
    SHARED: from-agent
setup:
  env:
    FROM_SETUP: setup-value
    SHARED: from-setup
services:
  - name: db
    image: postgres:16
    env: {POSTGRES_DB: shop}
invariants:
  ran:
    check: {type: command_exit, command: "true"}
parallelism:
  matrix:
    flavour: [vanilla]
"""

PROBE = """\
for name in KEYSTONE_TASK KEYSTONE_SEED KEYSTONE_REPLICA KEYSTONE_SCENARIO_ID flavour \\
            DB_HOST DB_PORT DB_URL FROM_SETUP FROM_AGENT SHARED WORKSPACE; do
  printf '%s=%s\\n' "$name" "$(printenv "$name")"
done
printf 'TASK_FILE_B64=%s\\n' "$(base64 "$KEYSTONE_TASK_FILE" | tr -d '\\n')"
printf 'PWD=%s\\n' "$(pwd)"
echo "something went wrong" >&2
exit 3
"""


def test_agent_gets_task_seed_parameters_services_and_env(prepared_from: PrepareFrom, run: RunSpec) -> None:
    results = run(prepared_from(ENV_SPEC, {"agent/probe.sh": PROBE}), seed=21)

    (replica,) = _replicas(results)
    assert replica.error is None, replica.error
    seen = dict(line.split("=", 1) for line in replica.agent_output.splitlines())
    assert seen["KEYSTONE_TASK"] == "Report what you were given."
    assert base64.b64decode(seen["TASK_FILE_B64"]).decode() == (
        "Report what you were given.\n\nExtra context for the agent."
    )
    assert seen["KEYSTONE_SEED"] == str(replica.seed)
    assert seen["KEYSTONE_REPLICA"] == "0"
    assert seen["KEYSTONE_SCENARIO_ID"] == "env-probe[flavour=vanilla]"
    assert seen["flavour"] == "vanilla"
    assert seen["DB_HOST"] == "db"
    assert seen["DB_PORT"] == "5432"
    assert seen["DB_URL"] == "postgres://postgres@db:5432/shop"
    assert seen["FROM_SETUP"] == "setup-value"
    assert seen["FROM_AGENT"] == "agent-value"
    assert seen["SHARED"] == "from-agent"  # agent.env wins over setup.env
    assert seen["WORKSPACE"] == seen["PWD"] == "/workspace"
    assert replica.agent_stderr.strip() == "something went wrong"
    assert replica.exit_code == 3
    assert results.scenarios[0].exit_code == 3


def test_setup_env_is_also_the_sandbox_env_that_checks_see(prepared_from: PrepareFrom, run: RunSpec) -> None:
    prepared = prepared_from(
        """
        version: 1
        id: setup-env
        base: "ubuntu:24.04"
        task: {prompt: "nothing"}
        agent: {type: cli, command: "true"}
        setup:
          env: {GREETING: hi}
        invariants:
          check_sees_setup_env:
            check: {type: command_exit, command: 'test "$GREETING" = hi'}
        """
    )

    assert run(prepared, seed=2).scenarios[0].status == "pass"


# --- timeouts and boot failures -------------------------------------------------------------------


def test_agent_timeout_fails_the_replica_quickly(prepared_from: PrepareFrom, run: RunSpec) -> None:
    prepared = prepared_from(
        """
        version: 1
        id: sleepy
        base: "ubuntu:24.04"
        task: {prompt: "take your time"}
        agent: {type: cli, command: "echo started; sleep 60; echo done > done.txt", timeout: 2s}
        invariants:
          done:
            check: {type: file_exists, path: done.txt}
        """
    )

    started = time.monotonic()
    results = run(prepared, seed=1)
    elapsed = time.monotonic() - started

    (replica,) = _replicas(results)
    assert replica.status == "fail"
    assert replica.timed_out is True
    assert replica.reasons[0] == "agent timed out after 2s"
    assert "started" in replica.agent_output
    assert replica.agent_ms < 20_000
    assert replica.wall_ms < 30_000
    assert elapsed < 30
    assert results.scenarios[0].status == "fail"


BAD_FIXTURE_SPEC = """
version: 1
id: bad-fixture
base: "ubuntu:24.04"
task: {prompt: "never runs"}
agent: {type: cli, command: "echo ran > ran.txt"}
services:
  - name: db
    image: postgres:16
fixtures:
  - type: sql
    service: db
    sql: "CREATE TABLE ok (id int);"
  - type: sql
    service: db
    sql: "INSERT INTO no_such_table VALUES (1);"
invariants:
  ran:
    check: {type: file_exists, path: ran.txt}
"""


def test_a_failing_sql_fixture_is_an_error_not_a_failure(prepared_from: PrepareFrom, run: RunSpec) -> None:
    results = run(prepared_from(BAD_FIXTURE_SPEC), seed=1)

    (scenario,) = results.scenarios
    (replica,) = scenario.replicas
    assert replica.status == "error"
    assert replica.error is not None
    assert "sql fixture on db (inline)" in replica.error, "the error names the failing fixture"
    assert "fixtures" in replica.error
    assert 'relation "no_such_table" does not exist' in replica.error
    assert replica.exit_code is None  # the agent never ran
    assert replica.agent_output == ""
    assert scenario.status == "error"
    assert scenario.error == replica.error
    assert (results.errors, results.passed, results.failed) == (1, 0, 0)
    # No verdict was produced, so the pass rate does not count it as a failure.
    assert results.metrics.pass_rate == 0.0
    assert results.metrics.pass_rate_ci == (0.0, 1.0)


def test_an_image_that_cannot_be_had_fails_prepare(write_spec, resolver: ImageResolver) -> None:
    path = write_spec(
        """
        version: 1
        id: no-image
        base: "nosuchimage-keystone:1"
        task: {prompt: "never runs"}
        agent: {type: cli, command: "true"}
        invariants:
          ok: {check: {type: command_exit, command: "true"}}
        """
    )

    with pytest.raises(ImageError, match="nosuchimage-keystone:1"):
        prepare(load_spec(path), resolver)


def test_a_run_past_resources_timeout_is_an_error_that_says_so(prepared_from, run: RunSpec) -> None:
    spec = """
version: 1
id: overtime
base: ubuntu:24.04
task: {prompt: "take your time"}
agent: {type: cli, command: "sleep 30", timeout: 1m}
resources: {timeout: 3s}
invariants:
  ok: {check: {type: command_exit, command: "true"}}
"""
    results = run(prepared_from(spec), replicas=1, seed=1)

    (replica,) = results.scenarios[0].replicas
    assert replica.status == "error"
    assert replica.error is not None and "resources.timeout" in replica.error
    assert replica.wall_ms < 20_000
