"""Every dashboard route keeps to the signed-in key's project. The routes come from the app itself, so a
page added later is walked too: each path parameter is filled with one of project A's real ids (a route
with a parameter this walk cannot fill fails it), then project B's session must get 404 for every page and
fragment (a list page: none of A's ids) while A's session gets 200 for the same URLs, so B's 404s come from
isolation and not from a wrong URL. Without a session every route but sign-in and the static files
redirects to sign-in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from polarity_keystone.server import ServerSettings, close_app, create_app
from tests.dashboard.conftest import Served
from tests.server.server_api import spec_yaml

pytestmark = pytest.mark.docker

PUBLIC = ("/ui/sign-in", "/ui/static/")
"""Reachable without a session: the sign-in form and the vendored scripts and styles."""
ID_QUERIES = ("baseline", "candidate")
"""Query parameters that name an experiment: B naming A's gets a 404 like a path would."""
PARAMETER = re.compile(r"{(\w+)(?::\w+)?}")


def session_cookie(url: str, key: str) -> str:
    """The `ks_session` cookie signing in with `key` through the sign-in form gives, as a browser does."""
    answer = httpx.post(f"{url}/ui/sign-in", data={"api_key": key}, headers={"Origin": url})
    assert answer.status_code == 303, answer.text
    return answer.cookies["ks_session"]


@dataclass(frozen=True)
class UiRoute:
    method: str
    path: str
    """As declared: `/ui/experiments/{experiment_id}`."""
    parameters: tuple[str, ...]
    id_queries: tuple[str, ...]

    def url(self, ids: dict[str, str]) -> str:
        missing = [name for name in self.parameters if name not in ids]
        assert not missing, f"{self.method} {self.path}: the isolation walk has no id for {missing}; add one"
        path = PARAMETER.sub(lambda found: quote(ids[found.group(1)], safe=""), self.path)
        query = "&".join(f"{name}={quote(ids[name], safe='')}" for name in self.id_queries)
        return f"{path}?{query}" if query else path

    @property
    def public(self) -> bool:
        return self.path.startswith(PUBLIC)

    @property
    def names_ids(self) -> bool:
        return bool(self.parameters or self.id_queries)


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route reads, its dependencies' included."""
    names = {field.alias for field in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_names(dependency)
    return names


def ui_routes(tmp: Path) -> list[UiRoute]:
    """Every `/ui` route of the app as `ks serve` builds it."""
    app = create_app(ServerSettings(store_url=f"sqlite:///{tmp / 'routes.db'}"))
    try:
        found = []
        for route in iter_route_contexts(app.routes):
            path = route.path or ""
            if not path.startswith("/ui"):
                continue
            original = route.original_route
            queries: tuple[str, ...] = ()
            if isinstance(original, APIRoute):
                declared = _query_names(original.dependant)
                queries = tuple(name for name in ID_QUERIES if name in declared)
            for method in sorted(route.methods or ()):
                found.append(UiRoute(method, path, tuple(PARAMETER.findall(path)), queries))
        return found
    finally:
        close_app(app)


@dataclass(frozen=True)
class Walk:
    routes: list[UiRoute]
    ids: dict[str, str]
    """Path and query parameter names to project A's ids."""
    a: httpx.Client
    b: httpx.Client
    anonymous: httpx.Client


@pytest.fixture(scope="module")
def walk(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    api = httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.key}"}, timeout=120)
    with served.client() as keystone:
        keystone.specs.create(spec_yaml("iso-box"))
    created = api.post("/v1/sandboxes", json={"spec_id": "iso-box", "timeout": "10m"})
    assert created.status_code == 201, created.text
    results = api.get(f"/v1/experiments/{served.sloppy_id}").json()
    scenario = results["scenarios"][0]
    ids = {
        "experiment_id": served.sloppy_id,
        "scenario_id": scenario["scenario_id"],
        "replica_index": str(scenario["replicas"][0]["replica"]),
        "spec_id": results["spec_id"],
        "version": str(results["spec_version"]),
        "sandbox_id": created.json()["id"],
        "baseline": served.refund_ids[0],
        "candidate": served.refund_ids[1],
        "name": "keystone.css",
    }
    a, b = (
        httpx.Client(base_url=served.url, cookies={"ks_session": session_cookie(served.url, key)})
        for key in (served.key, served.other_key)
    )
    anonymous = httpx.Client(base_url=served.url)
    try:
        yield Walk(ui_routes(tmp_path_factory.mktemp("routes")), ids, a, b, anonymous)
    finally:
        api.delete(f"/v1/sandboxes/{ids['sandbox_id']}")
        for client in (api, a, b, anonymous):
            client.close()


def _pages(walk: Walk) -> list[UiRoute]:
    """The routes a session reads: GETs behind sign-in."""
    return [route for route in walk.routes if route.method == "GET" and not route.public]


def test_the_walk_covers_the_pages_every_helper_added(walk: Walk) -> None:
    paths = {route.path for route in walk.routes}
    assert {"/ui/experiments", "/ui/sandboxes", "/ui/sandboxes/{sandbox_id}"} <= paths
    for route in walk.routes:
        route.url(walk.ids)  # fails naming a parameter without an id


def test_project_b_gets_404_for_every_page_of_project_a_that_a_itself_reads(walk: Walk) -> None:
    leaks = []
    for route in _pages(walk):
        url = route.url(walk.ids)
        mine = walk.a.get(url, follow_redirects=True)
        assert mine.status_code == 200 and "/ui/sign-in" not in str(mine.url), (url, mine.status_code)
        theirs = walk.b.get(url, follow_redirects=True)
        if route.names_ids:
            if theirs.status_code != 404:
                leaks.append(f"{url}: {theirs.status_code}")
        else:
            assert theirs.status_code == 200, (url, theirs.status_code)
            named = [
                name
                for name in ("experiment_id", "sandbox_id", "baseline", "candidate")
                if walk.ids[name] in theirs.text
            ]
            if named:
                leaks.append(f"{url} shows A's {named}")
    assert not leaks, "project B reached project A's data:\n" + "\n".join(leaks)


def test_forms_that_name_an_id_are_404_for_project_b(walk: Walk) -> None:
    page = walk.b.get("/ui/experiments").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, "the signed-in page carries the sign-out form's CSRF token"
    for route in walk.routes:
        if route.method == "POST" and route.names_ids:
            answer = walk.b.post(
                route.url(walk.ids),
                data={"csrf_token": token.group(1)},
                headers={"Origin": str(walk.b.base_url)},
            )
            assert answer.status_code == 404, (route.path, answer.status_code)


def test_without_a_session_every_route_but_sign_in_and_static_redirects_to_sign_in(walk: Walk) -> None:
    for route in walk.routes:
        url = route.url(walk.ids)
        answer = walk.anonymous.request(route.method, url)
        if route.public:
            assert answer.status_code < 500, (route.method, url, answer.status_code)
            assert "/ui/sign-in?next=" not in answer.headers.get("location", ""), (route.method, url)
        else:
            assert answer.status_code == 303, (route.method, url, answer.status_code)
            assert answer.headers["location"].startswith("/ui/sign-in?next="), (url, answer.headers)
