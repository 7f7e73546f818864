"""`open_store(url)`: the store a URL names."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from ._postgres import PostgresStore
from ._sql import Clock, system_clock
from ._sqlite import SqliteStore


def open_store(url: str, *, now: Clock = system_clock) -> SqliteStore | PostgresStore:
    """`sqlite:///abs/path.db` (the embedded default) or `postgresql://user:pw@host:port/db` (also
    `postgres://`). Raises ValueError for any other URL."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = unquote(url.removeprefix("sqlite://"))
        if not path.startswith("/"):
            raise ValueError(f"a SQLite store URL names an absolute path, sqlite:///abs/path.db: {url!r}")
        return SqliteStore(path, now=now)
    if scheme in ("postgres", "postgresql"):
        return PostgresStore(url, now=now)
    raise ValueError(
        f"unsupported store URL scheme {scheme!r}: use sqlite:///abs/path.db or postgresql://host/db"
    )
