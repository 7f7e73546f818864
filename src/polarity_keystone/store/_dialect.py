"""The few ways SQLite and Postgres differ, and one transaction's view of a connection.

The store's SQL is written once, with `?` placeholders; a `Dialect` names what differs (placeholder,
column types, how a write transaction starts, a lock, the metadata filter) and `Session` applies it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ._base import Conflict

Row = dict[str, Any]


@dataclass(frozen=True)
class Dialect:
    name: str
    placeholder: str
    """What the driver expects where the shared SQL says `?`."""
    column_types: Mapping[str, str]
    """Fills `{serial_id}`, `{json}`, `{bytes}` and `{timestamp}` in the migrations."""
    begin_read: str
    begin_write: str
    lock: str | None
    """A statement taking a transaction-scoped lock on the integer `?`; None where write transactions
    already exclude each other."""
    skip_locked: str
    """What ends a `SELECT` of rows to claim in a write transaction, so that concurrent claimers each take
    other rows, never waiting on one another (Postgres: `FOR UPDATE SKIP LOCKED`); empty where write
    transactions exclude each other."""
    metadata_has: str
    """A predicate on `experiments.metadata`: it holds the string value `?` (second) under key `?` (first)."""
    integrity_error: type[Exception]
    """What the driver raises when a uniqueness rule would be broken; sessions turn it into `Conflict`."""
    stale_connection_errors: tuple[type[Exception], ...]
    """What starting a transaction raises on a pooled connection whose server went away."""


class DbCursor(Protocol):
    """The part of a DB-API cursor the store uses (sqlite3 and psycopg both provide it)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Sequence[Any], /) -> object: ...

    def executemany(self, sql: str, params: Sequence[Sequence[Any]], /) -> object: ...

    def fetchall(self) -> list[Any]: ...


class DbConnection(Protocol):
    """The part of a DB-API connection the store uses."""

    def cursor(self) -> DbCursor: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class Session:
    """Runs the shared SQL inside one open transaction."""

    def __init__(self, cursor: DbCursor, dialect: Dialect) -> None:
        self._cursor = cursor
        self._dialect = dialect

    def _execute(self, sql: str, params: Sequence[Any]) -> None:
        try:
            self._cursor.execute(self._native(sql), params)
        except self._dialect.integrity_error as exc:
            raise Conflict(str(exc).strip()) from exc

    def _native(self, sql: str) -> str:
        return sql if self._dialect.placeholder == "?" else sql.replace("?", self._dialect.placeholder)

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for many rows of parameters, sent together (on Postgres, one round trip for
        all of them instead of one each)."""
        try:
            self._cursor.executemany(self._native(sql), rows)
        except self._dialect.integrity_error as exc:
            raise Conflict(str(exc).strip()) from exc

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute a statement; returns how many rows it changed."""
        self._execute(sql, params)
        return self._cursor.rowcount

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._execute(sql, params)
        return [dict(row) for row in self._cursor.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row, or None. Fetches every row so that an `UPDATE ... RETURNING` has finished."""
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def lock(self, key: int) -> None:
        """Hold the lock `key` until the transaction ends (a no-op where writers exclude each other)."""
        if self._dialect.lock is not None:
            self.all(self._dialect.lock, (key,))


def insert_sql(table: str, values: Mapping[str, Any], tail: str = "") -> tuple[str, tuple[Any, ...]]:
    """`INSERT INTO table (columns) VALUES (?, ...) tail` and its parameters."""
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    return f"INSERT INTO {table} ({columns}) VALUES ({marks}) {tail}".rstrip(), tuple(values.values())
