"""`ks ui` as a user runs it: after `ks eval run` wrote the local store (or while it writes it), it serves
that store's dashboard on 127.0.0.1 with no sign-in, prints the URL, and stops on Ctrl-C with exit 0."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.dashboard.browser import assert_accessible, launch, screenshot
from tests.examples.shipped_examples import EXAMPLES
from tests.ks_command import ks_executable, run_ks
from tests.ks_serve import UNBUFFERED, free_port
from tests.server.server_api import spec_yaml
from tests.waiting import wait_until

pytestmark = pytest.mark.docker


@contextmanager
def ks_ui(cwd: Path, *options: str) -> Iterator[str]:
    """`ks ui --no-open OPTIONS` running in `cwd`; yields the URL it printed; Ctrl-C at the end exits 0."""
    output = cwd / "ui.out"
    with output.open("w") as sink:
        ui = subprocess.Popen(
            [ks_executable(), "ui", "--no-open", *options],
            cwd=cwd,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=UNBUFFERED,
        )
    try:
        printed = wait_until(
            lambda: re.search(r"http://127\.0\.0\.1:\d+/ui/", output.read_text()) or ui.poll() is not None,
            30,
            "ks ui prints its URL",
        )
        assert isinstance(printed, re.Match), output.read_text()
        yield printed.group(0)
        ui.send_signal(signal.SIGINT)
        assert ui.wait(15) == 0, output.read_text()
    finally:
        if ui.poll() is None:
            ui.kill()
            ui.wait()


def test_ks_ui_serves_the_local_store_without_sign_in_until_ctrl_c(tmp_path: Path) -> None:
    ran = run_ks(["eval", "run", str(EXAMPLES / "hello-world" / "hello.yaml"), "--json"], cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    experiment_id = json.loads(ran.stdout)["experiment_id"]
    assert (tmp_path / ".keystone" / "keystone.db").exists()

    port = free_port()
    with ks_ui(tmp_path, "--port", str(port)) as url:
        assert url == f"http://127.0.0.1:{port}/ui/"
        page = httpx.get(url, follow_redirects=True)
        assert page.status_code == 200 and page.url.path == "/ui/experiments", (page.status_code, page.url)
        assert experiment_id in page.text and "hello-world" in page.text
        named = httpx.get(url + "experiments", headers={"Host": f"localhost:{port}"})
        assert named.status_code == 200
        rebound = httpx.get(url + "experiments", headers={"Host": f"rebound.example:{port}"})
        assert rebound.status_code == 403 and experiment_id not in rebound.text
        with sync_playwright() as playwright:
            browser = launch(playwright)
            seen = browser.new_page()
            seen.goto(url)
            seen.get_by_role("link", name=re.compile("hello-world")).first.wait_for()
            assert seen.url == f"http://127.0.0.1:{port}/ui/experiments"
            assert_accessible(seen)
            screenshot(seen, "ks-ui")
            browser.close()


def test_ks_ui_next_to_a_running_eval_shows_it_and_leaves_it_running(tmp_path: Path) -> None:
    spec = tmp_path / "slow.yaml"
    spec.write_text(spec_yaml("slow", command="sleep 8; echo done"))
    with subprocess.Popen(
        [ks_executable(), "eval", "run", str(spec), "--json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=UNBUFFERED,
    ) as run:
        assert run.stderr is not None
        started = wait_until(lambda: re.search(r"experiment (exp-\w+)", run.stderr.readline()), 60, "a run")
        with ks_ui(tmp_path) as url:
            listed = httpx.get(url + "experiments").text
            assert started.group(1) in listed and "status-running" in listed
        out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert json.loads(out)["experiment_id"] == started.group(1)


def test_ks_ui_refuses_a_port_in_use(tmp_path: Path) -> None:
    port = free_port()
    with ks_ui(tmp_path, "--port", str(port), "--store", f"sqlite:///{tmp_path / 'a.db'}"):
        second = run_ks(["ui", "--no-open", "--port", str(port)], cwd=tmp_path)
        assert second.returncode == 2
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
