"""Fixtures of the SDK tests: a real Keystone server over each store (`store_url`: SQLite, Postgres)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sdk.sdk_servers import KeystoneServer, keystone_in_process, keystone_on_socket


@pytest.fixture
def server(store_url: str) -> Iterator[KeystoneServer]:
    """The app in-process: the fast default."""
    with keystone_in_process(store_url) as running:
        yield running


@pytest.fixture
def socket_server(store_url: str) -> Iterator[KeystoneServer]:
    """The app on a real socket: for SSE and for clients built from the environment."""
    with keystone_on_socket(store_url) as running:
        yield running
