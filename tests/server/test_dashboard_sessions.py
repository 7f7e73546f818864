"""Dashboard sessions and forms without a browser: what a forged, altered or expired cookie gets, where
signing in may send the browser next, and the secret kept beside the store."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from polarity_keystone.server import ServerSettings, close_app, create_api_key, create_app
from polarity_keystone.server._sessions import SECRET_FILE, SessionCodec
from polarity_keystone.server.dashboard._forms import safe_next


def test_a_session_reads_back_only_as_it_was_signed(tmp_path: Path) -> None:
    codec = SessionCodec(b"k" * 32, tmp_path)
    cookie, session = codec.issue("ab" * 32)
    assert codec.read(cookie) == session
    key_hash, expires, nonce, signature = cookie.split(".")
    other_hash = "cd" * 32
    assert codec.read(f"{other_hash}.{expires}.{nonce}.{signature}") is None, "another key's hash"
    assert codec.read(f"{key_hash}.{int(expires) + 999_999}.{nonce}.{signature}") is None, "a later expiry"
    assert codec.read(cookie[:-2]) is None
    assert SessionCodec(b"x" * 32, tmp_path).read(cookie) is None, "another server's secret"
    for junk in ("", "a.b.c", "a.b.c.d.e", "x" * 600, None):
        assert codec.read(junk) is None


def test_a_session_expires(tmp_path: Path) -> None:
    codec = SessionCodec(b"k" * 32, tmp_path)
    cookie, session = codec.issue("ab" * 32, now=time.time() - 13 * 3600)
    assert session.expires < time.time()
    assert codec.read(cookie) is None


def test_the_csrf_token_belongs_to_its_session(tmp_path: Path) -> None:
    codec = SessionCodec(b"k" * 32, tmp_path)
    _, first = codec.issue("ab" * 32)
    _, second = codec.issue("ab" * 32)
    assert codec.csrf_matches(first, first.csrf_token)
    assert not codec.csrf_matches(first, second.csrf_token)
    assert not codec.csrf_matches(first, None)


def test_without_an_operator_secret_one_is_made_once_and_kept_private(tmp_path: Path) -> None:
    cookie, _ = SessionCodec(None, tmp_path / "data").issue("ab" * 32)
    kept = tmp_path / "data" / SECRET_FILE
    assert len(kept.read_bytes()) == 32
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert SessionCodec(None, tmp_path / "data").read(cookie) is not None, "a restart keeps sessions"
    assert [path.name for path in kept.parent.iterdir()] == [SECRET_FILE], "no draft left behind"


@pytest.mark.parametrize(
    ("asked", "goes_to"),
    [
        ("/ui/experiments/exp-1?tab=x", "/ui/experiments/exp-1?tab=x"),
        (None, "/ui/experiments"),
        ("https://evil.example/ui/x", "/ui/experiments"),
        ("//evil.example/ui/x", "/ui/experiments"),
        ("/ui/\\evil.example", "/ui/experiments"),
        ("/v1/experiments", "/ui/experiments"),
        ("javascript:alert(1)", "/ui/experiments"),
    ],
)
def test_signing_in_goes_back_only_to_a_dashboard_page_of_this_server(
    asked: str | None, goes_to: str
) -> None:
    assert safe_next(asked) == goes_to


def test_a_sign_in_is_never_answered_from_the_idempotency_store(tmp_path: Path) -> None:
    """A browser form is not an API call: a repeated Idempotency-Key must not replay a stored response,
    which would keep the session cookie in the store and hand it out again."""
    app = create_app(ServerSettings(f"sqlite:///{tmp_path / 'k.db'}"))
    key, _ = create_api_key(app.state.keystone.store, "browser")
    headers = {"Origin": "http://testserver", "Idempotency-Key": "same"}
    with TestClient(app, follow_redirects=False) as client:
        first, second = (client.post("/ui/sign-in", data={"api_key": key}, headers=headers) for _ in "12")
    close_app(app)
    assert first.status_code == second.status_code == 303
    assert "idempotent-replayed" not in second.headers
    assert first.cookies["ks_session"] != second.cookies["ks_session"]
