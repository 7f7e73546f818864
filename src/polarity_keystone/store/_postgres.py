"""The shared-server store: PostgreSQL through psycopg 3, with a small pool of connections."""

from __future__ import annotations

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row
from psycopg.types.string import TextLoader

from ._connections import ConnectionPool
from ._dialect import Dialect
from ._sql import Clock, SqlStore, system_clock

CONNECT_TIMEOUT_S = 10

POSTGRES = Dialect(
    name="postgres",
    placeholder="%s",
    column_types={
        "serial_id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "json": "JSON",
        "bytes": "BYTEA",
        "timestamp": "TIMESTAMPTZ",
    },
    begin_read="BEGIN",
    begin_write="BEGIN",
    lock="SELECT pg_advisory_xact_lock(?)",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    metadata_has="metadata::jsonb @> jsonb_build_object(?::text, ?::text)",
    integrity_error=psycopg.errors.UniqueViolation,
    stale_connection_errors=(psycopg.OperationalError,),
)

PgConnection = psycopg.Connection[DictRow]


class PostgresStore(SqlStore[PgConnection]):
    def __init__(self, url: str, *, now: Clock = system_clock, pool_size: int = 8) -> None:
        """Connect to the database at `url` (`postgresql://user:password@host:port/db`)."""
        self._url = url
        pool = ConnectionPool(self._connect, size=pool_size, usable=_usable, close=PgConnection.close)
        super().__init__(POSTGRES, pool, now)

    def _connect(self) -> PgConnection:
        # Autocommit at the driver level: the store issues BEGIN / COMMIT itself. JSON columns come back
        # as text, decoded by the shared code exactly as SQLite's are (and in the order they were written).
        connection = psycopg.connect(
            self._url, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT_S
        )
        connection.adapters.register_loader("json", TextLoader)
        return connection


def _usable(connection: PgConnection) -> bool:
    return not connection.broken and connection.info.transaction_status == TransactionStatus.IDLE
