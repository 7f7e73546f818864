"""A spec uploaded to a shared server is untrusted: it cannot make the server run commands, read its
files or environment, or ship the server's files into a sandbox. The operator's allow-list and the
request carry secrets; the embedded (local user's) server keeps reading the user's own machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.server.server_api import Api, MakeApi, spec_yaml


def _secret_spec(source: str) -> str:
    return spec_yaml(extra=f"secrets:\n  - name: API_KEY\n    source: {source!r}\n")


def _create(api: Api, **body: object) -> tuple[int, dict[str, object]]:
    response = api.client.post("/v1/experiments", json={"name": "trust", "spec_id": "hello", **body})
    return response.status_code, response.json()


@pytest.mark.parametrize("kind", ["command", "file", "env", "default env"])
def test_a_shared_server_refuses_a_spec_secret_read_on_the_server_with_a_400_naming_the_fix(
    make_api: MakeApi, tmp_path: Path, kind: str
) -> None:
    marker = tmp_path / "ran"
    sources = {
        "command": f"command:touch {marker}; echo stolen",
        "file": "file:/etc/hostname",
        "env": "env:HOME",
        "default env": "env",
    }
    api = make_api()
    assert api.upload(_secret_spec(sources[kind])).status_code == 201

    status, body = _create(api)

    assert status == 400
    assert body["error"] == "invalid_secrets"
    message = str(body["message"])
    assert message.startswith("secret API_KEY: its source") and "request_id" in body
    assert "send its value with the request" in message
    assert "ks serve --secret API_KEY=env:VAR" in message
    assert not marker.exists()  # the command never ran on the server
    assert api.context.store.list_experiments("default", cursor=None, limit=10).items == []


def test_sandbox_creation_is_refused_before_anything_boots(make_api: MakeApi, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    api = make_api()
    assert api.upload(_secret_spec(f"command:touch {marker}")).status_code == 201

    response = api.client.post("/v1/sandboxes", json={"spec_id": "hello"})

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_secrets"
    assert not marker.exists()


def test_a_secret_sent_with_the_request_or_allowed_by_the_operator_is_accepted(
    make_api: MakeApi, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    shared = make_api()
    allowing = make_api(operator_secrets={"API_KEY": "env:KEYSTONE_TRUST_TEST"})
    for api in (shared, allowing):
        assert api.upload(_secret_spec(f"command:touch {marker}")).status_code == 201

    assert _create(shared, secrets={"API_KEY": "from-the-request"})[0] == 201
    assert _create(allowing)[0] == 201
    assert not marker.exists()


def test_the_operator_source_is_read_instead_of_the_spec_source() -> None:
    from polarity_keystone.secrets import resolve_fixed
    from polarity_keystone.server import ServerSettings
    from polarity_keystone.spec import Secret

    settings = ServerSettings(
        store_url="sqlite:///unused.db", operator_secrets={"API_KEY": "command:echo op"}
    )
    declared = [Secret(name="API_KEY", source="command:echo from-the-spec")]

    assert resolve_fixed(declared, {}, settings.secret_policy) == {"API_KEY": "op"}


def test_a_malformed_operator_secret_is_refused_when_the_server_is_configured() -> None:
    from polarity_keystone.server import ServerSettings

    with pytest.raises(ValueError, match="must be env:VAR, file:PATH or command:CMD"):
        ServerSettings(store_url="sqlite:///unused.db", operator_secrets={"API_KEY": "vault:x"})


def test_the_embedded_server_keeps_reading_the_local_users_machine(make_api: MakeApi, tmp_path: Path) -> None:
    api = make_api(host_sources=True)
    assert api.upload(_secret_spec("command:echo local")).status_code == 201

    assert _create(api)[0] == 201


def _with_agent_path(path: str) -> str:
    return spec_yaml().replace("agent: {type: cli,", f"agent: {{path: {path!r}, type: cli,")


@pytest.mark.parametrize("agent_path", ["/etc", "../../../../etc", "agent"])
def test_a_shared_server_without_a_spec_root_refuses_every_local_path(api: Api, agent_path: str) -> None:
    response = api.upload(_with_agent_path(agent_path))

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_spec"
    (issue,) = body["details"]["issues"]
    assert (issue["field"], issue["line"]) == ("agent.path", 6)
    assert "this server has no spec root" in issue["message"]
    assert "git_repo fixture" in issue["suggestion"]


@pytest.mark.parametrize(
    ("agent_path", "problem"),
    [
        ("/etc", "`/etc` is an absolute path"),
        ("../../../../etc", "leads out of the spec's directory with `..`"),
        ("escape", "leads out of the spec's directory through a symlink"),
        ("agent/../../outside", "leads out of the spec's directory with `..`"),
    ],
)
def test_with_a_spec_root_paths_are_confined_to_it(
    make_api: MakeApi, tmp_path: Path, agent_path: str, problem: str
) -> None:
    root, outside = tmp_path / "specs", tmp_path / "outside"
    (root / "agent").mkdir(parents=True)
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    api = make_api(spec_root=root)
    assert api.upload(_with_agent_path("agent")).status_code == 201

    refused = api.upload(_with_agent_path(agent_path))

    assert refused.status_code == 400
    (issue,) = refused.json()["details"]["issues"]
    assert (issue["field"], issue["line"]) == ("agent.path", 6)
    assert problem in issue["message"]


def test_a_sql_fixture_file_outside_the_root_is_never_read_into_the_error(
    make_api: MakeApi, tmp_path: Path
) -> None:
    root = tmp_path / "specs"
    root.mkdir()
    secret_file = tmp_path / "host-secret.txt"
    secret_file.write_text("host-password-1234\n")
    api = make_api(spec_root=root)
    spec = spec_yaml(
        extra=f"""\
        services: [{{name: db, image: "postgres:16"}}]
        fixtures:
          - {{type: sql, service: db, file: {os.path.relpath(secret_file, root)!r}}}
        """
    )

    response = api.upload(spec)

    assert response.status_code == 400
    assert "host-password-1234" not in response.text
    (issue,) = response.json()["details"]["issues"]
    assert issue["field"] == "fixtures[0].file"
