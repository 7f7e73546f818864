"""API keys: `ks_live_` keys for people and CI, `ks_sb_` tokens for the agent inside one sandbox.

Only the sha256 of a key is stored; the plaintext is returned once, at creation.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from ..store import DEFAULT_PROJECT, ApiKeyRecord, NotFound, Store

LIVE_PREFIX = "ks_live_"
SANDBOX_PREFIX = "ks_sb_"
_SHOWN_CHARS = 4
"""How many characters after the prefix a listing shows (`ks_live_ab12`)."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _issue(
    store: Store, name: str, prefix: str, sandbox_id: str | None, project_id: str, *, admin: bool = False
) -> tuple[str, ApiKeyRecord]:
    key = prefix + secrets.token_urlsafe(32)
    record = ApiKeyRecord(
        id=f"key_{secrets.token_hex(8)}",
        name=name,
        prefix=key[: len(prefix) + _SHOWN_CHARS],
        key_hash=hash_key(key),
        kind="sandbox" if sandbox_id else "live",
        sandbox_id=sandbox_id,
        created_at=datetime.now(UTC),
        project_id=project_id,
        admin=admin,
    )
    store.add_api_key(record)
    return key, record


def create_api_key(
    store: Store, name: str, project_id: str = DEFAULT_PROJECT, *, admin: bool = False
) -> tuple[str, ApiKeyRecord]:
    """A new `ks_live_` key of an existing project (NotFound otherwise); the plaintext is returned once
    and never stored."""
    store.get_project(project_id)
    return _issue(store, name, LIVE_PREFIX, None, project_id, admin=admin)


def revoke_live_key(store: Store, key_id: str) -> None:
    """Revoke a `ks_live_` key; NotFound for an unknown id or a sandbox token (those end with their
    sandbox)."""
    if not any(key.id == key_id and key.kind == "live" for key in store.list_api_keys()):
        raise NotFound(f"no API key {key_id!r}")
    store.revoke_api_key(key_id)


def create_sandbox_token(store: Store, sandbox_id: str, project_id: str) -> tuple[str, ApiKeyRecord]:
    """A `ks_sb_` token that can only touch `sandbox_id` (of `project_id`); revoked when the sandbox is
    destroyed."""
    return _issue(store, f"sandbox {sandbox_id}", SANDBOX_PREFIX, sandbox_id, project_id)
