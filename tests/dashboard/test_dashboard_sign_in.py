"""Signing in to the dashboard with an API key, in a real browser: the session cookie's flags, redirects
back to the page asked for, wrong and revoked keys, forms from another site, and signing out."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from playwright.sync_api import Browser

from tests.dashboard.browser import Dashboard, assert_accessible, dashboard_session, screenshot
from tests.dashboard.conftest import Served, _key

pytestmark = pytest.mark.docker


def test_a_page_asked_for_without_a_session_signs_in_and_comes_back(browser: Browser, served: Served) -> None:
    wanted = "/ui/experiments?spec=sloppy-agent"
    with dashboard_session(browser, served.url) as session:
        page = session.open(wanted)
        assert page.url.startswith(served.url + "/ui/sign-in?next=")
        assert_accessible(page)
        screenshot(page, "sign-in")
        page.get_by_label("API key").fill(served.key)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(served.url + wanted)
        (cookie,) = session.context.cookies()
        assert cookie["name"] == "ks_session"
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Lax"
        assert cookie["path"] == "/ui"
        assert served.key not in cookie["value"]
        assert page.evaluate("document.cookie") == "", "page scripts must not read the session"
        assert not session.problems()


def test_a_wrong_key_is_refused_on_the_form_and_sets_no_cookie(browser: Browser, served: Served) -> None:
    with dashboard_session(browser, served.url) as session:
        page = session.sign_in("ks_live_not-a-key")
        assert "/ui/sign-in" in page.url
        assert page.get_by_role("alert").inner_text().startswith("That key is unknown or revoked")
        assert session.context.cookies() == []


def test_the_cookie_opens_no_api_route_and_a_form_from_another_site_is_refused(
    dashboard: Dashboard, served: Served
) -> None:
    (cookie,) = dashboard.context.cookies()
    jar = {"ks_session": cookie["value"]}
    assert httpx.get(f"{served.url}/v1/experiments", cookies=jar).status_code == 401
    assert httpx.get(f"{served.url}/ui/experiments", cookies=jar).status_code == 200
    evil = httpx.post(
        f"{served.url}/ui/sign-out", cookies=jar, headers={"Origin": "https://evil.example"}, data={}
    )
    assert evil.status_code == 403
    assert "from https://evil.example" in evil.text
    tokenless = httpx.post(f"{served.url}/ui/sign-out", cookies=jar, headers={"Origin": served.url}, data={})
    assert tokenless.status_code == 403
    assert "CSRF" in tokenless.text


def test_signing_out_ends_the_session(dashboard: Dashboard, served: Served) -> None:
    page = dashboard.open("/ui/experiments")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{served.url}/ui/sign-in")
    assert dashboard.context.cookies() == []
    page.goto(f"{served.url}/ui/experiments")
    assert "/ui/sign-in?next=" in page.url


def test_revoking_the_key_ends_its_sessions(browser: Browser, served: Served) -> None:
    key = _key(served.store_url, served.server.output.parent, "soon-revoked")
    with dashboard_session(browser, served.url) as session:
        assert session.sign_in(key).url.endswith("/ui/experiments")
        listing = subprocess.run(
            [sys.executable, "-m", "polarity_keystone", "keys", "list", "--store", served.store_url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        key_id = next(line.split()[0] for line in listing.splitlines() if "soon-revoked" in line)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "polarity_keystone",
                "keys",
                "revoke",
                key_id,
                "--store",
                served.store_url,
            ],
            capture_output=True,
            check=True,
        )
        page = session.open("/ui/experiments")
        assert "/ui/sign-in?next=" in page.url
