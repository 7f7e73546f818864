"""An exec's output, read whole: the multiplexed stream of an attached `exec start`.

docker-py reads an attached exec from the raw socket under the HTTP response, past the buffer the
HTTP client filled while it read the status line. Output that reached the client together with the
headers — a fast command on a loaded engine, where the reading thread runs late — sat in that buffer
and was lost: the start of the output, or all of it (docker/docker-py#3332; 1 exec in 300 here with
16 threads, 1 settle probe in 40 replicas on a Ray node). So the frames are read here through the
response's own buffered reader, which hands out what it holds before it reads the socket.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import docker

from ._output import BoundedOutput

_HEADER = struct.Struct(">BxxxL")
"""A frame's header: the stream (1 stdout, 2 stderr), three zero bytes, the payload's length."""
_STDOUT, _STDERR = 1, 2
_CHUNK = 64 * 1024


class ExecStream:
    """The attached output of one started exec."""

    def __init__(self, response: Any) -> None:
        self._response = response
        reader = response.raw._fp.fp  # http.client's buffered reader over the connection
        # read1: what the buffer holds, else one read of the connection. A reader without it (paramiko's,
        # for ssh://) reads exactly what is asked, which is what the frames need anyway.
        self._read_some = getattr(reader, "read1", reader.read)
        self._socket: socket.socket | None = getattr(getattr(reader, "raw", None), "_sock", None)

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """(stream, bytes) as they arrive, until the engine closes the stream."""
        while True:
            header = self._read_exactly(_HEADER.size)
            if header is None:
                return
            stream, length = _HEADER.unpack(header)
            while length:
                chunk = self._read(min(length, _CHUNK))
                if not chunk:
                    return
                length -= len(chunk)
                yield stream, chunk

    def _read(self, limit: int) -> bytes:
        try:
            return bytes(self._read_some(limit))
        except (OSError, ValueError):  # shut from another thread (`cut`), or closed under the read
            return b""

    def _read_exactly(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self._read(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def cut(self) -> None:
        """End a read blocked in another thread: shut the socket, which the reader's lock does not
        guard (closing the reader would wait for the blocked read to let go of it)."""
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.cut()
        self._response.close()


def start_exec(api: docker.APIClient, exec_id: str) -> ExecStream:
    """Start exec `exec_id` attached to its output (not a TTY: stdout and stderr come apart)."""
    response = api._post_json(
        api._url("/exec/{0}/start", exec_id),
        headers={"Connection": "Upgrade", "Upgrade": "tcp"},
        data={"Tty": False, "Detach": False},
        stream=True,
    )
    api._raise_for_status(response)
    stream = ExecStream(response)
    if stream._socket is not None:
        stream._socket.settimeout(None)  # a command may print nothing for longer than the API timeout
    return stream


def drain(stream: ExecStream, stdout: BoundedOutput, stderr: BoundedOutput, deadline_s: float | None) -> bool:
    """Read the stream to its end into `stdout` and `stderr`; False when it was still open after
    `deadline_s` seconds and was cut from here instead."""
    abandoned = threading.Event()

    def abandon() -> None:
        abandoned.set()
        stream.cut()

    watchdog = threading.Timer(deadline_s, abandon) if deadline_s is not None else None
    if watchdog is not None:
        watchdog.daemon = True
        watchdog.start()
    try:
        for kind, chunk in stream.frames():
            if kind == _STDERR:
                stderr.write(chunk)
            elif kind == _STDOUT:
                stdout.write(chunk)
    finally:
        if watchdog is not None:
            watchdog.cancel()
        stream.close()
    return not abandoned.is_set()
