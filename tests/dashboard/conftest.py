"""A served Keystone with real results in it, and a real Chromium to look at its dashboard.

Once per session: `ks serve` (auth on, SQLite) with two projects; project A runs the shipped examples for
real in Docker: refund-agent three times on `main` (a trend, a baseline and a candidate) and sloppy-agent
once (a forbidden rule with its evidence). Project B has a key and nothing else.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from polarity_keystone.sdk import Keystone
from tests.dashboard.browser import Dashboard, dashboard_session, launch
from tests.examples.shipped_examples import EXAMPLES
from tests.ks_serve import ServeProcess, start_ks_serve

pytestmark = pytest.mark.docker


@dataclass(frozen=True)
class Served:
    url: str
    key: str
    """Project A's key (the default project): it ran everything below."""
    other_key: str
    """Project B's key: it owns nothing."""
    refund_ids: list[str]
    """refund-agent's experiments on main, oldest first: all passed."""
    sloppy_id: str
    """sloppy-agent's experiment: failed on a forbidden rule."""
    store_url: str
    server: ServeProcess

    def client(self) -> Keystone:
        return Keystone(api_key=self.key, base_url=self.url)

    def new_project(self, name: str) -> str:
        """A project of `name` of its own on this server (for a test that must know all it holds); its
        key."""
        workdir, store = self.server.output.parent, self.store_url
        subprocess.run(
            [sys.executable, "-m", "polarity_keystone", "projects", "create", name, "--store", store],
            cwd=workdir,
            capture_output=True,
            check=True,
        )
        return _key(store, workdir, f"{name}-key", "--project", name)


def _key(store_url: str, workdir: Path, *arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "polarity_keystone", "keys", "create", *arguments, "--store", store_url],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"ks_live_\S+", done.stdout)
    assert found, done.stdout + done.stderr
    return found.group(0)


def run_example(client: Keystone, spec: str, *, commit: str, replicas: int = 2, seed: int = 7) -> str:
    """The example's spec uploaded (with its agent) and run to the end on `main`; the experiment's id."""
    path = EXAMPLES / spec
    uploaded = client.specs.create(path=path)
    experiment = client.experiments.create(
        f"{uploaded.id} @ {commit}",
        uploaded.id,
        spec_path=path,
        metadata={"branch": "main", "commit": commit, "repo": "polarity/keystone-examples"},
        replicas=replicas,
        seed=seed,
    )
    results = client.experiments.run_and_wait(experiment.id, timeout=300)
    assert results.status == "completed", (results.status, results.error)
    return experiment.id


@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("dashboard")
    store_url = f"sqlite:///{workdir / 'keystone.db'}"
    key = _key(store_url, workdir, "dashboard-tests")
    subprocess.run(
        [sys.executable, "-m", "polarity_keystone", "projects", "create", "team-b", "--store", store_url],
        cwd=workdir,
        capture_output=True,
        check=True,
    )
    other_key = _key(store_url, workdir, "team-b-key", "--project", "team-b")
    server = start_ks_serve(store_url, workdir, "--warm-pool", "0")
    try:
        with Keystone(api_key=key, base_url=server.url) as client:
            refund_ids = [
                run_example(client, "refund-agent/refund.yaml", commit=commit, seed=seed)
                for commit, seed in (("a1b2c3d", 1), ("b2c3d4e", 2), ("c3d4e5f", 3))
            ]
            sloppy_id = run_example(client, "sloppy-agent/sloppy.yaml", commit="c3d4e5f")
        yield Served(server.url, key, other_key, refund_ids, sloppy_id, store_url, server)
    finally:
        server.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Closed when this package's tests end: Playwright's sync API keeps its event loop marked running
    in this thread while it lives, which would break every later test that runs an asyncio loop."""
    with sync_playwright() as playwright:
        launched = launch(playwright)
        yield launched
        launched.close()


@pytest.fixture
def dashboard(browser: Browser, served: Served) -> Iterator[Dashboard]:
    """A browser session signed in with project A's key; it fails the test if any page it opened reported
    a console error, an uncaught exception or a failed request."""
    with dashboard_session(browser, served.url) as session:
        session.sign_in(served.key)
        yield session
        problems = session.problems()
    assert not problems, "\n".join(problems)
