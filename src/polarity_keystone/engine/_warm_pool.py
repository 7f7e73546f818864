"""A warm pool: boot the next replicas' sandboxes while the current replicas run.

Container start dominates boot time, and replicas of one scenario boot identical sandboxes (the seed
reaches the agent at exec time, not the sandbox). So the pool keeps up to `depth` fresh sandboxes
booted ahead for each scenario, never more than the replicas still to come, and a replica that finds
one ready starts its agent at once. A pooled sandbox is as fresh as a new one: nothing ran in it.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor

from ..sandbox import BootListener, Sandbox, SandboxBackend, SandboxPlan


class WarmPool:
    def __init__(self, backend: SandboxBackend, depth: int, on_boot: BootListener | None = None) -> None:
        self._backend = backend
        self._depth = depth
        self._on_boot = on_boot
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=max(1, depth), thread_name_prefix="keystone-pool")
        self._demand: dict[str, int] = defaultdict(int)
        self._booting: dict[str, list[Future[Sandbox]]] = defaultdict(list)
        self._closed = False

    def expect(self, key: str, count: int) -> None:
        """Announce `count` more sandboxes that will be acquired under `key`."""
        with self._lock:
            self._demand[key] += count

    def acquire(self, key: str, plan: SandboxPlan, on_boot: BootListener | None = None) -> Sandbox:
        """A ready sandbox for `plan`: one booted ahead (waiting for it if its boot is under way, which is
        never slower than starting a new boot), else a new boot.

        Raises what `SandboxBackend.create` raises when no pooled sandbox is usable and the new boot fails.
        """
        with self._lock:
            self._demand[key] -= 1
            futures = self._booting[key]
            ahead = next((f for f in futures if f.done()), futures[0] if futures else None)
            if ahead is not None:
                futures.remove(ahead)
            self._refill(key, plan)
        if ahead is not None:
            try:
                sandbox = ahead.result()
            except Exception:
                sandbox = None  # the pooled boot failed: boot afresh, so the replica reports its own error
            if sandbox is not None:
                sandbox.expire_after(plan.timeout_s)
                return sandbox
        return self._backend.create(plan, on_boot)

    def _refill(self, key: str, plan: SandboxPlan) -> None:
        wanted = min(self._depth, self._demand[key])
        while not self._closed and len(self._booting[key]) < wanted:
            self._booting[key].append(self._executor.submit(self._backend.create, plan, self._on_boot))

    def close(self) -> None:
        """Destroy every sandbox booted ahead and not used (called when the experiment ends)."""
        with self._lock:
            self._closed = True
            futures = [f for group in self._booting.values() for f in group]
            self._booting.clear()
        for future in futures:
            future.cancel()
        self._executor.shutdown(wait=True)
        for future in futures:
            if not future.cancelled() and future.exception() is None:
                future.result().destroy()
