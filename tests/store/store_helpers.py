"""Helpers shared by the store tests (imported by them; fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg


class MovableClock:
    """A store clock that starts at a fixed UTC instant and only moves when told."""

    def __init__(self) -> None:
        self.moment = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, by: timedelta) -> None:
        self.moment += by


def query(store_url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of `sql` read straight from the store's database, past the store."""
    if store_url.startswith("sqlite://"):
        path = store_url.removeprefix("sqlite://")
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
            return connection.execute(sql).fetchall()
    with psycopg.connect(store_url, autocommit=True) as connection:
        return connection.execute(sql).fetchall()
