"""Which stores a server test runs on. A test that reads or writes the store runs on both (the
`store_url` fixture: SQLite and Postgres). A Docker-backed test that exercises the engine through the
server runs on SQLite alone: what it stores is proven on both stores by the store's own contract tests
(tests/store), and a second store would only pay for the same sandboxes twice."""

from __future__ import annotations

import pytest

ENGINE_ON_ONE_STORE = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
