"""The `s3_object` check against a real S3 service (Keystone's local moto image): existence, absence,
`contains` / `equals` / `pattern`, missing buckets, and the evidence it keeps (size, excerpt, listing)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polarity_keystone.results import InvariantResult
from polarity_keystone.sandbox import DockerBackend, DockerSandbox, ImageResolver, SandboxPlan
from polarity_keystone.scoring import CheckContext, run_check, supported_checks
from polarity_keystone.services import kind_of, s3
from polarity_keystone.spec import Invariant, Service

pytestmark = pytest.mark.docker

STORE = Service.model_validate({"name": "store", "type": "s3"})
REPORT = "total,7499\nstatus: done\n"


@pytest.fixture(scope="module")
def sandbox(backend: DockerBackend, resolver: ImageResolver) -> Iterator[DockerSandbox]:
    plan = SandboxPlan(
        spec_id="s3-checks",
        run_id=f"test-{uuid.uuid4().hex[:10]}",
        image=resolver.local("base").ref,
        services=[kind_of(STORE).container(STORE, resolver.local("s3").ref, local_image=True)],
    )
    sandbox = backend.create(plan)
    try:
        s3.put_objects(sandbox, STORE, "reports", {"out/report.csv": REPORT.encode(), "empty": b""})
        s3.put_objects(sandbox, STORE, "crowded", {f"item-{n:02}": b"x" for n in range(30)})
        s3.create_bucket(sandbox, STORE, "nothing-here")
        yield sandbox
    finally:
        sandbox.destroy()


def check(sandbox: DockerSandbox, **fields: Any) -> InvariantResult:
    spec = {"type": "s3_object", "service": "store", "bucket": "reports", **fields}
    ctx = CheckContext(sandbox=sandbox, services={"store": STORE}, spec_dir=Path("."))
    return run_check("object", Invariant.model_validate({"check": spec}), ctx)


def test_s3_object_is_a_registered_check() -> None:
    assert "s3_object" in supported_checks()


def test_an_existing_object_passes_with_its_size_excerpt_and_the_listing(sandbox: DockerSandbox) -> None:
    result = check(sandbox, key="out/report.csv")
    assert result.passed is True
    assert result.message == f"s3://reports/out/report.csv ({len(REPORT)} bytes) exists"
    assert result.evidence["size"] == len(REPORT)
    assert result.evidence["content"] == REPORT
    assert result.evidence["bucket_listing"] == ["empty", "out/report.csv"]


@pytest.mark.parametrize(
    ("condition", "passed"),
    [
        ({"contains": "7499"}, True),
        ({"contains": "8000"}, False),
        ({"equals": REPORT}, True),
        ({"equals": REPORT.strip()}, False),
        ({"pattern": r"^status: (done|ok)$"}, True),
        ({"pattern": r"^status: failed$"}, False),
        ({"contains": "7499", "pattern": "^total"}, True),
    ],
)
def test_content_conditions(sandbox: DockerSandbox, condition: dict[str, str], passed: bool) -> None:
    result = check(sandbox, key="out/report.csv", **condition)
    assert result.passed is passed, result.message
    assert result.score == (1.0 if passed else 0.0)
    assert result.evidence["content"] == REPORT


def test_a_failed_condition_says_which(sandbox: DockerSandbox) -> None:
    result = check(sandbox, key="out/report.csv", contains="8000", pattern="^nope$")
    assert result.message.endswith("does not contain '8000'; does not match /^nope$/")
    assert result.reason == result.message


def test_a_missing_object_fails_and_lists_what_is_there(sandbox: DockerSandbox) -> None:
    result = check(sandbox, key="out/missing.csv", contains="x")
    assert result.passed is False
    assert result.message == "s3://reports/out/missing.csv: object does not exist"
    assert result.evidence["exists"] is False
    assert result.evidence["bucket_listing"] == ["empty", "out/report.csv"]


def test_exists_false_passes_only_when_the_object_is_absent(sandbox: DockerSandbox) -> None:
    assert check(sandbox, key="out/missing.csv", exists=False).passed is True
    present = check(sandbox, key="out/report.csv", exists=False)
    assert present.passed is False
    assert "expected it to be absent" in present.message
    assert check(sandbox, bucket="no-such-bucket", key="a", exists=False).passed is True


def test_a_missing_bucket_fails_and_says_so(sandbox: DockerSandbox) -> None:
    result = check(sandbox, bucket="no-such-bucket", key="out/report.csv")
    assert result.passed is False
    assert result.message == "s3://no-such-bucket/out/report.csv: bucket does not exist"
    assert result.evidence["bucket_exists"] is False


def test_an_empty_object_exists_and_an_empty_bucket_has_an_empty_listing(sandbox: DockerSandbox) -> None:
    empty = check(sandbox, key="empty", equals="")
    assert empty.passed is True
    assert empty.evidence["size"] == 0
    nothing = check(sandbox, bucket="nothing-here", key="x")
    assert nothing.passed is False
    assert nothing.evidence["bucket_listing"] == []


def test_the_listing_keeps_at_most_20_keys(sandbox: DockerSandbox) -> None:
    result = check(sandbox, bucket="crowded", key="item-29", equals="x")
    assert result.passed is True
    assert result.evidence["bucket_listing"] == [f"item-{n:02}" for n in range(20)] + ["..."]


def test_an_undeclared_service_fails_without_touching_the_sandbox(sandbox: DockerSandbox) -> None:
    result = check(sandbox, service="elsewhere", key="a")
    assert result.passed is False
    assert result.message == "service 'elsewhere' is not declared"
