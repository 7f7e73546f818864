"""`forbidden.file_writes_outside` over the real workspace diff of a sandbox: writes inside the
allowlist pass, writes, changes and deletions outside it are violations that name the paths."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from polarity_keystone.results import ForbiddenCheckResult
from polarity_keystone.sandbox import DockerBackend, DockerSandbox, ImageResolver
from polarity_keystone.scoring import RunRecord, check_forbidden, supported_rules
from polarity_keystone.spec._models import Forbidden
from tests.scoring.sandboxes import booted

pytestmark = pytest.mark.docker

ALLOWED = ["src/", "build/reports"]


SEED = (
    "mkdir -p src config"
    " && echo \"print('v1')\" > src/app.py"
    " && printf '[db]\\nhost=db\\n' > config/settings.ini"
    " && echo '# project' > README.md"
    " && echo 'not under src/' > srcfile.txt"
)


def _seed(sandbox: DockerSandbox) -> None:
    result = sandbox.exec(SEED)
    assert result.exit_code == 0, result.stderr


@pytest.fixture(scope="module")
def module_sandbox(backend: DockerBackend, resolver: ImageResolver) -> Iterator[DockerSandbox]:
    with booted(backend, resolver, "forbidden", _seed, ()) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(module_sandbox: DockerSandbox) -> Iterator[DockerSandbox]:
    """The shared sandbox, back to its boot-time files and snapshot for each test."""
    yield module_sandbox
    reset = module_sandbox.exec(f"find /workspace -mindepth 1 -delete && {SEED}")
    assert reset.exit_code == 0, reset.stderr
    module_sandbox.snapshot()


def rule(sandbox: DockerSandbox, prefixes: list[str] | None = None) -> ForbiddenCheckResult:
    forbidden = Forbidden(file_writes_outside=ALLOWED if prefixes is None else prefixes)
    results = check_forbidden(forbidden, RunRecord(diff=sandbox.diff()))
    assert [result.rule for result in results] == ["file_writes_outside"]
    return results[0]


def test_the_rule_is_registered() -> None:
    assert "file_writes_outside" in supported_rules()


def test_no_writes_at_all_passes(sandbox: DockerSandbox) -> None:
    result = rule(sandbox)
    assert result.violated is False
    assert result.details == "no writes outside the allowlist"


def test_writes_inside_allowed_prefixes_pass(sandbox: DockerSandbox) -> None:
    sandbox.write_file("src/app.py", b"print('v2')\n")
    sandbox.write_file("src/pkg/new_module.py", b"x = 1\n")
    sandbox.write_file("build/reports/junit.xml", b"<testsuite/>\n")
    assert sandbox.exec("rm src/app.py && echo v3 > src/app2.py").exit_code == 0

    result = rule(sandbox)

    assert result.violated is False, result.details
    assert result.evidence == {}


def test_a_write_outside_is_a_violation_naming_the_path(sandbox: DockerSandbox) -> None:
    sandbox.write_file("src/ok.py", b"fine\n")
    sandbox.write_file("notes/todo.txt", b"sneaky\n")

    result = rule(sandbox)

    assert result.violated is True
    assert "notes/todo.txt" in result.details
    assert "src/ok.py" not in result.details
    assert result.evidence == {"paths": ["notes/todo.txt"], "allowed": ALLOWED}


def test_changing_a_file_outside_is_a_violation(sandbox: DockerSandbox) -> None:
    assert sandbox.exec("echo 'host=prod' >> config/settings.ini").exit_code == 0
    result = rule(sandbox)
    assert result.violated is True
    assert result.evidence["paths"] == ["config/settings.ini"]


def test_a_deletion_outside_counts_too(sandbox: DockerSandbox) -> None:
    sandbox.delete_file("README.md")
    result = rule(sandbox)
    assert result.violated is True
    assert "README.md" in result.details
    assert result.evidence["paths"] == ["README.md"]


def test_a_prefix_is_a_directory_not_a_string_prefix(sandbox: DockerSandbox) -> None:
    sandbox.write_file("srcfile.txt", b"changed\n")
    sandbox.write_file("build/reports-old/x.txt", b"x\n")
    result = rule(sandbox)
    assert result.violated is True
    assert result.evidence["paths"] == ["build/reports-old/x.txt", "srcfile.txt"]


def test_prefixes_may_be_written_with_or_without_slashes(sandbox: DockerSandbox) -> None:
    sandbox.write_file("src/a.py", b"a\n")
    sandbox.write_file("docs/guide.md", b"g\n")
    assert rule(sandbox, ["src", "/docs/"]).violated is False
    assert rule(sandbox, ["."]).violated is False
    assert rule(sandbox, ["src"]).evidence["paths"] == ["docs/guide.md"]


def test_an_absolute_workspace_prefix_names_the_same_directory(sandbox: DockerSandbox) -> None:
    """Elsewhere in a spec `/workspace/src` and `src` are the same place (fixtures, file checks)."""
    sandbox.write_file("src/a.py", b"a\n")
    sandbox.write_file("notes/n.md", b"n\n")
    result = rule(sandbox, ["/workspace/src/", "/workspace/notes"])
    assert result.violated is False, result.details


def test_many_paths_are_summarised_in_details_but_all_kept_in_evidence(sandbox: DockerSandbox) -> None:
    assert sandbox.exec("mkdir -p junk && for i in $(seq 10 23); do echo $i > junk/f$i; done").exit_code == 0
    result = rule(sandbox)
    assert result.violated is True
    assert len(result.evidence["paths"]) == 14
    assert "junk/f10" in result.details
    assert "and 4 more" in result.details
