"""`/v1/prompts` on both stores: versions per slug, reading by latest, version, tag and id, listing and
paging, deleting (numbers never reused, a tag falling back), rendering, the bounds a caller is held to,
and one project never reaching another's prompts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from polarity_keystone.server import create_api_key
from polarity_keystone.server._prompt_render import MAX_DEPTH, MAX_OUTPUT_CHARS, MAX_TEMPLATE_CHARS
from polarity_keystone.server._prompts import MAX_PROMPT_VERSIONS_PER_PROJECT
from polarity_keystone.store import ProjectRecord
from tests.server.server_api import Api


def _create(client: httpx.Client, slug: str = "greeting", template: str = "Hello {name}", **body: Any) -> Any:
    answer = client.post("/v1/prompts", json={"slug": slug, "template": template, **body})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _get(client: httpx.Client, path: str, **params: Any) -> Any:
    answer = client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _error(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) >= {"error", "message", "request_id"}
    message: str = body["message"]
    return message


def test_versions_count_up_per_slug_and_each_is_readable(api: Api) -> None:
    first = _create(api.client, metadata={"owner": "support"})
    second = _create(api.client, template="Hi {{ name }} from {team.name}")
    other = _create(api.client, "farewell", "Bye {name}")

    assert first["id"].startswith("prm_") and first["id"] != second["id"]
    assert (first["slug"], first["version"], first["template"]) == ("greeting", 1, "Hello {name}")
    assert (first["variables"], first["metadata"], first["tag"]) == (["name"], {"owner": "support"}, None)
    assert (second["version"], second["variables"]) == (2, ["name", "team"])
    assert other["version"] == 1

    assert _get(api.client, "/v1/prompts/greeting/latest") == second
    assert _get(api.client, "/v1/prompts/greeting/versions/1") == first
    assert _get(api.client, f"/v1/prompts/{first['id']}") == first
    assert [p["version"] for p in _get(api.client, "/v1/prompts/greeting/versions")] == [2, 1]
    assert [(p["slug"], p["version"]) for p in _get(api.client, "/v1/prompts")] == [
        ("farewell", 1),
        ("greeting", 2),
    ]


def test_declared_variables_are_kept_as_given(api: Api) -> None:
    created = _create(api.client, template="{a} {b}", variables=["b", "a", "b", "extra"])
    assert created["variables"] == ["b", "a", "extra"]


def test_a_tag_names_the_newest_version_created_with_it_and_falls_back_when_that_is_deleted(api: Api) -> None:
    v1 = _create(api.client, tag="prod")
    v2 = _create(api.client, tag="staging")
    v3 = _create(api.client, tag="prod")
    assert _get(api.client, "/v1/prompts/greeting/tags/prod")["id"] == v3["id"]
    assert _get(api.client, "/v1/prompts/greeting/tags/staging")["id"] == v2["id"]

    assert api.client.delete(f"/v1/prompts/{v3['id']}").status_code == 204
    assert _get(api.client, "/v1/prompts/greeting/tags/prod")["id"] == v1["id"]
    assert _get(api.client, "/v1/prompts/greeting/latest")["id"] == v2["id"]
    assert "no version tagged 'canary'" in _error(api.client.get("/v1/prompts/greeting/tags/canary"), 404)


def test_a_deleted_version_is_gone_and_its_number_never_given_again(api: Api) -> None:
    v1 = _create(api.client)
    v2 = _create(api.client)
    assert api.client.delete(f"/v1/prompts/{v2['id']}").status_code == 204
    _error(api.client.delete(f"/v1/prompts/{v2['id']}"), 404)
    _error(api.client.get(f"/v1/prompts/{v2['id']}"), 404)
    _error(api.client.get("/v1/prompts/greeting/versions/2"), 404)
    _error(api.client.post(f"/v1/prompts/{v2['id']}/render", json={}), 404)
    assert _create(api.client)["version"] == 3

    assert api.client.delete(f"/v1/prompts/{v1['id']}").status_code == 204
    assert [p["version"] for p in _get(api.client, "/v1/prompts/greeting/versions")] == [3]


def test_missing_prompts_answer_404(api: Api) -> None:
    assert "no prompt 'nope'" in _error(api.client.get("/v1/prompts/nope/latest"), 404)
    _error(api.client.get("/v1/prompts/nope/versions"), 404)
    _error(api.client.get("/v1/prompts/nope/versions/1"), 404)
    _error(api.client.get("/v1/prompts/prm_missing"), 404)
    assert _get(api.client, "/v1/prompts") == []


def test_listings_page_with_a_cursor(api: Api) -> None:
    for slug in ("a", "b", "c"):
        _create(api.client, slug)
    for _ in range(2):
        _create(api.client, "a")
    first = api.client.get("/v1/prompts", params={"limit": 2})
    assert [p["slug"] for p in first.json()] == ["a", "b"]
    rest = _get(api.client, "/v1/prompts", limit=2, cursor=first.headers["X-Next-Cursor"])
    assert [p["slug"] for p in rest] == ["c"]

    page = api.client.get("/v1/prompts/a/versions", params={"limit": 2})
    assert [p["version"] for p in page.json()] == [3, 2]
    last = _get(api.client, "/v1/prompts/a/versions", limit=2, cursor=page.headers["X-Next-Cursor"])
    assert [p["version"] for p in last] == [1]


def test_render_fills_variables_sections_and_leaves_unknown_ones(api: Api) -> None:
    prompt = _create(
        api.client,
        "support",
        "Dear {{customer.name}},\n{#orders}- {id}: {_it.total} EUR\n{/orders}{#vip}Thanks for staying!{/vip}"
        " Ref {ticket}",
    )
    variables = {
        "customer": {"name": "Ada"},
        "orders": [{"id": "o1", "total": 12.5}, {"id": "o2", "total": 3}],
    }
    answer = api.client.post(
        f"/v1/prompts/{prompt['id']}/render", json={"variables": {**variables, "vip": True}}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "rendered": "Dear Ada,\n- o1: 12.5 EUR\n- o2: 3 EUR\nThanks for staying! Ref {ticket}"
    }
    bare = api.client.post(f"/v1/prompts/{prompt['id']}/render", json={})
    assert bare.json()["rendered"] == "Dear {{customer.name}},\n Ref {ticket}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"slug": "greeting", "template": "{#a}open"}, "never closed"),
        ({"slug": "greeting", "template": "{#a}" * (MAX_DEPTH + 1) + "{/a}" * (MAX_DEPTH + 1)}, "deep"),
        ({"slug": "greeting", "template": "x" * (MAX_TEMPLATE_CHARS + 1)}, "template"),
        ({"slug": "greeting", "template": ""}, "template"),
        ({"slug": "has/slash", "template": "t"}, "slug"),
        ({"slug": "", "template": "t"}, "slug"),
        ({"slug": "s", "template": "t", "tag": "bad tag"}, "tag"),
        ({"slug": "s", "template": "t", "metadata": {"k": "v" * 70_000}}, "metadata"),
        ({"template": "t"}, "slug"),
    ],
)
def test_invalid_prompts_are_refused(api: Api, body: dict[str, Any], message: str) -> None:
    assert message in _error(api.client.post("/v1/prompts", json=body), 400)


def test_a_render_past_the_output_or_work_limit_is_a_clear_422(api: Api) -> None:
    huge = _create(api.client, "huge", "{#rows}{big}{/rows}")
    variables = {"rows": list(range(11)), "big": "x" * 100_000}
    answer = api.client.post(f"/v1/prompts/{huge['id']}/render", json={"variables": variables})
    assert f"{MAX_OUTPUT_CHARS} characters" in _error(answer, 422)
    assert answer.json()["error"] == "render_too_large"

    nested = _create(api.client, "nested", "{#a}" * 5 + "{/a}" * 5)
    answer = api.client.post(
        f"/v1/prompts/{nested['id']}/render", json={"variables": {"a": list(range(100))}}
    )
    assert "steps" in _error(answer, 422)


def test_render_variables_are_bounded(api: Api) -> None:
    prompt = _create(api.client)
    answer = api.client.post(f"/v1/prompts/{prompt['id']}/render", json={"variables": {"v": "x" * 1_100_000}})
    assert "variables may be at most 1048576 bytes" in _error(answer, 400)


def test_a_project_holds_a_bounded_number_of_versions(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("polarity_keystone.server._routes_prompts.MAX_PROMPT_VERSIONS_PER_PROJECT", 2)
    assert MAX_PROMPT_VERSIONS_PER_PROJECT > 2
    _create(api.client)
    doomed = _create(api.client, "other")
    assert "the most it may have (2)" in _error(
        api.client.post("/v1/prompts", json={"slug": "third", "template": "t"}), 409
    )
    assert api.client.delete(f"/v1/prompts/{doomed['id']}").status_code == 204
    _create(api.client, "third")


def test_another_projects_prompts_are_404_and_never_listed(api: Api) -> None:
    store = api.context.store
    for project in ("proj_a", "proj_b"):
        store.add_project(ProjectRecord(project, project.replace("_", "-"), datetime.now(UTC)))
    a = api.as_key(create_api_key(store, "a", "proj_a")[0])
    b = api.as_key(create_api_key(store, "b", "proj_b")[0])
    mine = _create(a, tag="prod")
    theirs = _create(b, template="B's own {name}")

    assert theirs["version"] == 1, "versions count per project"
    for path in (
        "/v1/prompts/greeting/latest",
        "/v1/prompts/greeting/versions/1",
        "/v1/prompts/greeting/tags/prod",
    ):
        assert _get(b, path)["id"] == theirs["id"] if "tags" not in path else b.get(path).status_code == 404
    _error(b.get(f"/v1/prompts/{mine['id']}"), 404)
    _error(b.post(f"/v1/prompts/{mine['id']}/render", json={}), 404)
    _error(b.delete(f"/v1/prompts/{mine['id']}"), 404)
    assert [p["id"] for p in _get(b, "/v1/prompts")] == [theirs["id"]]
    assert [p["id"] for p in _get(b, "/v1/prompts/greeting/versions")] == [theirs["id"]]
    assert _get(a, f"/v1/prompts/{mine['id']}") == mine
