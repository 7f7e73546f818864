"""A warm pool: the next replicas' sandboxes are made ready while the current replicas run.

Replicas of one scenario boot identical sandboxes (the seed reaches the agent at exec time, not the
sandbox), so a replica need not wait for its own boot. Two ways to have one ready:

- **Boot ahead**: up to `depth` fresh sandboxes per scenario, never more than the replicas to come.
- **Renew** (`renew=True`, when every service of the spec can be reset): a replica that ended cleanly
  hands its sandbox back; off its path, the agent container is replaced by a fresh one, the services are
  reset and the fixtures applied again, and the services' state digests are compared with those the same
  sandbox had after its first boot. Equal, the sandbox serves the next replica (`renewed`); different (an
  agent changed something a reset does not undo), it is destroyed and a fresh one boots, and the replica
  that gets it is told why (`boot_note`). A renewed sandbox saves the start of every service container,
  which is most of a boot's CPU; fresh boots are then needed only for the first replicas.

A replica takes a ready sandbox, else the one nearest to ready, else boots its own.
"""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from functools import partial

from ..sandbox import BootListener, Sandbox, SandboxBackend, SandboxError
from ._prepare import ReplicaPlan
from ._service_reset import differing, reset_services, state_digests

MAX_RENEWALS = 20
"""Replicas one sandbox's services serve at most; its labels' expiry covers them all."""


class WarmPool:
    def __init__(
        self, backend: SandboxBackend, depth: int, on_boot: BootListener | None = None, *, renew: bool = False
    ) -> None:
        self._backend = backend
        self._depth = depth
        self._on_boot = on_boot
        self._renew = renew
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=max(2, depth), thread_name_prefix="keystone-pool")
        self._teardown = ThreadPoolExecutor(max_workers=max(1, depth), thread_name_prefix="keystone-teardown")
        """Sandboxes are destroyed on their own threads: a teardown never delays a boot or a renewal."""
        self._demand: dict[str, int] = defaultdict(int)
        self._coming: dict[str, list[Future[Sandbox | None]]] = defaultdict(list)
        """Fresh boots and renewals under way or done, per scenario; None for a renewal that failed."""
        self._fresh_state: dict[int, tuple[dict[str, str], int]] = {}
        """Per renewable sandbox (by identity): its services' state digests after its first boot, and how
        many more times it may be renewed."""
        self._closed = False

    def expect(self, key: str, count: int) -> None:
        """Announce `count` more sandboxes that will be acquired under `key`."""
        with self._lock:
            self._demand[key] += count

    def acquire(self, key: str, plan: ReplicaPlan, on_boot: BootListener | None = None) -> Sandbox:
        """A ready sandbox for `plan`: one made ready ahead (waiting for it if it is on its way, which is
        never slower than a new boot), else a new boot.

        Raises what `SandboxBackend.create` raises when no pooled sandbox is usable and the new boot fails.
        """
        with self._lock:
            self._demand[key] -= 1
            coming = self._coming[key]
            ahead = next((f for f in coming if f.done()), coming[0] if coming else None)
            if ahead is not None:
                coming.remove(ahead)
            self._refill(key, plan)
        sandbox = None
        if ahead is not None:
            with contextlib.suppress(Exception):  # a failed boot ahead: the replica boots and reports its own
                sandbox = ahead.result()
        if sandbox is None:
            sandbox = self._fresh(plan, on_boot)
        sandbox.expire_after(plan.sandbox.timeout_s)
        return sandbox

    def release(self, key: str, sandbox: Sandbox, plan: ReplicaPlan) -> None:
        """Take back the sandbox of a replica that ended cleanly: renewed for a replica still to come, or
        destroyed; either off the replica's path."""
        with self._lock:
            wanted = self._renew and not self._closed and self._demand[key] > len(self._coming[key])
            if wanted and self._fresh_state.get(id(sandbox), ({}, 0))[1] > 0:
                self._coming[key].append(self._executor.submit(self._renewed, sandbox, plan))
                return
            if not self._closed:
                self._teardown.submit(self._discard, sandbox)
                self._refill(key, plan)
                return
        self._discard(sandbox)

    def destroy(self, key: str, sandbox: Sandbox, plan: ReplicaPlan) -> None:
        """A replica's sandbox that may not serve again (the replica failed to run, or kept it)."""
        with self._lock:
            if not self._closed:
                self._refill(key, plan)
        self._discard(sandbox)

    def _refill(self, key: str, plan: ReplicaPlan) -> None:
        """Keep `depth` sandboxes on their way (never more than the replicas to come), booting fresh ones
        where renewals do not: sandboxes in use and on their way then rotate, each renewed while the
        others' replicas run, so a replica never waits for the renewal of the sandbox it just gave back."""
        wanted = min(self._depth, self._demand[key]) - len(self._coming[key])
        for _ in range(max(0, wanted)):
            self._coming[key].append(self._executor.submit(self._fresh, plan, self._on_boot))

    def _fresh(self, plan: ReplicaPlan, on_boot: BootListener | None) -> Sandbox:
        if not self._renew:
            return self._backend.create(plan.sandbox, on_boot)
        renewals = min(MAX_RENEWALS, max(0, self._total_demand()))
        sandbox = self._backend.create(replace(plan.sandbox, renewals=renewals), on_boot)
        with contextlib.suppress(SandboxError):  # else it serves one replica, and is destroyed after it
            self._fresh_state[id(sandbox)] = (state_digests(sandbox, plan.services), renewals)
        return sandbox

    def _total_demand(self) -> int:
        with self._lock:
            return sum(self._demand.values())

    def _renewed(self, sandbox: Sandbox, plan: ReplicaPlan) -> Sandbox | None:
        """`sandbox` renewed and verified, else a fresh sandbox that says why; None if that boot failed."""
        reference, renewals = self._fresh_state.pop(id(sandbox), ({}, 0))
        why = ""
        try:
            renewed = self._backend.renew(sandbox, plan.sandbox, partial(reset_services, plan.services))
            changed = differing(reference, state_digests(renewed, plan.services))
        except SandboxError as exc:
            why = f"resetting the services of an earlier replica's sandbox failed ({exc})"
        else:
            if not changed:
                self._fresh_state[id(renewed)] = (reference, renewals - 1)
                return renewed
            self._discard(renewed)
            why = (
                f"after an earlier replica, a reset left {', '.join(changed)} different from a fresh boot "
                "(something a reset does not undo, e.g. a new database role)"
            )
        try:
            fresh = self._fresh(plan, self._on_boot)
        except Exception:
            return None
        fresh.boot_note = f"{why}; this sandbox was booted afresh"
        return fresh

    def _discard(self, sandbox: Sandbox) -> None:
        self._fresh_state.pop(id(sandbox), None)
        sandbox.destroy()

    def close(self) -> None:
        """Destroy every sandbox made ready and not used (called when the experiment ends)."""
        with self._lock:
            self._closed = True
            futures = [f for group in self._coming.values() for f in group]
            self._coming.clear()
        for future in futures:
            future.cancel()
        self._executor.shutdown(wait=True)
        self._teardown.shutdown(wait=True)
        for future in futures:
            if not future.cancelled() and future.exception() is None and (sandbox := future.result()):
                self._discard(sandbox)
