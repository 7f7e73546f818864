"""Dashboard sessions: a signed cookie naming the API key that signed in, and the CSRF token of its forms.

The cookie holds no key, only the key's stored hash, an expiry and a nonce, signed with HMAC-SHA256 under
the server's session secret; every request looks the key up again, so revoking the key ends its sessions.
The cookie is HttpOnly (page scripts never read it), SameSite=Lax (another site's forms and scripts do not
send it; a link from a PR comment does, so the page opens signed in) and Secure over HTTPS. Forms that
change something carry a CSRF token derived from the session's nonce, and their Origin must be this
server's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

COOKIE = "ks_session"
LIFETIME_S = 12 * 3600
SECRET_FILE = "dashboard-session.key"


@dataclass(frozen=True)
class Session:
    key_hash: str
    expires: int
    nonce: str

    @property
    def csrf_token(self) -> str:
        return self.nonce


class SessionCodec:
    """Signs and checks session cookies with one secret: the operator's, or one kept in the data dir."""

    def __init__(self, secret: bytes | None, data_path: Path) -> None:
        self._secret = secret
        self._data_path = data_path

    def issue(self, key_hash: str, now: float | None = None) -> tuple[str, Session]:
        """A new session's cookie value and the session."""
        expires = int((time.time() if now is None else now) + LIFETIME_S)
        session = Session(key_hash, expires, secrets.token_urlsafe(18))
        payload = f"{session.key_hash}.{session.expires}.{session.nonce}"
        return f"{payload}.{self._sign(payload)}", session

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session the cookie names, if its signature is ours and it has not expired; else None."""
        if not cookie or len(cookie) > 512:
            return None
        parts = cookie.split(".")
        if len(parts) != 4:
            return None
        key_hash, expires, nonce, signature = parts
        if not hmac.compare_digest(signature, self._sign(f"{key_hash}.{expires}.{nonce}")):
            return None
        if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
            return None
        return Session(key_hash, int(expires), nonce)

    def csrf_matches(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, session.csrf_token)

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key(), payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _key(self) -> bytes:
        if self._secret is None:
            self._secret = _kept_secret(self._data_path / SECRET_FILE)
        return self._secret


def _kept_secret(path: Path) -> bytes:
    """The secret in `path`, made (32 random bytes, readable by this user only) when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as sink:
        sink.write(secrets.token_bytes(32))
    try:
        os.link(draft, path)  # whole or not at all: another server on this data dir may make it first
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_bytes()


DASHBOARD_PREFIX = "/ui"
SIGN_IN_PATH = f"{DASHBOARD_PREFIX}/sign-in"
STATIC_PREFIX = f"{DASHBOARD_PREFIX}/static/"


def is_dashboard_path(path: str) -> bool:
    return path == DASHBOARD_PREFIX or path.startswith(f"{DASHBOARD_PREFIX}/")


def is_public_dashboard_path(path: str) -> bool:
    """The sign-in page and the vendored scripts and styles: reachable without a session."""
    return path == SIGN_IN_PATH or path.startswith(STATIC_PREFIX)
