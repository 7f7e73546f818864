"""The encoded results of finished experiments, kept between requests.

Once an experiment has finished, its stored results do not change while it stays finished: extending it
makes it queued and running again, and its next finish has another `finished_at`. So the JSON text of the
results, keyed by project, id, status and `finished_at`, can answer `GET /v1/experiments/{id}` again
without reading, decoding and encoding the stored document once more. The project is part of the key, so
an entry never answers a caller of another project, and the route checks the caller's project on every
request before it looks here.

The experiment's own fields (its head) are read on every request that way, in a worker thread. A head read
a moment ago is remembered too (see `Recent`), keyed by project and id, so that a client reading a
finished experiment again gets the whole document without I/O: from the event loop, no thread, no store.
A write to the experiment through this server's store is seen at the next request; one from another
process within `HEAD_TTL_S`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..store import ExperimentRecord
from ._recent import Recent

ResultsKey = tuple[str, str, str, datetime | None]

MAX_BYTES = 64 * 1024 * 1024
"""How much encoded text the cache holds at most; the least recently used entries go first."""
HEAD_TTL_S = 1.0


def results_key(record: ExperimentRecord) -> ResultsKey:
    return (record.project_id, record.id, record.status, record.finished_at)


def json_object(*members: bytes) -> bytes:
    """A JSON object of encoded members (each `"name":value,...`, or empty)."""
    return b"{" + b",".join(filter(None, members)) + b"}"


@dataclass(frozen=True)
class _FinishedHead:
    results: ResultsKey
    members: bytes
    """The experiment's own fields, encoded as members of its document."""


class EncodedResults:
    """A bounded, thread-safe LRU map of `results_key` to encoded JSON (the routes run in worker
    threads), and the recently read heads of those finished experiments."""

    def __init__(
        self,
        max_bytes: int = MAX_BYTES,
        head_ttl_s: float = HEAD_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[ResultsKey, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._heads: Recent[tuple[str, str], _FinishedHead] = Recent(head_ttl_s, clock)

    def recent_document(self, project_id: str, experiment_id: str, writes: int) -> bytes | None:
        """The whole document of the project's finished experiment, if its head was remembered within
        `HEAD_TTL_S` and the store's `experiment_writes` for it is still `writes`; no I/O."""
        head = self._heads.get((project_id, experiment_id), writes)
        results = None if head is None else self.get(head.results)
        return None if head is None or results is None else json_object(results, head.members)

    def remember_head(self, key: ResultsKey, members: bytes, writes: int) -> None:
        """Remember the head of the finished experiment whose results are kept under `key`, read after
        the store's `experiment_writes` for it was `writes`."""
        project_id, experiment_id, _, _ = key
        self._heads.put((project_id, experiment_id), _FinishedHead(key, members), writes)

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
