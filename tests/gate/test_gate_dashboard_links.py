"""The gate's comment and summary link each spec's experiment to its dashboard page when the server outlives
the job (a server URL that is not loopback, or `dashboard-url`), and never to the embedded server's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from polarity_keystone.gate import resolve
from polarity_keystone.server import create_api_key
from polarity_keystone.store import open_store
from tests.dashboard.test_dashboard_isolation import session_cookie
from tests.gate.gate_env import gate, github_env
from tests.gate.gate_forges import Forge
from tests.ks_serve import ServeProcess, start_ks_serve

FLAGS = ("--specs", "specs/hello.yaml", "--replicas", "1", "--seed", "7")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, str]]:
    home = tmp_path_factory.mktemp("server-home")
    store_url = f"sqlite://{home / 'keystone.db'}"
    store = open_store(store_url)
    try:
        key = create_api_key(store, "gate links")[0]
    finally:
        store.close()
    server = start_ks_serve(store_url, home)
    try:
        yield server, key
    finally:
        assert server.stop() == 0, server.log()


@pytest.mark.parametrize(
    ("environ", "dashboard"),
    [
        ({"KEYSTONE_BASE_URL": "https://keystone.example.com/"}, "https://keystone.example.com"),
        ({"KEYSTONE_BASE_URL": "http://127.0.0.1:8000"}, None),
        ({"KEYSTONE_BASE_URL": "http://localhost:8000"}, None),
        ({"KEYSTONE_BASE_URL": "http://[::1]:8000"}, None),
        (
            {
                "KEYSTONE_BASE_URL": "http://keystone:8000",
                "KEYSTONE_DASHBOARD_URL": "https://ks.example.com/",
            },
            "https://ks.example.com",
        ),
        ({"KEYSTONE_DASHBOARD_URL": "https://ks.example.com"}, None),  # the embedded server
    ],
)
def test_where_the_experiments_link_to(environ: dict[str, str], dashboard: str | None) -> None:
    config = resolve(None, {"KEYSTONE_API_KEY": "ks_live_x", **environ})
    assert config.dashboard() == dashboard


def test_a_dashboard_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="dashboard-url"):
        resolve(None, {"KEYSTONE_DASHBOARD_URL": "javascript:alert(1)"})


@pytest.mark.docker
def test_a_served_gate_links_its_experiment_in_the_comment_and_the_summaries(
    served: tuple[ServeProcess, str], workdir: Path, forge: Forge
) -> None:
    server, key = served
    environ = {
        **github_env(workdir, GITHUB_API_URL=forge.base_url, KEYSTONE_COMMENT_TOKEN="pat-alice"),
        "KEYSTONE_BASE_URL": server.url,
        "KEYSTONE_API_KEY": key,
        "KEYSTONE_DASHBOARD_URL": server.url,  # on loopback here: named, as a job's public URL would be
    }

    run = gate(workdir, environ, *FLAGS)

    assert run.code == 0, run.log
    (experiment_id,) = [result["experiment_id"] for result in run.results["runs"]]
    link = f"[{experiment_id}]({server.url}/ui/experiments/{experiment_id})"
    (comment,) = forge.github.values()
    assert link in comment["body"]
    assert link in (workdir / "step-summary.md").read_text()
    assert link in (workdir / "keystone-summary.md").read_text()
    cookies = {"ks_session": session_cookie(server.url, key)}
    page = httpx.get(f"{server.url}/ui/experiments/{experiment_id}", cookies=cookies)
    assert page.status_code == 200 and experiment_id in page.text


@pytest.mark.docker
def test_the_embedded_server_gets_no_link(workdir: Path) -> None:
    environ = {**github_env(workdir), "KEYSTONE_DASHBOARD_URL": "https://keystone.example.com"}

    run = gate(workdir, environ, *FLAGS, "--comment", "off")

    assert run.code == 0, run.log
    (experiment_id,) = [result["experiment_id"] for result in run.results["runs"]]
    for summary in ("step-summary.md", "keystone-summary.md"):
        text = (workdir / summary).read_text()
        assert f"| {experiment_id} |" in text and "/ui/experiments/" not in text
