"""This server among the servers sharing one store: its instance id, kept alive by a heartbeat.

Several `ks serve` may run on one Postgres store. Each experiment a server queues and each sandbox it boots
carries the server's instance id, and the store holds a lease on the instance that the heartbeat renews
every third of `lease_s`. While the lease runs, no other server touches what the instance holds: a server
starting up leaves a live server's experiments running. Once the lease has expired (the server was killed,
lost its host or its database for longer than the lease), any server's sweep ends what it held: at that
server's start-up, then on every beat. Stopping cleanly ends the lease at once, after the server ended its
own experiments.

What ending means is for the sweeps to say (`ExperimentRunner.sweep`, `SandboxManager.sweep`); which
server ends each experiment or sandbox is for the store to decide (`Store.interrupt_abandoned_experiments`).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta

from ..store import Store

log = logging.getLogger("polarity_keystone.server")
BEATS_PER_LEASE = 3
"""Renewals per lease: one may fail (a slow database) and the next still comes before the lease runs out."""

Sweep = Callable[[], None]


def new_instance_id() -> str:
    """`<host>/<pid>/<random>`: unique with its random part; host and pid say which process it is."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


class Heartbeat:
    def __init__(self, store: Store, lease_s: float) -> None:
        self.instance_id = new_instance_id()
        self._store = store
        self._lease = timedelta(seconds=lease_s)
        self._sweeps: Sequence[Sweep] = ()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="keystone-heartbeat", daemon=True)

    def start(self, sweeps: Sequence[Sweep]) -> None:
        """Take the lease and sweep once before returning (so the server's start-up ends what stopped
        servers left, before it serves), then beat on a daemon thread."""
        self._sweeps = sweeps
        self._beat()
        self._thread.start()

    def _beat(self) -> None:
        self._store.renew_instance(self.instance_id, self._lease)
        for sweep in self._sweeps:
            sweep()

    def _loop(self) -> None:
        interval = self._lease.total_seconds() / BEATS_PER_LEASE
        while not self._stopping.wait(interval):
            try:
                self._beat()
            except Exception:
                log.exception("heartbeat of server instance %s failed; trying again", self.instance_id)

    def close(self) -> None:
        """Stop beating and end the lease: call it once this server's experiments and sandboxes ended."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
            self._store.end_instance(self.instance_id)
