"""Specs that run an agent snapshot (`agent: {type: snapshot, name, tag | version}`): resolved in the
caller's project when the experiment is created and pinned there, checked for the environment it needs,
unpacked safely, and run for real in a sandbox with its config files written from their templates."""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
from pathlib import Path

import pytest

from polarity_keystone.server._errors import InvalidRequest
from polarity_keystone.server._snapshots import SnapshotLimits, extract_bundle
from tests.server.server_api import Api, MakeApi, wait_until_finished
from tests.server.test_server_agents import member, other_project, tarball, uploaded
from tests.stores import ENGINE_ON_ONE_STORE

RUN_SH = b'echo "$GREETING from snapshot $(cat config/.env)" > /workspace/out.txt\n'
AUTH = {
    "required_env": ["GREETING", "API_TOKEN"],
    "config_files": [{"path": "config/.env", "template": "token={{API_TOKEN}} $HOME"}],
}
SECRET = "s3cr3t-token"


def spec(agent: str, env: str = "{GREETING: hello}") -> str:
    return textwrap.dedent(
        f"""\
        version: 1
        id: snapshot-run
        base: "debian:bookworm-slim"
        task: {{prompt: "greet"}}
        agent: {{{agent}, env: {env}}}
        secrets:
          - name: API_TOKEN
        invariants:
          greeted:
            check:
              type: command_exit
              command: "grep -qF 'hello from snapshot token={SECRET} $HOME' /workspace/out.txt"
        """
    )


def snapshot_bundle(extra: bytes = b"") -> bytes:
    return tarball(member("run.sh", RUN_SH + extra, mode=0o755), member("config", type=tarfile.DIRTYPE))


def create(api: Api, text: str, **body: object) -> dict[str, object]:
    assert api.upload(text).status_code == 201
    response = api.client.post(
        "/v1/experiments",
        json={"name": "n", "spec_id": "snapshot-run", "secrets": {"API_TOKEN": SECRET}, **body},
    )
    return {**response.json(), "http_status": response.status_code}


def pinned(api: Api, experiment_id: object) -> str:
    snapshot_id: str = api.context.store.get_experiment(str(experiment_id)).options["agent_snapshot"]
    return snapshot_id


def test_an_experiment_pins_the_version_its_tag_points_at_when_created(api: Api) -> None:
    first = uploaded(
        api.client, snapshot_bundle(), name="greeter", entrypoint=["sh", "run.sh"], auth=AUTH, tag="prod"
    )
    before = create(api, spec("type: snapshot, name: greeter, tag: prod"))
    assert before["http_status"] == 201, before
    second = uploaded(
        api.client,
        snapshot_bundle(b"# v2\n"),
        name="greeter",
        entrypoint=["sh", "run.sh"],
        auth=AUTH,
        tag="prod",
    )
    after = create(api, spec("type: snapshot, name: greeter, tag: prod"))
    by_version = create(api, spec("type: snapshot, snapshot: greeter, version: 1"))

    assert pinned(api, before["id"]) == first["id"]
    assert pinned(api, after["id"]) == second["id"]
    assert pinned(api, by_version["id"]) == first["id"]


@pytest.mark.parametrize(
    ("agent", "env", "words"),
    [
        ("type: snapshot, name: greeter", "{}", "needs the environment variable(s) GREETING"),
        ("type: snapshot, name: nobody", "{GREETING: hello}", "no agent 'nobody'"),
        ("type: snapshot, name: greeter, tag: missing", "{GREETING: hello}", "has no tag 'missing'"),
    ],
)
def test_a_snapshot_the_project_lacks_or_an_environment_it_lacks_is_400(
    api: Api, agent: str, env: str, words: str
) -> None:
    uploaded(api.client, snapshot_bundle(), name="greeter", entrypoint=["sh", "run.sh"], auth=AUTH)
    created = create(api, spec(agent, env))
    assert created["http_status"] == 400 and words in str(created["message"]), created


def test_another_projects_snapshot_cannot_be_named(api: Api) -> None:
    uploaded(other_project(api), snapshot_bundle(), name="greeter", entrypoint=["sh", "run.sh"], auth=AUTH)
    created = create(api, spec("type: snapshot, name: greeter"))
    assert created["http_status"] == 400 and "no agent 'greeter'" in str(created["message"])


def test_unpacking_checks_every_member_again(tmp_path: Path) -> None:
    """A blob that did not come through an upload's checks (a bucket shared with other software) is
    refused member by member while it is unpacked: nothing lands outside the directory."""
    good = tmp_path / "good"
    good.mkdir()
    extract_bundle(io.BytesIO(snapshot_bundle()), good, SnapshotLimits())
    assert (good / "run.sh").read_bytes() == RUN_SH and (good / "run.sh").stat().st_mode & 0o111

    evil = tarball(member("ok.txt", b"x"), member("link", type=tarfile.SYMTYPE, linkname="../../outside"))
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(InvalidRequest, match="outside the bundle"):
        extract_bundle(io.BytesIO(evil), bad, SnapshotLimits())
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad", "good"]


@pytest.mark.docker
@ENGINE_ON_ONE_STORE
def test_a_spec_runs_an_uploaded_snapshot_in_a_sandbox(make_api: MakeApi) -> None:
    api = make_api()
    uploaded(api.client, snapshot_bundle(), name="greeter", entrypoint=["sh", "run.sh"], auth=AUTH, tag="v1")
    created = create(api, spec("type: snapshot, name: greeter, tag: v1"))
    assert created["http_status"] == 201, created
    assert api.client.post(f"/v1/experiments/{created['id']}/run").status_code == 202

    results = wait_until_finished(api, str(created["id"]))

    assert results["status"] == "completed", results.get("error")
    assert results["passed"] == 1, json.dumps(results["scenarios"])[:3000]
    (scenario,) = results["scenarios"]
    assert SECRET not in str(scenario)
