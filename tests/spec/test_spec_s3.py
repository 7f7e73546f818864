"""`s3` services, `s3` fixtures and `s3_object` checks in the spec: what loads, and what is rejected with
the file, line and field (bad bucket names, contradictory conditions, an undeclared or non-S3 service,
a missing source directory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from polarity_keystone.services import S3, kind_of
from polarity_keystone.spec import SpecError, SpecIssue, load_spec, parse_spec, unsupported_features
from polarity_keystone.spec._models import S3Fixture, S3ObjectCheck

VALID = """\
version: 1
id: reports
base: "debian:bookworm"
task:
  prompt: Write the report
agent:
  type: cli
  command: python3 agent.py
services:
  - name: files
    type: s3
  - name: db
    image: postgres:16
fixtures:
  - type: s3
    service: files
    bucket: reports
    objects:
      inputs/orders.csv: "id,amount"
invariants:
  written:
    check:
      type: s3_object
      service: files
      bucket: reports
      key: out/report.csv
      contains: total
"""


def edited(old: str, new: str) -> str:
    assert old in VALID, old
    return VALID.replace(old, new)


def only_issue(text: str) -> SpecIssue:
    with pytest.raises(SpecError) as raised:
        parse_spec(text, filename="specs/reports.yaml")
    (issue,) = raised.value.issues
    assert issue.file == "specs/reports.yaml"
    return issue


def test_the_valid_spec_loads_and_is_supported() -> None:
    spec = parse_spec(VALID).spec

    assert unsupported_features(spec) == []
    assert isinstance(kind_of(spec.services[0]), S3)
    assert spec.services[0].image is None
    (fixture,) = spec.fixtures
    assert isinstance(fixture, S3Fixture)
    assert (fixture.bucket, fixture.objects, fixture.source, fixture.prefix) == (
        "reports",
        {"inputs/orders.csv": "id,amount"},
        None,
        "",
    )
    check = spec.invariants["written"].check
    assert isinstance(check, S3ObjectCheck)
    assert (check.key, check.exists, check.contains, check.equals, check.pattern) == (
        "out/report.csv",
        True,
        "total",
        None,
        None,
    )


def test_an_s3_image_is_an_s3_service_without_a_type() -> None:
    spec = parse_spec(edited("    type: s3\n", "    image: minio/minio:latest\n")).spec
    assert isinstance(kind_of(spec.services[0]), S3)


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "message"),
    [
        pytest.param(
            "    bucket: reports\n    objects",
            "    bucket: Reports_2024\n    objects",
            17,
            "fixtures[0].bucket",
            "not a valid S3 bucket name",
            id="fixture bucket name",
        ),
        pytest.param(
            "      bucket: reports\n      key",
            "      bucket: ab\n      key",
            25,
            "invariants.written.check.bucket",
            "not a valid S3 bucket name",
            id="check bucket name",
        ),
        pytest.param(
            "      contains: total\n",
            "      contains: total\n      exists: false\n",
            22,
            "invariants.written.check",
            "`exists: false` contradicts `contains`",
            id="absent with content",
        ),
        pytest.param(
            "      contains: total\n",
            "      pattern: '(unclosed'\n",
            27,
            "invariants.written.check.pattern",
            "not a valid regular expression",
            id="bad pattern",
        ),
        pytest.param(
            "      key: out/report.csv\n",
            "",
            22,
            "invariants.written.check.key",
            "field required",
            id="key required",
        ),
        pytest.param(
            "    objects:\n",
            "    objetcs:\n",
            18,
            "fixtures[0].objetcs",
            "",
            id="typo in fixture",
        ),
        pytest.param(
            "  - name: db\n    image: postgres:16\n",
            "  - name: db\n",
            12,
            "services[1]",
            "unless it has type: http_mock, s3 or llm",
            id="other services need an image",
        ),
    ],
)
def test_invalid_s3_blocks_name_the_line(old: str, new: str, line: int, field: str, message: str) -> None:
    issue = only_issue(edited(old, new))

    assert issue.field == field
    assert message in issue.message
    assert issue.line == line


def test_a_fixture_on_an_undeclared_service_suggests_the_closest() -> None:
    issue = only_issue(edited("  - type: s3\n    service: files\n", "  - type: s3\n    service: filez\n"))

    assert issue.field == "fixtures[0].service"
    assert issue.line == 16
    assert "`filez` is not declared" in issue.message
    assert issue.suggestion == "did you mean `files`?"


def test_a_check_on_an_undeclared_service_is_rejected() -> None:
    issue = only_issue(edited("      service: files\n", "      service: bucket-store\n"))

    assert issue.field == "invariants.written.check.service"
    assert issue.line == 24
    assert "`bucket-store` is not declared" in issue.message


def test_fixtures_and_checks_need_an_s3_service() -> None:
    text = VALID.replace("service: files", "service: db")
    with pytest.raises(SpecError) as raised:
        parse_spec(text, filename="specs/reports.yaml")

    fixture, check = raised.value.issues
    assert (fixture.field, fixture.line) == ("fixtures[0].service", 16)
    assert "`db` is not an s3 service; an s3 fixture needs one" in fixture.message
    assert fixture.suggestion is not None and "give services[1] `type: s3`" in fixture.suggestion
    assert (check.field, check.line) == ("invariants.written.check.service", 24)
    assert "an s3_object check needs one" in check.message


def test_a_source_directory_must_exist_next_to_the_spec(tmp_path: Path) -> None:
    spec_file = tmp_path / "reports.yaml"
    spec_file.write_text(
        edited(
            "    bucket: reports\n    objects",
            "    source: seed\n    prefix: in/\n    bucket: reports\n    objects",
        )
    )
    with pytest.raises(SpecError) as raised:
        load_spec(spec_file)
    (issue,) = raised.value.issues
    assert (issue.field, issue.line) == ("fixtures[0].source", 17)
    assert "directory `seed` does not exist" in issue.message

    (tmp_path / "seed").mkdir()
    fixture = load_spec(spec_file).spec.fixtures[0]
    assert isinstance(fixture, S3Fixture)
    assert (fixture.source, fixture.prefix) == ("seed", "in/")
