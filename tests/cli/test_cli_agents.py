"""`ks agents upload|list|get|delete` against the embedded server (the default without KEYSTONE_BASE_URL)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from polarity_keystone import cli
from polarity_keystone.cli import _agents


def test_upload_list_get_and_delete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYSTONE_BASE_URL", raising=False)
    monkeypatch.setattr(_agents, "err", Console(stderr=True, highlight=False, width=1000))
    agent = tmp_path / "agent"
    (agent / ".git").mkdir(parents=True)
    (agent / "main.py").write_text("print('hi')\n")
    (tmp_path / "env.tpl").write_text("KEY={{API_KEY}}\n")

    def ks(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(["agents", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, err = ks(
        "upload", "greeter", str(agent), "--entrypoint", "python3 main.py", "--tag", "v1",
        "--required-env", "API_KEY", "--config-file", ".env=env.tpl",
    )  # fmt: skip
    assert code == 0, err
    snapshot = json.loads(out)
    assert (snapshot["name"], snapshot["version"], snapshot["tags"]) == ("greeter", 1, ["v1"])
    assert snapshot["entrypoint"] == ["python3", "main.py"]
    assert snapshot["auth"] == {
        "required_env": ["API_KEY"],
        "config_files": [{"path": ".env", "template": "KEY={{API_KEY}}\n"}],
    }
    assert f"greeter version 1: {snapshot['id']}" in err

    code, out, err = ks("list")
    assert code == 0 and [item["id"] for item in json.loads(out)] == [snapshot["id"]]
    assert re.search(rf"greeter\s+v1\s+v1\s+{snapshot['id']}", err)
    assert json.loads(ks("list", "--versions", "greeter")[1])[0]["version"] == 1
    assert json.loads(ks("get", "greeter", "--tag", "v1")[1])["id"] == snapshot["id"]
    assert json.loads(ks("get", snapshot["id"])[1])["version"] == 1

    assert ks("delete", snapshot["id"])[0] == 0
    code, _, err = ks("get", snapshot["id"])
    assert code == 2 and "404" in err
    code, _, err = ks("upload", "greeter", str(tmp_path / "missing"), "--entrypoint", "true")
    assert code == 2 and "no file or directory" in err
