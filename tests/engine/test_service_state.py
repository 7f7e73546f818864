"""`audit.service_state`: the rows, keys and objects the agent added, removed and changed in Postgres,
Redis and S3, per service in the result, with secret values redacted."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from polarity_keystone.engine import PreparedSpec, RunOptions, run_experiment
from polarity_keystone.sandbox import DockerBackend

pytestmark = pytest.mark.docker

AGENT = """
import boto3, os, subprocess
def sql(text):
    psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", os.environ["DB_URL"]]
    subprocess.run(psql + ["-c", text], check=True)
sql("UPDATE orders SET status = 'refunded' WHERE id = 1")
sql("DELETE FROM orders WHERE id = 2")
sql("INSERT INTO orders VALUES (3, 'new'); INSERT INTO audit_log VALUES ('refund 1')")
redis = ["redis-cli", "-h", "cache"]
subprocess.run(redis + ["SET", "session:alice", "token " + os.environ["API_TOKEN"]], check=True)
s3 = boto3.client("s3", endpoint_url=os.environ["FILES_URL"])
s3.put_object(Bucket="reports", Key="2026/refunds.csv", Body=b"order,amount\\n1,4999\\n")
"""

SPEC = """
version: 1
id: state
base: ubuntu:24.04
task: {prompt: "refund order 1"}
agent:
  type: cli
  path: agent
  command: python3 /opt/agent/agent.py
secrets:
  - name: API_TOKEN
    from: "static://tok_secret_value"
services:
  - {name: db, image: "postgres:16"}
  - {name: cache, image: "redis:7"}
  - {name: files, type: s3}
fixtures:
  - type: sql
    service: db
    sql: |
      CREATE TABLE orders (id int PRIMARY KEY, status text);
      CREATE TABLE audit_log (entry text);
      INSERT INTO orders VALUES (1, 'paid'), (2, 'paid');
  - {type: s3, service: files, bucket: reports, objects: {"2026/old.csv": "x"}}
setup:
  packages: [python3-boto3]
invariants:
  done: {check: {type: command_exit, command: "true"}}
audit:
  service_state: true
"""


def test_the_result_lists_what_changed_in_each_service(
    prepared_from: Callable[..., PreparedSpec], backend: DockerBackend
) -> None:
    prepared = prepared_from(SPEC, {"agent/agent.py": AGENT})
    replica = run_experiment(prepared, backend, RunOptions(seed=1)).scenarios[0].replicas[0]

    db = replica.service_state["db"]
    assert [i["item"] for i in db["changed"]] == ["public.orders[id=1]"]
    assert db["changed"][0]["before"] == '{"id":1,"status":"paid"}'
    assert db["changed"][0]["after"] == '{"id":1,"status":"refunded"}'
    assert [i["item"] for i in db["removed"]] == ["public.orders[id=2]"]
    added = sorted(i["after"] for i in db["added"])
    assert added == ['{"entry":"refund 1"}', '{"id":3,"status":"new"}']
    assert db["counts"] == {"added": 2, "removed": 1, "changed": 1}

    cache = replica.service_state["cache"]
    assert [i["item"] for i in cache["added"]] == ["session:alice"]
    assert cache["added"][0]["after"].endswith(":token ***")

    files = replica.service_state["files"]
    assert [i["item"] for i in files["added"]] == ["reports/2026/refunds.csv"]
    assert files["counts"] == {"added": 1, "removed": 0, "changed": 0}
    assert "tok_secret_value" not in replica.model_dump_json()
