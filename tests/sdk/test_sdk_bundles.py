"""`ks.specs.create` with a spec's local files: collected, negotiated by digest, only the missing blobs
sent, against the real server app (a shared server: no spec root, so only the bundle brings the files)."""

from __future__ import annotations

import hashlib
import os
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from polarity_keystone import Keystone
from polarity_keystone.sdk import NotFoundError
from polarity_keystone.spec import SpecError
from tests.sdk.sdk_servers import keystone_in_process

SPEC = textwrap.dedent(
    """\
    version: 1
    id: bundled
    description: a spec with local files
    base: "debian:bookworm-slim"
    task: {prompt: "run the agent"}
    agent: {type: cli, command: "sh /opt/agent/run.sh", path: agent}
    invariants:
      ok: {check: {type: custom, script: checks/ok.sh}}
    """
)


@pytest.fixture
def ks(tmp_path: Path) -> Iterator[Keystone]:
    with keystone_in_process(f"sqlite://{tmp_path / 'ks.db'}", data_dir=tmp_path / "data") as server:
        yield server.client()


def project(root: Path, spec: str = SPEC) -> Path:
    """A spec file with an agent directory and a check script beside it."""
    (root / "agent").mkdir(parents=True)
    (root / "agent" / "run.sh").write_text("echo hi > out.txt\n")
    (root / "agent" / "lib.sh").write_text("true\n")
    (root / "checks").mkdir()
    (root / "checks" / "ok.sh").write_text("test -f out.txt\n")
    (root / "spec.yaml").write_text(spec)
    return root / "spec.yaml"


def test_create_from_a_path_sends_the_files_and_the_server_runs_from_them(
    ks: Keystone, tmp_path: Path
) -> None:
    spec_file = project(tmp_path / "repo")

    spec = ks.specs.create(path=spec_file)
    sent = ks.specs.last_bundle
    experiment = ks.experiments.create("bundled", spec.id)

    assert spec.id == "bundled"
    assert sent is not None
    assert (sent.files, sent.blobs_sent) == (3, 3)
    assert sent.total_bytes == sent.bytes_sent == len("echo hi > out.txt\ntrue\ntest -f out.txt\n")
    assert experiment.options["bundle"] == sent.digest


def test_an_unchanged_reupload_sends_nothing_and_one_changed_file_sends_one_blob(
    ks: Keystone, tmp_path: Path
) -> None:
    spec_file = project(tmp_path / "repo")
    ks.specs.create(SPEC, source_dir=spec_file.parent)
    first = ks.specs.last_bundle

    ks.specs.create(path=spec_file)
    unchanged = ks.specs.last_bundle
    (spec_file.parent / "agent" / "lib.sh").write_text("echo changed\n")
    ks.specs.create(path=spec_file)
    changed = ks.specs.last_bundle

    assert first is not None and unchanged is not None and changed is not None
    assert (unchanged.digest, unchanged.blobs_sent, unchanged.bytes_sent) == (first.digest, 0, 0)
    assert (changed.blobs_sent, changed.bytes_sent) == (1, len("echo changed\n"))
    assert changed.digest != first.digest


def test_a_bundle_reads_back_as_the_manifest_that_was_sent(ks: Keystone, tmp_path: Path) -> None:
    spec_file = project(tmp_path / "repo")
    ks.specs.create(path=spec_file)
    sent = ks.specs.last_bundle
    assert sent is not None

    bundle = ks.specs.bundle(sent.digest)

    assert bundle.digest == sent.digest
    assert sorted(bundle.files) == ["agent/lib.sh", "agent/run.sh", "checks/ok.sh"]
    assert bundle.files["agent/lib.sh"].sha256 == hashlib.sha256(b"true\n").hexdigest()
    assert (bundle.files["agent/lib.sh"].size, bundle.files["agent/lib.sh"].mode) == (5, 0o644)
    with pytest.raises(NotFoundError):
        ks.specs.bundle(hashlib.sha256(b"no such bundle").hexdigest())


def test_yaml_without_a_directory_is_sent_as_text_with_no_bundle(ks: Keystone) -> None:
    plain = SPEC.replace(", path: agent", "").replace("script: checks/ok.sh", "command: test -f out.txt")

    spec = ks.specs.create(plain)

    assert (spec.id, ks.specs.last_bundle) == ("bundled", None)
    assert ks.experiments.create("plain", spec.id).options["bundle"] is None


@pytest.mark.parametrize(
    ("agent_path", "message"),
    [("../outside", "`..`"), ("agent-link", "through a symlink"), ("agent", "symlink leading out")],
)
def test_a_path_a_bundle_cannot_hold_names_the_file_and_field_and_nothing_is_sent(
    ks: Keystone, tmp_path: Path, agent_path: str, message: str
) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "run.sh").write_text("true\n")
    spec_file = project(tmp_path / "repo", SPEC.replace("path: agent", f"path: {agent_path}"))
    os.symlink(tmp_path / "outside", spec_file.parent / "agent-link")
    os.symlink(tmp_path / "outside" / "run.sh", spec_file.parent / "agent" / "escape.sh")

    with pytest.raises(SpecError) as caught:
        ks.specs.create(path=spec_file)

    (issue,) = caught.value.issues
    assert (issue.file, issue.field) == (str(spec_file), "agent.path")
    assert message in issue.message and issue.suggestion
    assert ks.specs.list() == []


def test_reuploading_a_50_mb_agent_with_one_changed_file_sends_that_file_only(
    ks: Keystone, tmp_path: Path
) -> None:
    spec_file = project(tmp_path / "repo")
    agent = spec_file.parent / "agent"
    for index in range(50):
        (agent / f"blob-{index:02}.bin").write_bytes(os.urandom(1 << 20))
    started = time.monotonic()

    ks.specs.create(path=spec_file)
    first = ks.specs.last_bundle
    (agent / "blob-17.bin").write_bytes(os.urandom(1 << 20))
    ks.specs.create(path=spec_file)
    again = ks.specs.last_bundle

    assert first is not None and again is not None
    assert first.total_bytes > 50 << 20 and first.bytes_sent == first.total_bytes
    assert (again.blobs_sent, again.bytes_sent) == (1, 1 << 20)
    assert time.monotonic() - started < 10
