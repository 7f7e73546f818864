"""A store under test, on a clock the test moves, opened once per store kind (see `store_url`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from polarity_keystone.store import Store, open_store
from tests.store.store_helpers import MovableClock


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def store(store_url: str, clock: MovableClock) -> Iterator[Store]:
    opened = open_store(store_url, now=clock)
    yield opened
    opened.close()
