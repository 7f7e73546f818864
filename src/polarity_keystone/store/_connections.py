"""A small, thread-safe pool of database connections.

Each connection is used by one thread at a time; threads beyond `size` wait for one to come back. The
same pool serves SQLite (connections opened with `check_same_thread=False`) and Postgres.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from ._base import StoreError

C = TypeVar("C")


class ConnectionPool(Generic[C]):
    def __init__(
        self,
        connect: Callable[[], C],
        *,
        size: int,
        usable: Callable[[C], bool],
        close: Callable[[C], None],
    ) -> None:
        """`usable` tells whether a returned connection may be reused (not broken, no transaction left
        open); `close` closes one."""
        self._connect = connect
        self.size = size
        self._usable = usable
        self._close = close
        self._idle: list[C] = []
        self._opened = 0
        self._closed = False
        self._changed = threading.Condition()

    @contextmanager
    def connection(self) -> Iterator[C]:
        connection = self._acquire()
        try:
            yield connection
        finally:
            self._release(connection)

    def _acquire(self) -> C:
        with self._changed:
            while True:
                if self._closed:
                    raise StoreError("the store is closed")
                if self._idle:
                    return self._idle.pop()
                if self._opened < self.size:
                    self._opened += 1
                    break
                self._changed.wait()
        try:
            return self._connect()
        except BaseException:
            self._forget()
            raise

    def _release(self, connection: C) -> None:
        with self._changed:
            if not self._closed and self._usable(connection):
                self._idle.append(connection)
                self._changed.notify()
                return
        self._close(connection)
        self._forget()

    def _forget(self) -> None:
        with self._changed:
            self._opened -= 1
            self._changed.notify()

    def close(self) -> None:
        """Close the idle connections now and the busy ones when they come back."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._changed.notify_all()
        for connection in idle:
            self._close(connection)
