"""`run_checks` against a real sandbox (agent + Postgres): a stretch of file and SQL checks is answered by
one exec per kind, and every check's result is exactly what `run_check` alone gives, edge cases included."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from polarity_keystone.results import InvariantResult
from polarity_keystone.sandbox import (
    DockerBackend,
    DockerSandbox,
    ImageResolver,
    Sandbox,
)
from polarity_keystone.scoring import CheckContext, first_fetch, leading_sql_services, run_check, run_checks
from polarity_keystone.services import postgres
from polarity_keystone.spec import Invariant, Service
from tests.scoring.sandboxes import booted

pytestmark = pytest.mark.docker

DB = Service(name="db", image="postgres:16")
CONTENT_LIMIT = 64 * 1024
ODD_NAMES = ["with space.txt", 'it\'s "quoted".txt', "new\nline.txt", "$(touch pwned).txt", "-n"]


def _seed(sandbox: Sandbox) -> None:
    postgres.run_sql(
        sandbox,
        DB,
        "create table orders(id int primary key, status text);"
        "insert into orders values (1, 'refunded'), (2, 'paid');"
        "create sequence tickets;",
    )
    sandbox.write_file("notes/refund.md", b"refunded: damaged in transit\n")
    sandbox.write_file("big.txt", b"x" * (CONTENT_LIMIT + 10) + b"END-MARKER\n")
    sandbox.write_file("binary.bin", b"\xff\xfe\x00ok\x00\x80")
    sandbox.write_file("empty.txt", b"")
    for name in ODD_NAMES:
        sandbox.write_file(f"odd/{name}", f"name={name}\n".encode())


@pytest.fixture(scope="module")
def sandbox(backend: DockerBackend, resolver: ImageResolver) -> Iterator[DockerSandbox]:
    with booted(backend, resolver, "checks-batched", _seed, [DB]) as sandbox:
        yield sandbox


@pytest.fixture
def calls(sandbox: DockerSandbox, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Round trips to the engine the checks make, counted around the real sandbox's methods."""
    counted: Counter[str] = Counter()

    def counting(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            counted[name] += 1
            return method(*args, **kwargs)

        return call

    for name in ("exec", "service_exec", "read_file"):
        monkeypatch.setattr(sandbox, name, counting(name, getattr(sandbox, name)))
    return counted


def _invariants(checks: dict[str, dict[str, Any]]) -> dict[str, Invariant]:
    return {name: Invariant.model_validate({"check": check}) for name, check in checks.items()}


def _run_both(
    sandbox: DockerSandbox, calls: Counter[str], checks: dict[str, dict[str, Any]]
) -> tuple[list[InvariantResult], Counter[str]]:
    """The batched results, after asserting they equal one `run_check` per invariant; and the round
    trips the batched run made."""
    ctx = CheckContext(sandbox=sandbox, services={"db": DB}, spec_dir=Path("."))
    invariants = _invariants(checks)
    single = [run_check(name, invariant, ctx) for name, invariant in invariants.items()]
    calls.clear()
    batched = run_checks(invariants, ctx)
    made = Counter(calls)
    assert [result.model_dump() for result in batched] == [result.model_dump() for result in single]
    return batched, made


def test_sql_checks_on_one_service_run_in_one_exec_and_a_failing_query_fails_alone(
    sandbox: DockerSandbox, calls: Counter[str]
) -> None:
    results, made = _run_both(
        sandbox,
        calls,
        {
            "refunded": {
                "type": "sql",
                "service": "db",
                "query": "SELECT status FROM orders WHERE id = 1",
                "equals": "refunded",
            },
            "broken": {
                "type": "sql",
                "service": "db",
                "query": "SELECT nope FROM missing_table",
                "equals": 1,
            },
            "paid": {
                "type": "sql",
                "service": "db",
                "query": "SELECT status FROM orders WHERE id = 2",
                "equals": "paid",
            },
            "null": {"type": "sql", "service": "db", "query": "SELECT NULL", "equals": None},
        },
    )
    assert made == {"service_exec": 1}
    assert [result.passed for result in results] == [True, False, True, True]
    broken = results[1]
    assert 'relation "missing_table" does not exist' in broken.evidence["error"]
    assert broken.message.startswith("query on service 'db' failed: ERROR:")


def test_the_same_query_twice_is_run_twice_in_order(sandbox: DockerSandbox, calls: Counter[str]) -> None:
    """A query that changes what it answers next (a sequence) gets each of its answers, as run one by one."""
    ctx = CheckContext(sandbox=sandbox, services={"db": DB}, spec_dir=Path("."))
    query = {"type": "sql", "service": "db", "query": "SELECT nextval('tickets')", "equals": 0}
    results = run_checks(_invariants({"first": query, "second": query}), ctx)
    assert calls == {"service_exec": 1}
    first, second = (int(result.evidence["rows"][0][0]) for result in results)
    assert second == first + 1


def test_missing_and_present_files_in_one_exec(sandbox: DockerSandbox, calls: Counter[str]) -> None:
    results, made = _run_both(
        sandbox,
        calls,
        {
            "present": {"type": "file_exists", "path": "notes/refund.md"},
            "missing": {"type": "file_exists", "path": "notes/nothing.md"},
            "absent": {"type": "file_absent", "path": "notes/nothing.md"},
            "not-absent": {"type": "file_absent", "path": "notes"},
            "content": {"type": "file_content", "path": "notes/./refund.md", "pattern": "(?i)damaged"},
            "binary": {"type": "file_content", "path": "binary.bin", "contains": "ok"},
            "empty": {"type": "file_content", "path": "empty.txt", "not_contains": "x"},
            "directory": {"type": "file_content", "path": "notes", "contains": "x"},
        },
    )
    assert [result.passed for result in results] == [True, False, True, False, True, True, True, False]
    # One exec for the lot; only the directory (no regular file to read) is read by its check, as before.
    assert made == {"exec": 1, "read_file": 1}


def test_a_file_over_the_content_limit_is_read_in_full(sandbox: DockerSandbox, calls: Counter[str]) -> None:
    results, made = _run_both(
        sandbox,
        calls,
        {
            "tail": {"type": "file_content", "path": "big.txt", "contains": "END-MARKER"},
            "head": {"type": "file_content", "path": "notes/refund.md", "contains": "refunded"},
        },
    )
    assert [result.passed for result in results] == [True, True]
    assert made == {"exec": 1, "read_file": 1}


def test_paths_with_spaces_quotes_and_newlines(sandbox: DockerSandbox, calls: Counter[str]) -> None:
    checks = {}
    for index, name in enumerate(ODD_NAMES):
        checks[f"exists-{index}"] = {"type": "file_exists", "path": f"odd/{name}"}
        checks[f"content-{index}"] = {
            "type": "file_content",
            "path": f"odd/{name}",
            "contains": f"name={name}",
        }
    checks["missing"] = {"type": "file_exists", "path": 'odd/it\'s "quoted"\n.txt'}
    results, made = _run_both(sandbox, calls, checks)
    assert [result.passed for result in results] == [True] * (2 * len(ODD_NAMES)) + [False]
    assert made == {"exec": 1}
    assert sandbox.exec(["test", "-e", "pwned"]).exit_code != 0, "a path ran as a command"


def test_a_check_that_runs_commands_ends_a_stretch(sandbox: DockerSandbox, calls: Counter[str]) -> None:
    """What a command check changes is seen by the checks after it, as when each check reads for itself."""
    results, made = _run_both(
        sandbox,
        calls,
        {
            "before": {"type": "file_absent", "path": "made-by-check.txt"},
            "before-too": {"type": "file_exists", "path": "notes/refund.md"},
            "make": {"type": "command_exit", "command": "touch made-by-check.txt"},
            "after": {"type": "file_exists", "path": "made-by-check.txt"},
            "after-too": {"type": "file_exists", "path": "notes/refund.md"},
            "cleanup": {"type": "command_exit", "command": "rm made-by-check.txt"},
        },
    )
    assert [result.passed for result in results] == [True] * 6
    assert made == {"exec": 4}  # a probe per stretch of two, and the two commands


def test_a_callers_query_rides_first_in_the_leading_checks_batch(
    sandbox: DockerSandbox, calls: Counter[str]
) -> None:
    """`first_fetch` runs the caller's `ahead` query before the checks' queries in their one exec, and the
    checks given that fetch answer exactly as they do alone; a service no leading check queries gets no
    exec for it (nor does a stretch that is not leading)."""
    ctx = CheckContext(sandbox=sandbox, services={"db": DB}, spec_dir=Path("."))
    ticket = "SELECT nextval('tickets')"
    checks: dict[str, dict[str, Any]] = {
        "refunded": {
            "type": "sql",
            "service": "db",
            "query": "SELECT status FROM orders WHERE id = 1",
            "equals": "refunded",
        },
        "ticket": {"type": "sql", "service": "db", "query": ticket, "equals": 0},
    }
    invariants = _invariants(checks)
    single = [run_check(name, invariant, ctx) for name, invariant in invariants.items()]
    calls.clear()
    first = first_fetch(invariants, sandbox, {"db": DB}, {"db": [ticket], "cache": ["SELECT 1"]})
    batched = run_checks(invariants, ctx, first)
    assert calls == {"service_exec": 1}
    ahead = first.ahead[("db", ticket)]
    assert isinstance(ahead, list)
    ticket_before = int(str(single[1].evidence["rows"][0][0]))
    assert int(str(ahead[0][0])) == ticket_before + 1, "the caller's query ran first"
    assert batched[1].evidence["rows"] == [[str(ticket_before + 2)]]
    assert [result.passed for result in batched] == [True, False]
    assert batched[0].model_dump() == single[0].model_dump()

    calls.clear()
    leading_files = _invariants({"note": {"type": "file_exists", "path": "notes/refund.md"}, **checks})
    assert leading_sql_services(leading_files) == {"db"}
    behind_a_command = _invariants({"make": {"type": "command_exit", "command": "true"}, **checks})
    assert leading_sql_services(behind_a_command) == set()
    assert first_fetch(behind_a_command, sandbox, {"db": DB}, {"db": [ticket]}).ahead == {}
    assert calls == {}


def test_a_lone_file_content_check_is_read_while_the_query_batch_runs(
    sandbox: DockerSandbox, calls: Counter[str]
) -> None:
    """Not worth a probe, the lone file is read as its check reads it, beside the query batch; a missing
    one is left to its check, which says so as before."""
    queries = {
        "refunded": {
            "type": "sql",
            "service": "db",
            "query": "SELECT status FROM orders WHERE id = 1",
            "equals": "refunded",
        },
        "paid": {
            "type": "sql",
            "service": "db",
            "query": "SELECT status FROM orders WHERE id = 2",
            "equals": "paid",
        },
    }
    note = {"type": "file_content", "path": "notes/refund.md", "pattern": "(?i)damaged"}
    results, made = _run_both(sandbox, calls, {**queries, "note": note})
    assert [result.passed for result in results] == [True, True, True]
    assert made == {"service_exec": 1, "read_file": 1}

    missing = {"type": "file_content", "path": "notes/nothing.md", "contains": "x"}
    results, made = _run_both(sandbox, calls, {"missing": missing, **queries})
    assert results[0].message == "notes/nothing.md does not exist"
    assert made == {"service_exec": 1, "read_file": 2}
