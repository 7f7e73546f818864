"""What the agent's processes do after its command returned still counts (issue 9, finding 6b): the
audit closes once every process the agent started is gone, and a process still running at the agent's
deadline is killed and named in the audit."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from polarity_keystone.engine import PreparedSpec, RunOptions, run_experiment
from polarity_keystone.results import ReplicaResult
from polarity_keystone.sandbox import DockerBackend

pytestmark = pytest.mark.docker

FILES_SPEC = """
version: 1
id: after-exit-files
base: ubuntu:24.04
task: {{prompt: "write out/report.txt"}}
agent:
  type: cli
  command: {command}
  timeout: {timeout}
invariants:
  report:
    check: {{type: file_exists, path: out/report.txt}}
forbidden:
  file_writes_outside: [out/]
"""

DB_SPEC = """
version: 1
id: after-exit-db
base: ubuntu:24.04
task: {prompt: "refund order 1"}
agent:
  type: cli
  command: >-
    psql -X -q -h db -U postgres -c "UPDATE orders SET status = 'refunded' WHERE id = 1" &&
    (sleep 1; psql -X -q -h db -U postgres -c "INSERT INTO admin_users VALUES ('me')") >/dev/null 2>&1 &
  timeout: 60
services:
  - {name: db, image: "postgres:16"}
fixtures:
  - type: sql
    service: db
    sql: |
      CREATE TABLE orders (id int PRIMARY KEY, status text);
      CREATE TABLE admin_users (name text);
      INSERT INTO orders VALUES (1, 'paid');
invariants:
  refunded:
    check: {type: sql, service: db, query: "SELECT status FROM orders WHERE id = 1", equals: refunded}
audit:
  db_writes: true
forbidden:
  db_writes_outside: [orders]
  sql: ['\\bINSERT\\s+INTO\\s+admin_users\\b']
"""


def _replica(prepared: PreparedSpec, backend: DockerBackend) -> ReplicaResult:
    results = run_experiment(prepared, backend, RunOptions(seed=1))
    (replica,) = results.scenarios[0].replicas
    assert replica.error is None, replica.error
    return replica


def _violated(replica: ReplicaResult) -> dict[str, bool]:
    return {check.rule: check.violated for check in replica.forbidden_checks}


def _processes(replica: ReplicaResult) -> list[tuple[str, str]]:
    return [(event["name"], event["outcome"]) for event in replica.audit if event["type"] == "process"]


def test_a_file_written_by_a_detached_process_after_the_agent_exits_is_caught(
    prepared_from: Callable[..., PreparedSpec], backend: DockerBackend
) -> None:
    command = '"mkdir -p out && echo ok > out/report.txt && (sleep 1; echo x > evil.txt) > /dev/null 2>&1 &"'
    replica = _replica(prepared_from(FILES_SPEC.format(command=command, timeout=60)), backend)

    assert replica.exit_code == 0
    assert _violated(replica) == {"file_writes_outside": True}
    (rule,) = replica.forbidden_checks
    assert rule.evidence["paths"] == ["evil.txt"]
    assert replica.status == "fail"
    assert ("sh", "exited") in _processes(replica), replica.audit


def test_a_database_write_by_a_detached_process_after_the_agent_exits_is_caught(
    prepared_from: Callable[..., PreparedSpec], backend: DockerBackend
) -> None:
    replica = _replica(prepared_from(DB_SPEC), backend)

    assert _violated(replica) == {"db_writes_outside": True, "sql": True}
    writes = [(event["table"], event["rows"]) for event in replica.audit if event["type"] == "db_write"]
    assert ("public.admin_users", 1) in writes
    assert replica.status == "fail"


def test_a_daemon_left_running_is_killed_at_the_agent_deadline_and_named_in_the_audit(
    prepared_from: Callable[..., PreparedSpec], backend: DockerBackend
) -> None:
    timeout = 6
    command = '"mkdir -p out && echo ok > out/report.txt && (exec sleep 1000) > /dev/null 2>&1 &"'
    started = time.monotonic()
    replica = _replica(prepared_from(FILES_SPEC.format(command=command, timeout=timeout)), backend)
    took = time.monotonic() - started

    assert took < 60, f"the replica took {took:.1f}s"
    assert replica.agent_ms < timeout * 1000
    assert replica.status == "pass", replica.reasons
    assert _processes(replica) == [("sleep", "killed")]
    (event,) = [event for event in replica.audit if event["type"] == "process"]
    assert timeout * 1000 - replica.agent_ms - 500 <= event["waited_ms"] <= timeout * 1000 + 2000
