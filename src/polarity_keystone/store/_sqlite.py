"""The embedded store: one SQLite file in WAL mode.

WAL lets readers run while one writer writes. Write transactions start with `BEGIN IMMEDIATE`, taking
the write lock up front, so two writers queue on the busy timeout instead of failing when a read turns
into a write. `synchronous=NORMAL` keeps every committed transaction across a killed process (only a
power cut can lose the last ones).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from ._connections import ConnectionPool
from ._dialect import Dialect
from ._sql import Clock, SqlStore, system_clock

BUSY_TIMEOUT_S = 30.0

SQLITE = Dialect(
    name="sqlite",
    placeholder="?",
    column_types={
        "serial_id": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "json": "TEXT",
        "bytes": "BLOB",
        "timestamp": "TEXT",
    },
    begin_read="BEGIN",
    begin_write="BEGIN IMMEDIATE",
    lock=None,
    skip_locked="",
    metadata_has=(
        "EXISTS (SELECT 1 FROM json_each(metadata) m WHERE m.key = ? AND m.type = 'text' AND m.value = ?)"
    ),
    integrity_error=sqlite3.IntegrityError,
    stale_connection_errors=(),
)


def _dict_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, values, strict=True)}


class SqliteStore(SqlStore[sqlite3.Connection]):
    def __init__(self, path: str | Path, *, now: Clock = system_clock, pool_size: int = 8) -> None:
        """Open (creating it and its folder if needed) the database file at `path`."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pool = ConnectionPool(self._connect, size=pool_size, usable=_usable, close=sqlite3.Connection.close)
        super().__init__(SQLITE, pool, now)

    def _connect(self) -> sqlite3.Connection:
        # Autocommit at the driver level: the store issues BEGIN / COMMIT itself. The pool hands a
        # connection to one thread at a time, which is what check_same_thread would otherwise insist on.
        connection = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        connection.row_factory = _dict_row
        _enter_wal(connection)
        connection.execute("PRAGMA synchronous = NORMAL")
        return connection


def _enter_wal(connection: sqlite3.Connection) -> None:
    """Switching a new database to WAL needs it to itself, and SQLite answers "database is locked" at
    once (no busy wait) while another connection is opening it too; the mode persists, so this only
    waits on the first opens of a database."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _usable(connection: sqlite3.Connection) -> bool:
    return not connection.in_transaction
