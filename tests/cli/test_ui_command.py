"""`ks ui` as a user runs it: after `ks eval run` wrote the local store, it serves that store's dashboard on
127.0.0.1 with no sign-in, prints the URL, and stops on Ctrl-C with exit 0."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.dashboard.browser import assert_accessible, launch, screenshot
from tests.examples.shipped_examples import EXAMPLES
from tests.ks_command import ks_executable, run_ks
from tests.ks_serve import UNBUFFERED, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.docker


def test_ks_ui_serves_the_local_store_without_sign_in_until_ctrl_c(tmp_path: Path) -> None:
    ran = run_ks(["eval", "run", str(EXAMPLES / "hello-world" / "hello.yaml"), "--json"], cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    experiment_id = json.loads(ran.stdout)["experiment_id"]
    assert (tmp_path / ".keystone" / "keystone.db").exists()

    port = free_port()
    output = tmp_path / "ui.out"
    with output.open("w") as sink:
        ui = subprocess.Popen(
            [ks_executable(), "ui", "--no-open", "--port", str(port)],
            cwd=tmp_path,
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
        url = printed.group(0)
        assert url == f"http://127.0.0.1:{port}/ui/"

        page = httpx.get(url, follow_redirects=True)
        assert page.status_code == 200 and page.url.path == "/ui/experiments", (page.status_code, page.url)
        assert experiment_id in page.text and "hello-world" in page.text
        with sync_playwright() as playwright:
            browser = launch(playwright)
            seen = browser.new_page()
            seen.goto(url)
            seen.get_by_role("link", name=re.compile("hello-world")).first.wait_for()
            assert seen.url == f"http://127.0.0.1:{port}/ui/experiments"
            assert_accessible(seen)
            screenshot(seen, "ks-ui")
            browser.close()

        ui.send_signal(signal.SIGINT)
        assert ui.wait(15) == 0, output.read_text()
    finally:
        if ui.poll() is None:
            ui.kill()
            ui.wait()


def test_ks_ui_refuses_a_port_in_use(tmp_path: Path) -> None:
    port = free_port()
    with subprocess.Popen(  # a listener holding the port
        [
            ks_executable(),
            "ui",
            "--no-open",
            "--port",
            str(port),
            "--store",
            f"sqlite:///{tmp_path / 'a.db'}",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=UNBUFFERED,
        text=True,
    ) as first:
        try:
            assert first.stdout is not None
            assert "/ui/" in first.stdout.readline()
            second = run_ks(["ui", "--no-open", "--port", str(port)], cwd=tmp_path)
            assert second.returncode == 2
            assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
        finally:
            first.send_signal(signal.SIGINT)
            assert first.wait(15) == 0
