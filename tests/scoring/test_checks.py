"""Invariant checks against a real sandbox (agent + Postgres): for each check type what passes, what
fails, and what the result says and keeps as evidence so a failure explains itself; the engine's
redaction pass over both."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polarity_keystone.results import InvariantResult, ReplicaResult
from polarity_keystone.sandbox import DockerBackend, DockerSandbox, ImageResolver
from polarity_keystone.scoring import CheckContext, run_check, supported_checks
from polarity_keystone.secrets import Redactor, redact_result
from polarity_keystone.services import postgres
from polarity_keystone.spec import Invariant, Service
from tests.scoring.sandboxes import booted

pytestmark = pytest.mark.docker

DB = Service(name="db", image="postgres:16")
SECRET = "s3cr3t-t0ken-9f2c"

REPORT = "# Refund report\nstatus: done\nrefunded 3 orders\n"
VERIFY_SCRIPT = """\
import json, pathlib
text = pathlib.Path("/workspace/report.md").read_text()
print("checking the report")  # only the last line is the verdict
print(json.dumps({"passed": "status: done" in text, "score": 0.9, "message": "report is done"}))
"""


def _seed(sandbox: DockerSandbox) -> None:
    postgres.run_sql(
        sandbox,
        DB,
        """
        create table orders(id int primary key, status text, refunded boolean, note text);
        insert into orders values
          (1, 'refunded', true, null), (2, 'refunded', true, 'vip'), (3, 'open', false, null);
        """,
    )
    sandbox.write_file("report.md", REPORT.encode())
    sandbox.write_file("out/big.log", ("x" * 5000).encode())
    sandbox.write_file("config/token.txt", f"token={SECRET}\n".encode())


@pytest.fixture(scope="module")
def sandbox(backend: DockerBackend, resolver: ImageResolver) -> Iterator[DockerSandbox]:
    with booted(backend, resolver, "checks", _seed, [DB]) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def spec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spec")
    (root / "checks").mkdir()
    (root / "checks" / "verify.py").write_text(VERIFY_SCRIPT)
    (root / "checks" / "broken.py").write_text("print('all good, I think')\n")
    return root


@pytest.fixture
def ctx(sandbox: DockerSandbox, spec_dir: Path) -> CheckContext:
    return CheckContext(sandbox=sandbox, services={"db": DB}, spec_dir=spec_dir)


def check(ctx: CheckContext, name: str = "inv", **fields: Any) -> InvariantResult:
    return run_check(name, Invariant.model_validate({"check": fields}), ctx)


def assert_passed(result: InvariantResult, score: float = 1.0) -> None:
    assert result.passed is True, result.message
    assert result.score == score
    assert result.reason == ""


def assert_failed(result: InvariantResult) -> None:
    assert result.passed is False
    assert result.score == 0.0
    assert result.reason == result.message != ""


def test_every_check_type_that_runs_here_is_registered() -> None:
    assert {"file_exists", "file_absent", "file_content", "command_exit", "sql", "custom"} <= set(
        supported_checks()
    )


def test_result_carries_the_invariants_name_gate_and_weight(ctx: CheckContext) -> None:
    invariant = Invariant.model_validate(
        {"weight": 2.5, "gate": True, "check": {"type": "file_exists", "path": "x"}}
    )
    result = run_check("report-written", invariant, ctx)
    assert (result.name, result.gate, result.weight) == ("report-written", True, 2.5)


# --- file_exists / file_absent ----------------------------------------------------------------------


def test_file_exists(ctx: CheckContext) -> None:
    present = check(ctx, type="file_exists", path="report.md")
    assert_passed(present)
    assert present.message == "report.md exists"
    assert present.evidence == {"path": "report.md"}
    assert_passed(check(ctx, type="file_exists", path="/workspace/out/big.log"))
    assert_passed(check(ctx, type="file_exists", path="out"))

    missing = check(ctx, type="file_exists", path="missing.txt")
    assert_failed(missing)
    assert missing.message == "missing.txt does not exist"
    assert missing.evidence == {"path": "missing.txt"}


def test_file_absent(ctx: CheckContext) -> None:
    absent = check(ctx, type="file_absent", path="secrets.env")
    assert_passed(absent)
    assert absent.message == "secrets.env is absent"

    present = check(ctx, type="file_absent", path="report.md")
    assert_failed(present)
    assert present.message == "report.md exists"
    assert present.evidence == {"path": "report.md"}


# --- file_content -----------------------------------------------------------------------------------


def test_file_content_contains(ctx: CheckContext) -> None:
    good = check(ctx, type="file_content", path="report.md", contains="status: done")
    assert_passed(good)
    assert good.message == "report.md matches"
    assert good.evidence == {"path": "report.md", "content": REPORT}

    bad = check(ctx, type="file_content", path="report.md", contains="status: failed")
    assert_failed(bad)
    assert bad.message == "report.md does not contain 'status: failed'"
    assert bad.evidence["content"] == REPORT


def test_file_content_not_contains(ctx: CheckContext) -> None:
    assert_passed(check(ctx, type="file_content", path="report.md", not_contains="TODO"))
    bad = check(ctx, type="file_content", path="report.md", not_contains="refunded")
    assert_failed(bad)
    assert bad.message == "report.md contains 'refunded'"


def test_file_content_pattern_matches_any_line(ctx: CheckContext) -> None:
    assert_passed(check(ctx, type="file_content", path="report.md", pattern=r"^refunded \d+ orders$"))
    bad = check(ctx, type="file_content", path="report.md", pattern=r"^refunded \d+ customers$")
    assert_failed(bad)
    assert bad.message == r"report.md does not match /^refunded \d+ customers$/"


def test_file_content_reports_every_problem_at_once(ctx: CheckContext) -> None:
    bad = check(
        ctx, type="file_content", path="report.md", contains="nope", not_contains="status", pattern="^zzz"
    )
    assert_failed(bad)
    assert bad.message == "report.md does not contain 'nope'; contains 'status'; does not match /^zzz/"


def test_file_content_of_a_missing_file_fails(ctx: CheckContext) -> None:
    missing = check(ctx, type="file_content", path="nowhere.md", contains="x")
    assert_failed(missing)
    assert missing.message == "nowhere.md does not exist"
    assert missing.evidence == {"path": "nowhere.md"}


def test_file_content_evidence_is_an_excerpt(ctx: CheckContext) -> None:
    result = check(ctx, type="file_content", path="out/big.log", contains="y")
    assert_failed(result)
    content = result.evidence["content"]
    assert content.startswith("x" * 2000)
    assert content.endswith("... (3000 more characters)")


# --- command_exit -----------------------------------------------------------------------------------


def test_command_exit_matching_code_passes(ctx: CheckContext) -> None:
    ok = check(ctx, type="command_exit", command="grep -q done report.md")
    assert_passed(ok)
    assert ok.message == "`grep -q done report.md` exited 0 (expected 0)"
    assert ok.evidence == {"command": "grep -q done report.md", "exit_code": 0, "stdout": "", "stderr": ""}

    expected_failure = check(ctx, type="command_exit", command="exit 3", exit_code=3)
    assert_passed(expected_failure)


def test_command_exit_mismatch_shows_the_output(ctx: CheckContext) -> None:
    result = check(
        ctx, type="command_exit", command="echo 'tests: 2 failed'; echo 'Traceback: boom' >&2; exit 1"
    )
    assert_failed(result)
    assert result.message.startswith(
        "`echo 'tests: 2 failed'; echo 'Traceback: boom' >&2; exit 1` exited 1 (expected 0)"
    )
    assert "tests: 2 failed" in result.message
    assert "Traceback: boom" in result.message
    assert result.evidence["exit_code"] == 1
    assert result.evidence["stdout"] == "tests: 2 failed\n"
    assert result.evidence["stderr"] == "Traceback: boom\n"


def test_command_exit_timeout_fails(ctx: CheckContext) -> None:
    started = time.monotonic()
    result = check(ctx, type="command_exit", command="sleep 30", timeout=1)
    assert time.monotonic() - started < 10
    assert_failed(result)
    assert result.message.startswith("`sleep 30` timed out after 1s")


def test_command_exit_runs_from_the_workspace(ctx: CheckContext) -> None:
    assert_passed(check(ctx, type="command_exit", command='test -f report.md && test "$(pwd)" = /workspace'))


# --- sql --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "equals"),
    [
        ("select status from orders where id = 1", "refunded"),
        ("select count(*) from orders where refunded", 2),
        ("select count(*) from orders where refunded", "2"),
        ("select avg(id) from orders", 2.0),
        ("select bool_and(refunded) from orders where status = 'refunded'", True),
        ("select bool_and(refunded) from orders", False),
        ("select note from orders where id = 1", None),
    ],
)
def test_sql_equals_by_type(ctx: CheckContext, query: str, equals: Any) -> None:
    result = check(ctx, type="sql", service="db", query=query, equals=equals)
    assert_passed(result)
    assert result.evidence["query"] == query
    assert result.evidence["expected"] == equals


@pytest.mark.parametrize(
    ("query", "equals", "actual"),
    [
        ("select status from orders where id = 3", "refunded", "'open'"),
        ("select count(*) from orders where refunded", 3, "'2'"),
        ("select bool_and(refunded) from orders", True, "'f'"),
        ("select note from orders where id = 2", None, "'vip'"),
        ("select note from orders where id = 1", "vip", "None"),
        ("select status from orders where id = 99", "refunded", "None"),
    ],
)
def test_sql_mismatch_fails_with_what_it_saw(ctx: CheckContext, query: str, equals: Any, actual: str) -> None:
    result = check(ctx, type="sql", service="db", query=query, equals=equals)
    assert_failed(result)
    assert result.message == f"query returned {actual}, expected {equals!r}"


def test_sql_evidence_keeps_the_rows(ctx: CheckContext) -> None:
    result = check(ctx, type="sql", service="db", query="select id, note from orders order by id", equals=1)
    assert_passed(result)
    assert result.evidence["rows"] == [["1", None], ["2", "vip"], ["3", None]]


def test_sql_query_error_fails_with_psqls_error(ctx: CheckContext) -> None:
    result = check(ctx, type="sql", service="db", query="select * from refunds", equals=1)
    assert_failed(result)
    assert 'relation "refunds" does not exist' in result.message
    assert 'relation "refunds" does not exist' in result.evidence["error"]
    assert result.evidence["query"] == "select * from refunds"


def test_sql_accepts_expected_as_an_alias_for_equals(ctx: CheckContext) -> None:
    assert_passed(check(ctx, type="sql", service="db", query="select 41 + 1", expected=42))


# --- custom -----------------------------------------------------------------------------------------


def test_custom_command_verdict_with_a_score(ctx: CheckContext) -> None:
    verdict = {"passed": True, "score": 0.7, "message": "7 of 10 rows migrated"}
    result = check(ctx, type="custom", command=f"echo '{json.dumps(verdict)}'")
    assert_passed(result, score=0.7)
    assert result.message == "7 of 10 rows migrated"
    assert result.evidence["result"] == verdict
    assert result.evidence["exit_code"] == 0


def test_custom_failing_verdict(ctx: CheckContext) -> None:
    result = check(ctx, type="custom", command="""echo '{"passed": false, "message": "2 rows missing"}'""")
    assert_failed(result)
    assert result.message == "2 rows missing"


def test_custom_score_is_clamped_to_0_1(ctx: CheckContext) -> None:
    result = check(ctx, type="custom", command="""echo '{"passed": true, "score": 7}'""")
    assert_passed(result, score=1.0)


def test_custom_invalid_output_fails_with_a_helpful_message(ctx: CheckContext) -> None:
    result = check(ctx, type="custom", command="echo 'looks fine to me'; echo 'warning' >&2")
    assert_failed(result)
    assert "must print a JSON object" in result.message
    assert '{"passed": true' in result.message
    assert "looks fine to me" in result.message
    assert result.evidence["stdout"] == "looks fine to me\n"
    assert result.evidence["stderr"] == "warning\n"

    no_passed_key = check(ctx, type="custom", command="""echo '{"score": 1}'""")
    assert_failed(no_passed_key)
    assert "must print a JSON object" in no_passed_key.message


def test_custom_script_is_copied_from_the_spec_dir(ctx: CheckContext) -> None:
    result = check(ctx, type="custom", script="checks/verify.py")
    assert_passed(result, score=0.9)
    assert result.message == "report is done"
    assert result.evidence["command"] == "python3 /keystone/checks/verify.py"

    broken = check(ctx, type="custom", script="checks/broken.py")
    assert_failed(broken)
    assert "all good, I think" in broken.message


def test_a_custom_script_swapped_for_a_link_out_after_validation_is_not_read(
    ctx: CheckContext, spec_dir: Path, tmp_path: Path
) -> None:
    """The spec was valid when it loaded; a script replaced later by a link to a host file must not
    carry that file into the sandbox."""
    host_file = tmp_path / "host-secret.txt"
    host_file.write_text("print('host file')\n")
    (spec_dir / "checks" / "swapped.py").symlink_to(host_file)

    result = check(ctx, type="custom", script="checks/swapped.py")

    assert_failed(result)
    assert "leads out of the spec's directory" in result.message
    assert "host file" not in result.message


def test_custom_script_does_not_touch_the_workspace(ctx: CheckContext, sandbox: DockerSandbox) -> None:
    check(ctx, type="custom", script="checks/verify.py")
    assert not any(path.startswith("checks/") or "verify.py" in path for path in sandbox.diff().written)


# --- redaction --------------------------------------------------------------------------------------


def _redacted(result: InvariantResult, secret: str) -> InvariantResult:
    """The check's result as it leaves a replica: through the engine's one redaction pass."""
    replica = ReplicaResult(replica=0, seed=0, status="fail", invariants=[result])
    (redacted,) = redact_result(replica, Redactor({"SECRET": secret})).invariants
    return redacted


def test_secrets_are_redacted_from_message_and_evidence(ctx: CheckContext) -> None:
    results = [
        check(ctx, type="file_content", path="config/token.txt", contains="nothing"),
        check(ctx, type="command_exit", command="cat config/token.txt; cat config/token.txt >&2; exit 1"),
        check(ctx, type="custom", command=f"""echo '{{"passed": false, "message": "saw {SECRET}"}}'"""),
        check(ctx, type="sql", service="db", query=f"select '{SECRET}'", equals="other"),
    ]
    for result in results:
        assert SECRET in result.model_dump_json()  # checks see and keep the raw text
        dumped = _redacted(result, SECRET).model_dump_json()
        assert SECRET not in dumped, dumped
        assert "***" in dumped


def test_secrets_with_quotes_backslashes_or_accents_are_redacted_from_evidence(
    ctx: CheckContext, sandbox: DockerSandbox
) -> None:
    """Passwords are the secrets most likely to contain `"`, `\\` or non-ASCII characters."""
    secret = 'pa"ss\\wörd-42'
    sandbox.write_file("config/password.txt", f"password={secret}\n".encode())
    raw = check(ctx, type="file_content", path="config/password.txt", contains="nothing")
    result = _redacted(raw, secret)
    assert secret not in result.message
    assert secret not in json.dumps(result.evidence, ensure_ascii=False)
    assert result.evidence["content"] == "password=***\n"


def test_custom_script_from_a_nested_spec_dir(ctx: CheckContext, tmp_path: Path) -> None:
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "score.py").write_text(
        textwrap.dedent(
            """
            import json
            print(json.dumps({"passed": True, "score": 0.25, "message": "partial"}))
            """
        )
    )
    nested = CheckContext(ctx.sandbox, ctx.services, tmp_path)
    result = check(nested, type="custom", script="deep/er/score.py")
    assert_passed(result, score=0.25)
