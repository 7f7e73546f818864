"""`/v1/specs`: raw YAML uploads validated by the spec loader, versions, pages, deletion, local paths."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.server.server_api import Api, spec_yaml


def test_an_upload_is_validated_stored_and_versioned_by_id(api: Api) -> None:
    text = spec_yaml(description="first")

    first = api.upload(text)
    same = api.upload(text)
    changed = api.upload(spec_yaml(description="second"))

    assert first.status_code == 201
    body = first.json()
    assert (body["id"], body["version"], body["name"], body["description"]) == ("hello", 1, "hello", "first")
    assert body["yaml"] == text
    assert body["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert same.json()["version"] == 1
    assert changed.json()["version"] == 2
    assert api.client.get("/v1/specs/hello").json()["description"] == "second"
    assert api.client.get("/v1/specs/hello", params={"version": 1}).json()["description"] == "first"


def test_text_yaml_and_the_json_form_of_the_seed_are_accepted(api: Api) -> None:
    as_text = api.client.post("/v1/specs", content=spec_yaml("a"), headers={"Content-Type": "text/yaml"})
    as_json = api.client.post("/v1/specs", json={"name": "B", "yaml": spec_yaml("b")})
    unsupported = api.client.post(
        "/v1/specs", content=b"<spec/>", headers={"Content-Type": "application/xml"}
    )

    assert as_text.status_code == as_json.status_code == 201
    assert as_json.json()["id"] == "b"
    assert unsupported.status_code == 415
    assert unsupported.json()["error"] == "unsupported_media_type"


def test_an_invalid_spec_is_400_with_every_issue_located(api: Api) -> None:
    text = spec_yaml() + "paralelism: {replicas: 2}\n"

    response = api.upload(text, filename="specs/hello.yaml")

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_spec"
    (issue,) = body["details"]["issues"]
    assert issue["file"] == "specs/hello.yaml"
    assert issue["line"] == text.splitlines().index("paralelism: {replicas: 2}") + 1
    assert issue["field"] == "paralelism"
    assert "parallelism" in (issue["suggestion"] or issue["message"])
    assert "specs/hello.yaml:" in body["message"]
    assert api.client.get("/v1/specs/hello").status_code == 404


def test_yaml_that_does_not_parse_or_is_not_utf8_is_400(api: Api) -> None:
    broken = api.upload("id: [unclosed")
    binary = api.client.post("/v1/specs", content=b"\xff\xfe\x00", headers={"Content-Type": "text/yaml"})

    assert broken.status_code == 400 and broken.json()["error"] == "invalid_spec"
    assert binary.status_code == 400 and binary.json()["error"] == "invalid_request"


def test_list_pages_with_a_cursor(api: Api) -> None:
    for spec_id in ("a", "b", "c"):
        api.upload(spec_yaml(spec_id))

    first = api.client.get("/v1/specs", params={"limit": 2})
    cursor = first.headers["X-Next-Cursor"]
    rest = api.client.get("/v1/specs", params={"limit": 2, "cursor": cursor})
    bogus = api.client.get("/v1/specs", params={"cursor": "not-a-cursor"})

    assert [s["id"] for s in first.json()] == ["a", "b"]
    assert first.links["next"]["url"] == f"{api.base_url}/v1/specs?cursor={cursor}&limit=2"
    assert [s["id"] for s in rest.json()] == ["c"]
    assert "X-Next-Cursor" not in rest.headers and "Link" not in rest.headers
    assert bogus.status_code == 400 and bogus.json()["error"] == "invalid_cursor"


def test_delete_hides_the_spec(api: Api) -> None:
    api.upload(spec_yaml())

    deleted = api.client.delete("/v1/specs/hello")

    assert deleted.status_code == 204
    assert api.client.get("/v1/specs/hello").json()["error"] == "not_found"
    assert api.client.delete("/v1/specs/hello").status_code == 404


AGENT_SPEC = spec_yaml("local-agent").replace(
    "agent: {type: cli, command: 'echo hi'}",
    "agent: {type: cli, path: agent, command: 'sh /opt/agent/run.sh'}",
)


def test_a_directory_the_client_names_is_never_read_its_files_come_in_a_bundle(
    api: Api, tmp_path: Path
) -> None:
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "run.sh").write_text("echo hi\n")

    response = api.upload(AGENT_SPEC, source_dir=str(tmp_path))  # the query parameter of old clients

    assert response.status_code == 400
    (issue,) = response.json()["details"]["issues"]
    assert issue["field"] == "agent.path" and "no spec root" in issue["message"]
