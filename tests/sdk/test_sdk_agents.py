"""`ks.agents` against the real app (in-process): upload a directory, a file or a .tar.gz; get by latest,
tag, version and id; list pages; delete; what a directory upload leaves out, and that an unchanged
directory is the same snapshot."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from polarity_keystone import BadRequestError, ConflictError, NotFoundError
from polarity_keystone.sdk import AgentSnapshot
from polarity_keystone.sdk._agents import write_tarball
from polarity_keystone.types import AgentAuth, ConfigFile
from tests.sdk.sdk_servers import KeystoneServer

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
"""The store's side runs on both stores in the server tests; these test the client."""

AUTH = {
    "required_env": ["OPENAI_API_KEY"],
    "config_files": [{"path": ".env", "template": "K={{OPENAI_API_KEY}}"}],
}


def agent_dir(root: Path, text: str = "print('hi')") -> Path:
    (root / "lib").mkdir(parents=True)
    (root / "main.py").write_text(text)
    (root / "lib" / "tool.py").write_text("X = 1\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    for junk in (".git", "__pycache__", "node_modules", ".venv", "lib/__pycache__"):
        (root / junk).mkdir(parents=True)
        (root / junk / "big").write_bytes(b"x" * 1000)
    (root / "lib" / "tool.pyc").write_bytes(b"compiled")
    return root


def tarball_of(path: Path) -> bytes:
    buffer = io.BytesIO()
    write_tarball(path, buffer)
    return buffer.getvalue()


def test_a_directory_is_sent_without_junk_and_the_same_files_are_the_same_snapshot(
    server: KeystoneServer, tmp_path: Path
) -> None:
    ks = server.client()
    path = agent_dir(tmp_path / "agent")
    first = ks.agents.upload("email-agent", path, ["python3", "main.py"], auth=AUTH, tag="v1")

    assert isinstance(first, AgentSnapshot)
    assert (first.name, first.version, first.tag, first.tags) == ("email-agent", 1, "v1", ["v1"])
    assert first.entrypoint == ["python3", "main.py"] and first.runtime is None
    assert first.auth == AgentAuth(
        required_env=["OPENAI_API_KEY"],
        config_files=[ConfigFile(path=".env", template="K={{OPENAI_API_KEY}}")],
    )
    sent = tarball_of(path)
    assert first.id == f"snap_{hashlib.sha256(sent).hexdigest()}" and first.size_bytes == len(sent)
    with tarfile.open(fileobj=io.BytesIO(sent)) as archive:
        listed = {member.name: (member.mode, member.mtime) for member in archive.getmembers()}
    assert listed == {
        "lib": (0o755, 0),
        "lib/tool.py": (0o644, 0),
        "main.py": (0o644, 0),
        "run.sh": (0o755, 0),
    }

    (path / "main.py").touch()  # a new time, the same content
    again = ks.agents.upload("email-agent", path, ["python3", "main.py"], auth=AUTH)
    assert (again.id, again.version) == (first.id, 1)


def test_a_single_file_and_a_ready_tarball(server: KeystoneServer, tmp_path: Path) -> None:
    ks = server.client()
    script = tmp_path / "agent.py"
    script.write_text("print('one file')\n")
    single = ks.agents.upload("solo", script, ["python3", "agent.py"], runtime="python3.12")
    assert single.runtime == "python3.12"
    with tarfile.open(fileobj=io.BytesIO(tarball_of(script))) as archive:
        assert archive.getnames() == ["agent.py"]

    ready = tmp_path / "bundle.tar.gz"
    ready.write_bytes(gzip.compress(b"\0" * 1024, mtime=0)[:10] + b"junk")
    with pytest.raises(BadRequestError, match="not a valid gzip'd tar"):
        ks.agents.upload("solo", ready, ["python3", "agent.py"])
    ready.write_bytes(tarball_of(agent_dir(tmp_path / "other")))
    uploaded = ks.agents.upload("solo", ready, ["python3", "main.py"])
    assert uploaded.id == f"snap_{hashlib.sha256(ready.read_bytes()).hexdigest()}" and uploaded.version == 2

    with pytest.raises(FileNotFoundError):
        ks.agents.upload("solo", tmp_path / "missing", ["true"])


def test_get_list_and_delete(server: KeystoneServer, tmp_path: Path) -> None:
    ks = server.client()
    versions = [
        ks.agents.upload("email-agent", agent_dir(tmp_path / f"v{n}", f"print({n})"), ["python3", "main.py"])
        for n in (1, 2, 3)
    ]
    ks.agents.upload("email-agent", tmp_path / "v1", ["python3", "main.py"], tag="stable")
    ks.agents.upload("another", agent_dir(tmp_path / "another", "print('a')"), ["python3", "main.py"])

    assert ks.agents.get("email-agent").id == versions[2].id
    assert ks.agents.get("email-agent", tag="stable").id == versions[0].id
    assert ks.agents.get("email-agent", version=2).id == versions[1].id
    assert ks.agents.get_by_id(versions[1].id).version == 2
    with pytest.raises(ValueError, match="not both"):
        ks.agents.get("email-agent", tag="stable", version=1)

    items, cursor = ks.agents.list(limit=1)
    assert [item.name for item in items] == ["another"] and cursor
    items, cursor = ks.agents.list(limit=1, cursor=cursor)
    assert ([(item.name, item.version) for item in items], cursor) == ([("email-agent", 3)], None)
    items, cursor = ks.agents.list_versions("email-agent", limit=2)
    assert [item.version for item in items] == [3, 2] and cursor
    assert [item.version for item in ks.agents.list_versions("email-agent", cursor=cursor)[0]] == [1]

    ks.agents.delete(versions[2])
    ks.agents.delete(versions[1].id)
    assert ks.agents.get("email-agent").version == 1
    with pytest.raises(NotFoundError):
        ks.agents.get_by_id(versions[2].id)
    with pytest.raises(ConflictError, match="already"):
        ks.agents.upload("another", tmp_path / "v1", ["python3", "main.py"])
