"""A command's output kept within a fixed size: its head and its tail, and a count of what was cut.

A command may print without end (an agent in a loop, a `cat` of a huge file). Keystone reads the stream
as it arrives and keeps at most `limit` bytes of it, the first half and the last half, so memory stays
bounded and the time stays linear in the size of the output. Where bytes were dropped, the kept text
carries a marker line that says how many.
"""

from __future__ import annotations

MiB = 1024 * 1024

OUTPUT_LIMIT = 64 * MiB
"""What Keystone keeps of its own commands' output (listings, logs, traces, query results): everything a
sane sandbox produces, with a bound against a sandbox that fills its files to make Keystone's reads huge."""


def cut_marker(dropped: int) -> str:
    return f"\n[keystone: {_size(dropped)} of output cut here]\n"


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def decode(data: bytes | bytearray | None) -> str:
    """Text from a command's bytes; invalid UTF-8 (binary output, a multi-byte character cut in two)
    becomes U+FFFD instead of failing."""
    return (data or b"").decode("utf-8", errors="replace")


class BoundedOutput:
    """Bytes written in chunks, of which the first `limit // 2` and the last `limit - limit // 2` are kept."""

    def __init__(self, limit: int) -> None:
        if limit < 2:
            raise ValueError(f"an output limit must be at least 2 bytes, not {limit}")
        self._head_limit = limit // 2
        self._tail_limit = limit - self._head_limit
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0
        """Every byte written, kept or not."""

    def write(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        self._tail += chunk[-self._tail_limit :]
        # Trimming only once the tail holds twice its share keeps every byte's copies to a constant.
        if len(self._tail) >= 2 * self._tail_limit:
            del self._tail[: len(self._tail) - self._tail_limit]

    @property
    def dropped(self) -> int:
        return self.total - len(self._head) - min(len(self._tail), self._tail_limit)

    def text(self) -> str:
        """The kept bytes as text (invalid UTF-8 replaced), with the cut marker where bytes were dropped."""
        tail = self._tail[-self._tail_limit :]
        if not self.dropped:
            return decode(self._head + tail)
        return decode(self._head) + cut_marker(self.dropped) + decode(tail)
