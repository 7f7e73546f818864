"""The s3-reports example end to end: `minio/minio` falls back to Keystone's local S3 image where it
cannot be pulled (said so in the notes), `s3` fixtures seed the bucket, a boto3 agent writes its report
object by name, and `s3_object` checks read it back; a copy whose agent writes a wrong report fails
with the object as evidence."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from polarity_keystone.engine import PreparedSpec, plan_replica
from polarity_keystone.sandbox import DockerBackend, ImageResolver
from tests.examples.shipped_examples import EditedExample, RunSpec

pytestmark = pytest.mark.docker

EXAMPLE = "s3-reports/s3-reports.yaml"


def test_where_minio_cannot_be_pulled_keystones_local_s3_image_stands_in_and_says_so(
    backend: DockerBackend, resolver: ImageResolver
) -> None:
    """A resolver that may not pull, asked for a tag no machine has: the fallback happens on every
    machine, whether or not a registry answers."""
    absent = "minio/minio:keystone-test-never-published"

    image = ImageResolver(backend.client, allow_pull=False).resolve(absent)

    assert image.ref == resolver.local("s3").ref
    note = f"{absent} cannot be pulled here; using Keystone's local image {image.ref} in its place"
    assert image.note == note


def test_the_s3_service_runs_what_minio_resolves_to_and_the_agent_gets_its_endpoint(
    example: Callable[[str], PreparedSpec], resolver: ImageResolver
) -> None:
    """`minio/minio` itself where it can be pulled, Keystone's local S3 image in its place (with a
    note) where it cannot: the same spec either way."""
    prepared = example(EXAMPLE)

    image = prepared.service_images["s3"]
    assert image == resolver.resolve("minio/minio")
    assert [note for note in prepared.notes if "minio/minio" in note] == [n for n in [image.note] if n]
    plan = plan_replica(prepared, run_id="t", scenario_id="s3-reports", replica=0, seed=1, parameters={})
    (service,) = plan.sandbox.services
    assert (service.kind, service.image) == ("s3", image.ref)
    assert plan.agent_env["S3_URL"] == plan.agent_env["AWS_ENDPOINT_URL"] == "http://s3:9000"
    assert plan.agent_env["AWS_ACCESS_KEY_ID"] == "test"
    labels = [step.label for step in plan.sandbox.fixtures]
    assert labels == ["s3 fixture on s3 (inputs -> s3://reports/inputs/)", "s3 fixture on s3 (s3://reports/)"]
    assert not any(step.touches_workspace for step in plan.sandbox.fixtures)


def test_the_s3_reports_example_passes(example: Callable[[str], PreparedSpec], run: RunSpec) -> None:
    results = run(example(EXAMPLE), replicas=2, concurrency=2, seed=3)

    (scenario,) = results.scenarios
    assert scenario.status == "pass", [r.error or r.reasons for r in scenario.replicas]
    assert (scenario.replicas_total, scenario.replicas_passed) == (2, 2)
    assert scenario.composite_score == 1.0
    assert "wrote s3://reports/out/revenue.csv (2 customers)" in scenario.agent_output
    for replica in scenario.replicas:
        written = next(i for i in replica.invariants if i.name == "report_written")
        assert written.evidence["bucket_listing"] == ["README.txt", "inputs/orders.csv", "out/revenue.csv"]


def test_an_agent_that_writes_a_wrong_report_fails_with_the_object_as_evidence(
    edited_example: EditedExample, run: RunSpec
) -> None:
    prepared = edited_example(EXAMPLE, "agent/report.py", 'int(row["amount_cents"])', "1")

    results = run(prepared, seed=3)

    (scenario,) = results.scenarios
    assert scenario.status == "fail"
    (replica,) = scenario.replicas
    written = next(i for i in replica.invariants if i.name == "report_written")
    assert written.passed is False
    assert written.gate is True
    assert "is not equal to" in written.message
    assert written.evidence["content"] == "customer,total_cents\nalice@example.com,2\nbob@example.com,1\n"
    assert written.evidence["size"] == len(written.evidence["content"])
    others = {i.name: i.passed for i in replica.invariants if i.name != "report_written"}
    assert others == {"header_present": True, "input_kept": True, "nothing_stray": True}
