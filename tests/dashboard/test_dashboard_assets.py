"""The dashboard's vendored scripts are the npm registry's files as recorded, served as a fixed set with
the headers that keep a browser from guessing; every page carries the Content-Security-Policy that lets no
inline script run."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from polarity_keystone.server import ServerSettings, close_app, create_app

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "src" / "polarity_keystone" / "server" / "dashboard" / "static" / "vendor"
TEST_VENDOR = Path(__file__).with_name("vendor")
ROW = re.compile(r"^\| `(?P<file>[^`]+)` \|.*\| `(?P<digest>[0-9a-f]{64})` \|$", re.MULTILINE)


def recorded_digests(readme: Path) -> dict[str, str]:
    return {match["file"]: match["digest"] for match in ROW.finditer(readme.read_text())}


def test_each_vendored_file_is_the_one_recorded_with_its_licence() -> None:
    recorded = recorded_digests(VENDOR / "README.md")
    scripts = sorted(path.name for path in VENDOR.iterdir() if path.suffix in (".js", ".css"))
    assert sorted(recorded) == scripts, "every vendored script and style has a row, and every row a file"
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert {"htmx-LICENSE.txt", "uPlot-LICENSE.txt"} <= {path.name for path in VENDOR.iterdir()}
    axe = TEST_VENDOR / "axe-core-4.14.1.min.js"
    assert hashlib.sha256(axe.read_bytes()).hexdigest() in (TEST_VENDOR / "README.md").read_text()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(ServerSettings(f"sqlite:///{tmp_path / 'k.db'}", auth_required=False))
    with TestClient(app, base_url="http://127.0.0.1", follow_redirects=False) as client:
        yield client
    close_app(app)


def test_assets_are_served_as_a_fixed_set_with_their_types(client: TestClient) -> None:
    script = client.get("/ui/static/vendor/htmx-2.0.11.min.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["x-content-type-options"] == "nosniff"
    assert script.content == (VENDOR / "htmx-2.0.11.min.js").read_bytes()
    assert client.get("/ui/static/keystone.css").headers["content-type"] == "text/css; charset=utf-8"
    for missing in ("nope.js", "vendor/README.md", "../_render.py", "vendor/../../_static.py", "%2e%2e/x.js"):
        answer = client.get(f"/ui/static/{missing}")
        assert answer.status_code == 404, missing
        assert "<h1>Not found</h1>" in answer.text


def test_pages_forbid_inline_scripts_and_framing(client: TestClient) -> None:
    page = client.get("/ui/experiments")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text, "no inline script: the policy would block it"
    assert client.get("/ui").headers["location"] == "/ui/experiments"
