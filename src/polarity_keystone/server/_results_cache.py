"""The encoded results of finished experiments, kept between requests.

Once an experiment has finished, its stored results do not change while it stays finished: extending it
makes it queued and running again, and its next finish has another `finished_at`. So the JSON text of the
results, keyed by project, id, status and `finished_at`, can answer `GET /v1/experiments/{id}` again
without reading, decoding and encoding the stored document once more. The project is part of the key, so
an entry never answers a caller of another project, and the route checks the caller's project on every
request before it looks here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime

from ..store import ExperimentRecord

ResultsKey = tuple[str, str, str, datetime | None]

MAX_BYTES = 64 * 1024 * 1024
"""How much encoded text the cache holds at most; the least recently used entries go first."""


def results_key(record: ExperimentRecord) -> ResultsKey:
    return (record.project_id, record.id, record.status, record.finished_at)


class EncodedResults:
    """A bounded, thread-safe LRU map of `results_key` to encoded JSON (the routes run in worker
    threads)."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[ResultsKey, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: ResultsKey) -> bytes | None:
        with self._lock:
            text = self._entries.get(key)
            if text is not None:
                self._entries.move_to_end(key)
            return text

    def put(self, key: ResultsKey, text: bytes) -> None:
        """Keep `text` for `key`; text larger than the whole cache is not kept."""
        if len(text) > self.max_bytes:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            self._size -= len(previous or b"")
            self._entries[key] = text
            self._size += len(text)
            while self._size > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._size -= len(dropped)

    def __len__(self) -> int:
        return len(self._entries)
