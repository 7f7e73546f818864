"""Agent snapshots over HTTP: content-addressed ids, versions per name, movable tags, per-project
isolation, and every way an untrusted tarball is refused (each with a crafted tarball)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from polarity_keystone.server import create_api_key
from polarity_keystone.store import ProjectRecord
from tests.server.server_api import Api, MakeApi

ONE_STORE = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
"""For refusals decided before anything is stored: a second store would test nothing more."""
AGENT = {"name": "email-agent", "entrypoint": ["python3", "main.py"], "runtime": "python3.12"}


def member(name: str, data: bytes = b"", **attributes: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for attribute, value in attributes.items():
        setattr(info, attribute, value)
    return info, data


def tarball(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    """The same members make the same bytes (the gzip header's time is fixed)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return gzip.compress(buffer.getvalue(), mtime=0)


def agent_code(text: str = "print('hi')") -> bytes:
    return tarball(member("main.py", text.encode()), member("lib", type=tarfile.DIRTYPE))


def upload(client: httpx.Client, bundle: bytes, **metadata: Any) -> httpx.Response:
    return client.post(
        "/v1/agents",
        data={"metadata": json.dumps({**AGENT, **metadata})},
        files={"bundle": ("agent.tar.gz", bundle, "application/gzip")},
    )


def uploaded(client: httpx.Client, bundle: bytes, **metadata: Any) -> dict[str, Any]:
    response = upload(client, bundle, **metadata)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def other_project(api: Api) -> httpx.Client:
    api.context.store.add_project(ProjectRecord("prj_team_b", "team-b", datetime.now(UTC)))
    key, _ = create_api_key(api.context.store, "team-b", "prj_team_b")
    return api.as_key(key)


def test_the_same_bytes_are_the_same_snapshot_and_new_bytes_the_next_version(api: Api) -> None:
    first_bundle = agent_code()
    first = uploaded(api.client, first_bundle, tag="v1")
    sha = hashlib.sha256(first_bundle).hexdigest()
    assert first["id"] == f"snap_{sha}" and first["digest"] == f"sha256:{sha}"
    assert (first["version"], first["tag"], first["tags"]) == (1, "v1", ["v1"])
    assert first["size_bytes"] == len(first_bundle) and first["storage_path"] == "/agents/email-agent/v1"
    assert (first["entrypoint"], first["runtime"]) == (["python3", "main.py"], "python3.12")
    assert uploaded(api.client, first_bundle)["version"] == 1

    second = uploaded(api.client, agent_code("print('v2')"), tag="v1")
    assert second["version"] == 2
    client = api.client
    assert client.get("/v1/agents/email-agent/tags/v1").json()["id"] == second["id"]
    assert client.get("/v1/agents/email-agent/latest").json()["id"] == second["id"]
    assert client.get("/v1/agents/email-agent/versions/1").json()["tags"] == []
    assert client.get(f"/v1/snapshots/{first['id']}").json()["version"] == 1

    page = client.get("/v1/agents/email-agent/versions", params={"limit": 1}).json()
    assert [item["version"] for item in page["items"]] == [2] and page["next_cursor"]
    rest = client.get("/v1/agents/email-agent/versions", params={"cursor": page["next_cursor"]}).json()
    assert ([item["version"] for item in rest["items"]], rest["next_cursor"]) == ([1], None)

    uploaded(api.client, agent_code("another"), name="another-agent")
    listing = client.get("/v1/agents").json()
    assert [(item["name"], item["version"]) for item in listing["items"]] == [
        ("another-agent", 1),
        ("email-agent", 2),
    ]


def test_a_deleted_snapshots_version_is_never_given_again(api: Api) -> None:
    uploaded(api.client, agent_code("one"))
    second = uploaded(api.client, agent_code("two"), tag="prod")
    assert api.client.delete(f"/v1/snapshots/{second['id']}").status_code == 204
    for path in (f"/v1/snapshots/{second['id']}", "/v1/agents/email-agent/tags/prod", "/v1/agents/x/latest"):
        assert api.client.get(path).status_code == 404, path
    assert api.client.get("/v1/agents/email-agent/latest").json()["version"] == 1
    assert uploaded(api.client, agent_code("two"))["version"] == 3
    assert api.client.delete(f"/v1/snapshots/{second['id']}").status_code == 204
    assert api.client.delete(f"/v1/snapshots/{second['id']}").status_code == 404


def test_another_projects_snapshots_do_not_exist_for_a_key(api: Api) -> None:
    mine = uploaded(api.client, agent_code(), tag="v1")
    team_b = other_project(api)
    for path in (
        f"/v1/snapshots/{mine['id']}",
        "/v1/agents/email-agent/latest",
        "/v1/agents/email-agent/tags/v1",
        "/v1/agents/email-agent/versions/1",
        "/v1/agents/email-agent/versions",
    ):
        response = team_b.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
    assert team_b.delete(f"/v1/snapshots/{mine['id']}").status_code == 404
    assert team_b.get("/v1/agents").json() == {"items": [], "next_cursor": None}
    theirs = uploaded(team_b, agent_code())
    assert (theirs["id"], theirs["version"]) == (mine["id"], 1)
    assert api.client.get(f"/v1/snapshots/{mine['id']}").status_code == 200


def test_bytes_that_are_already_a_snapshot_keep_their_name_and_settings(api: Api) -> None:
    bundle = agent_code()
    uploaded(api.client, bundle)
    for metadata in ({"name": "other-agent"}, {"entrypoint": ["python3", "other.py"]}):
        response = upload(api.client, bundle, **metadata)
        assert response.status_code == 409, metadata
        assert "already" in response.json()["message"]


@ONE_STORE
@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ("not json", "metadata field"),
        (json.dumps({"name": "a"}), "entrypoint"),
        (json.dumps({**AGENT, "name": "../x"}), "name"),
        (json.dumps({**AGENT, "auth": {"config_files": [{"path": "../.env", "template": ""}]}}), ".."),
        (json.dumps({**AGENT, "auth": {"required_env": ["NOT-A-NAME"]}}), "required_env"),
    ],
)
def test_invalid_metadata_is_400(api: Api, metadata: str, words: str) -> None:
    response = api.client.post(
        "/v1/agents",
        data={"metadata": metadata},
        files={"bundle": ("agent.tar.gz", agent_code(), "application/gzip")},
    )
    assert response.status_code == 400, response.text
    assert words in response.json()["message"]


REFUSED_TARBALLS = {
    "not gzip'd": (gzip.decompress(agent_code()), "not gzip'd"),
    "gzip'd garbage": (gzip.compress(b"no tar here" * 100), "not a valid gzip'd tar"),
    "truncated": (agent_code()[:40], "not a valid gzip'd tar"),
    "empty": (tarball(), "empty"),
    "absolute path": (tarball(member("/etc/cron.d/evil", b"x")), "absolute"),
    "dot-dot path": (tarball(member("lib/../../evil", b"x")), "'..'"),
    "symlink out": (tarball(member("lib/x", type=tarfile.SYMTYPE, linkname="../../etc/passwd")), "outside"),
    "absolute symlink": (tarball(member("x", type=tarfile.SYMTYPE, linkname="/etc/passwd")), "outside"),
    "hard link out": (tarball(member("x", type=tarfile.LNKTYPE, linkname="../secret")), "outside"),
    "character device": (tarball(member("tty", type=tarfile.CHRTYPE, devmajor=5)), "device"),
    "fifo": (tarball(member("pipe", type=tarfile.FIFOTYPE)), "FIFO"),
}


@ONE_STORE
@pytest.mark.parametrize("case", REFUSED_TARBALLS)
def test_a_crafted_tarball_is_refused_with_a_clear_400(api: Api, case: str) -> None:
    bundle, words = REFUSED_TARBALLS[case]
    response = upload(api.client, bundle)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_bundle" and words in body["message"], body
    assert api.client.get("/v1/agents").json()["items"] == []


@ONE_STORE
def test_links_inside_the_bundle_are_kept(api: Api) -> None:
    bundle = tarball(
        member("lib/main.py", b"x"),
        member("main.py", type=tarfile.SYMTYPE, linkname="lib/main.py"),
        member("lib/copy.py", type=tarfile.LNKTYPE, linkname="lib/main.py"),
    )
    assert uploaded(api.client, bundle)["version"] == 1


@ONE_STORE
def test_too_many_members_a_gzip_bomb_and_a_too_large_body_are_413(make_api: MakeApi) -> None:
    api = make_api(
        max_body_bytes=16 * 1024,
        max_snapshot_bytes=256 * 1024,
        max_snapshot_unpacked_bytes=1024**2,
        max_snapshot_members=5,
    )
    many = tarball(*(member(f"f{index}.py", b"x") for index in range(6)))
    bomb = tarball(member("zeros", bytes(64 * 1024**2)))
    assert len(bomb) < 100 * 1024
    too_large = tarball(member("noise", os.urandom(300 * 1024)))
    for bundle, words in (
        (many, "more than 5 members"),
        (bomb, "unpacks to more than"),
        (too_large, "limit"),
    ):
        response = upload(api.client, bundle)
        assert response.status_code == 413, response.text
        assert words in response.json()["message"]
    # Larger than the server's general body limit, within the snapshot limit: streamed, accepted.
    assert uploaded(api.client, tarball(member("noise", os.urandom(100 * 1024))))["version"] == 1


@ONE_STORE
def test_a_chunked_upload_is_cut_off_at_the_snapshot_limit(make_api: MakeApi) -> None:
    """Without a Content-Length the body is counted as it streams in: 413 as soon as it passes the limit."""
    api = make_api(max_snapshot_bytes=64 * 1024)
    request = api.client.build_request(
        "POST",
        "/v1/agents",
        data={"metadata": json.dumps(AGENT)},
        files={"bundle": ("agent.tar.gz", os.urandom(200 * 1024), "application/gzip")},
    )
    body = request.read()
    sent = [body[start : start + 8192] for start in range(0, len(body), 8192)]
    response = api.client.post(
        "/v1/agents", content=iter(sent), headers={"Content-Type": request.headers["Content-Type"]}
    )
    assert response.status_code == 413, response.text
    assert "larger than this route's limit of 64.0 KiB" in response.json()["message"]


@ONE_STORE
def test_an_idempotency_key_on_an_upload_is_not_recorded(api: Api) -> None:
    """Recording it would hold the whole tarball in memory to hash it; the upload is content-addressed
    anyway, so sending it again answers the same snapshot."""
    headers = {"Idempotency-Key": "upload-1"}
    responses = [
        api.client.post(
            "/v1/agents",
            data={"metadata": json.dumps(AGENT)},
            files={"bundle": ("agent.tar.gz", bundle, "application/gzip")},
            headers=headers,
        )
        for bundle in (agent_code(), agent_code(), agent_code("other bytes, the same key"))
    ]
    assert [response.status_code for response in responses] == [201, 201, 201]
    assert not any("Idempotent-Replayed" in response.headers for response in responses)
    assert [response.json()["version"] for response in responses] == [1, 1, 2]
