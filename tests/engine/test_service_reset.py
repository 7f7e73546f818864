"""Services reset between replicas instead of booted again, in real sandboxes: a reset service is
indistinguishable from a fresh one (its state digest equals a fresh boot's, and the example's checks,
which count rows, still pass), bad agents are still caught, a change a reset cannot undo gets the next
replica a fresh sandbox that says why, a spec can ask for fresh services, and nothing is left behind."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from polarity_keystone import Keystone
from polarity_keystone.engine import PreparedSpec, RunOptions, plan_replica, run_experiment
from polarity_keystone.engine._service_reset import reset_services, state_digests
from polarity_keystone.sandbox import DockerBackend
from polarity_keystone.sandbox import _labels as labels
from tests.examples.shipped_examples import RunSpec

pytestmark = pytest.mark.docker

ROLE_SPEC = """
version: 1
id: role-maker
base: ubuntu:24.04
task: {prompt: "leave a role behind"}
agent: {type: cli, command: "psql -X -q \\"$DB_URL\\" -c 'CREATE ROLE intruder_$KEYSTONE_REPLICA'"}
setup: {packages: [postgresql-client]}
services:
  - {name: db, image: postgres:16, env: {POSTGRES_DB: shop}}
invariants:
  ran: {check: {type: command_exit, command: "true"}}
"""


def test_a_reset_gives_the_state_of_a_fresh_boot(
    example: Callable[[str], PreparedSpec], backend: DockerBackend
) -> None:
    prepared = example("refund-agent/refund.yaml")
    plan = plan_replica(
        prepared, run_id="reset", scenario_id="refund-agent", replica=0, seed=1, parameters={}
    )
    renewable = dataclasses.replace(plan.sandbox, renewals=1)
    used, fresh = backend.create(renewable), backend.create(renewable)
    try:
        before = state_digests(used, plan.services)
        ran = used.exec(
            "python3 /opt/agent/refund.py", env=plan.agent_env, user=plan.sandbox.agent_user.exec_user
        )
        assert ran.exit_code == 0, ran.stderr
        assert state_digests(used, plan.services)["db"] != before["db"]  # the digest sees the refund
        renewed = backend.renew(used, plan.sandbox, lambda sandbox: reset_services(plan.services, sandbox))
        assert state_digests(renewed, plan.services) == before == state_digests(fresh, plan.services)
        assert renewed.renewed == 1 and renewed.id != plan.sandbox.sandbox_id
    finally:
        used.destroy()
        fresh.destroy()


def test_replicas_in_reset_services_pass_and_bad_agents_are_still_caught(
    example: Callable[[str], PreparedSpec], run: RunSpec
) -> None:
    refund = run(example("refund-agent/refund.yaml"), replicas=4, concurrency=1, seed=3).scenarios[0]
    # refund_recorded counts refund rows: a database that kept an earlier replica's refund would fail it.
    # One replica runs at a time and one sandbox is on its way: two fresh boots, then renewals.
    assert [(r.status, r.renewed) for r in refund.replicas] == [("pass", False)] * 2 + [("pass", True)] * 2
    sloppy = run(example("sloppy-agent/sloppy.yaml"), replicas=3, concurrency=1, seed=3).scenarios[0]
    assert [r.status for r in sloppy.replicas] == ["fail"] * 3
    assert [r.renewed for r in sloppy.replicas] == [False, False, True]
    assert all(any("file_writes_outside" in reason for reason in r.reasons) for r in sloppy.replicas)


def test_a_change_a_reset_cannot_undo_gets_a_fresh_sandbox_that_says_why(
    prepared_from: Callable[..., PreparedSpec], run: RunSpec
) -> None:
    replicas = run(prepared_from(ROLE_SPEC), replicas=3, concurrency=1, seed=5).scenarios[0].replicas
    assert [r.status for r in replicas] == ["pass"] * 3, [r.error for r in replicas]
    third = replicas[2]  # the first two boot fresh (one in use, one on its way); the third gets the first's
    assert not third.renewed
    assert "a reset left db different from a fresh boot" in third.boot_note
    assert third.boot_note.endswith("this sandbox was booted afresh")


def test_a_spec_may_ask_for_fresh_services(prepared_from: Callable[..., PreparedSpec], run: RunSpec) -> None:
    spec = ROLE_SPEC.replace("invariants:", "resources: {fresh_services: true}\ninvariants:")
    replicas = run(prepared_from(spec), replicas=3, concurrency=1, seed=5).scenarios[0].replicas
    assert [(r.status, r.renewed, r.boot_note) for r in replicas] == [("pass", False, "")] * 3


def test_renewing_leaves_nothing_behind(
    example: Callable[[str], PreparedSpec], backend: DockerBackend
) -> None:
    def ours() -> list[str]:
        selector = {"label": f"{labels.OWNER}={backend.owner}"}
        containers = backend.client.containers.list(all=True, filters=selector)
        networks = backend.client.networks.list(filters=selector)
        return [c.name or "" for c in containers if c.labels.get(labels.ROLE) not in labels.PROCESS_ROLES] + [
            n.name or "" for n in networks
        ]

    before = ours()
    results = run_experiment(
        example("refund-agent/refund.yaml"), backend, RunOptions(replicas=5, concurrency=2)
    )
    assert sum(r.renewed for r in results.scenarios[0].replicas) >= 1
    assert ours() == before


REPORTER = """
import json, os, urllib.request
event = {"event_type": "tool_call", "tool": "replica-" + os.environ["KEYSTONE_REPLICA"], "phase": "end"}
request = urllib.request.Request(
    os.environ["KEYSTONE_BASE_URL"] + "/v1/sandboxes/" + os.environ["KEYSTONE_SANDBOX_ID"] + "/trace",
    data=json.dumps({"events": [event]}).encode(),
    headers={"Authorization": "Bearer " + os.environ["KEYSTONE_API_KEY"], "Content-Type": "application/json"},
)
urllib.request.urlopen(request, timeout=10).read()
"""


REPORTER_SPEC = """
version: 1
id: reporter
base: ubuntu:24.04
task: {prompt: "report"}
agent: {type: cli, path: agent, command: python3 /opt/agent/report.py}
setup: {packages: [python3]}
services:
  - {name: db, image: postgres:16}
invariants:
  ran: {check: {type: command_exit, command: "true"}}
"""


def test_under_a_server_each_renewed_sandbox_is_its_own_sandbox(tmp_path: Path) -> None:
    """Its own id, record and token: what an agent reports lands on its own replica only."""
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "report.py").write_text(REPORTER)
    with Keystone.local(tmp_path / ".keystone") as ks:
        ks.specs.create(REPORTER_SPEC, source_dir=tmp_path)
        experiment = ks.experiments.create("reporter-run", "reporter", replicas=3, concurrency=1)
        results = ks.experiments.run_and_wait(experiment.id, timeout=300)
        replicas = results.scenarios[0].replicas
        traces = [[e.tool for e in ks.sandboxes.get_trace(r.sandbox_id).events] for r in replicas]

    assert [(r.status, r.renewed) for r in replicas] == [("pass", False), ("pass", False), ("pass", True)]
    assert len({r.sandbox_id for r in replicas}) == 3
    assert traces == [["replica-0"], ["replica-1"], ["replica-2"]]
