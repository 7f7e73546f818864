"""A process's hold on a container through the container's stdin.

The container is created with its stdin open and not detached (docker-py then sets StdinOnce); the process
attaches to that stdin, starts the container and never writes. The engine closes the stdin when the attach
connection ends, whatever ended the process (`release`, exit, SIGKILL, `docker kill` of its container), and
the container, reading EOF, does its last job: the reaper removes the process's sandboxes, the port keeper
deletes the server port's rule.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import docker
import docker.errors


class Attachment:
    """This process's connection to the stdin of one container it starts."""

    def __init__(self, client: docker.DockerClient, container_id: str) -> None:
        """Attach to `container_id` (created, not started) and start it; on failure the container is
        removed and the engine's DockerException raised."""
        self._connection: Any = None
        try:
            self._connection = client.api.attach_socket(container_id, params={"stdin": 1, "stream": 1})
            client.api.start(container_id)
        except docker.errors.DockerException:
            self.release()
            with contextlib.suppress(docker.errors.DockerException):
                client.api.remove_container(container_id, force=True)
            raise

    def _socket(self) -> socket.socket:
        return getattr(self._connection, "_sock", self._connection)  # type: ignore[no-any-return]

    def held(self) -> bool:
        """Whether the container is still there: the connection is open and the engine has not ended it."""
        if self._connection is None:
            return False
        try:
            return self._socket().recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    def release(self) -> None:
        """End the connection, as the process's exit would: the container does its last job."""
        if self._connection is not None:
            connection = self._socket()
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
            self._connection.close()
            self._connection = None
