"""Where the SDK finds its server and key when the caller does not say: the environment, as the
Keystone SDK does.

Inside a sandbox Keystone injects KEYSTONE_SANDBOX_ID (newer name POLARITY_SANDBOX_ID),
KEYSTONE_BASE_URL and KEYSTONE_API_KEY (a `ks_sb_` token scoped to that sandbox).
"""

from __future__ import annotations

import os

DEFAULT_BASE_URL = "https://keystone.polarity.so"
DEFAULT_TIMEOUT = 30.0


def api_key(explicit: str | None = None) -> str | None:
    return explicit or os.environ.get("KEYSTONE_API_KEY") or None


def base_url(explicit: str | None = None) -> str:
    return explicit or os.environ.get("KEYSTONE_BASE_URL") or DEFAULT_BASE_URL


def sandbox_id() -> str | None:
    return os.environ.get("KEYSTONE_SANDBOX_ID") or os.environ.get("POLARITY_SANDBOX_ID") or None
