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

With a `stock` (a server's sandboxes kept between experiments, see `_sandbox_stock.py`), a sandbox is
first taken from there, ready at once; the sandboxes this experiment needs no more (no replica left to
run, or made ready and never used) go there instead of being destroyed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

from ..sandbox import BootEvent, BootListener, Sandbox, SandboxBackend, SandboxError
from ._prepare import ReplicaPlan
from ._sandbox_stock import Stocked, StockShelf
from ._service_reset import ResetFailed, renew_verified, state_digests

log = logging.getLogger("polarity_keystone.engine")

MAX_RENEWALS = 20
"""Replicas one sandbox's services serve at most; its labels' expiry covers them all."""


class WarmPool:
    def __init__(
        self,
        backend: SandboxBackend,
        depth: int,
        on_boot: BootListener | None = None,
        *,
        renew: bool = False,
        stock: StockShelf | None = None,
    ) -> None:
        """`stock` is used only with `renew`: a sandbox kept there must be renewable."""
        self._backend = backend
        self._depth = depth
        self._on_boot = on_boot
        self._renew = renew
        self._stock = stock if renew else None
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
        self._plans: dict[str, ReplicaPlan] = {}
        """A plan of each scenario, for the sandboxes made ready and never used, which go to the stock."""
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
            self._plans[key] = plan
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
                if not self._stocked(sandbox, plan):
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
        if self._stock is not None and (stocked := self._stock.take(plan)) is not None:
            adopted = self._adopted(stocked, plan, on_boot)
            if adopted is not None:
                return adopted
        # A sandbox that may end in the stock may serve as many replicas as any.
        renewals = MAX_RENEWALS if self._stock else min(MAX_RENEWALS, max(0, self._total_demand()))
        sandbox = self._backend.create(replace(plan.sandbox, renewals=renewals), on_boot)
        with contextlib.suppress(SandboxError):  # else it serves one replica, and is destroyed after it
            self._fresh_state[id(sandbox)] = (state_digests(sandbox, plan.services), renewals)
        return sandbox

    def _adopted(self, stocked: Stocked, plan: ReplicaPlan, on_boot: BootListener | None) -> Sandbox | None:
        """A sandbox from the stock, given to this experiment's backend (which gives it its identity);
        None (and destroyed) when that fails."""
        started = time.monotonic()
        try:
            sandbox = self._backend.adopt(stocked.sandbox, plan.sandbox)
        except Exception:
            log.exception("a sandbox kept between experiments could not be handed over; booting another")
            stocked.sandbox.destroy()
            return None
        self._fresh_state[id(sandbox)] = (stocked.reference, stocked.renewals)
        if on_boot is not None:
            elapsed = int((time.monotonic() - started) * 1000)
            on_boot(BootEvent(sandbox.id, "ready", "kept warm between experiments", elapsed))
        return sandbox

    def _stocked(self, sandbox: Sandbox, plan: ReplicaPlan) -> bool:
        """Whether the stock took `sandbox` (which this pool then no longer owns)."""
        if self._stock is None or id(sandbox) not in self._fresh_state:  # not verified after its boot
            return False
        reference, renewals = self._fresh_state[id(sandbox)]
        if not self._stock.offer(sandbox, plan, reference, renewals):
            return False
        self._fresh_state.pop(id(sandbox), None)
        return True

    def _total_demand(self) -> int:
        with self._lock:
            return sum(self._demand.values())

    def _renewed(self, sandbox: Sandbox, plan: ReplicaPlan) -> Sandbox | None:
        """`sandbox` renewed and verified, else a fresh sandbox that says why; None if that boot failed."""
        reference, renewals = self._fresh_state.pop(id(sandbox), ({}, 0))
        try:
            renewed = renew_verified(self._backend, sandbox, plan.sandbox, plan.services, reference)
        except ResetFailed as exc:
            why = str(exc)
        else:
            self._fresh_state[id(renewed)] = (reference, renewals - 1)
            return renewed
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
        """The sandboxes made ready and not used go to the stock, or are destroyed (called when the
        experiment ends)."""
        with self._lock:
            self._closed = True
            futures = [(key, f) for key, group in self._coming.items() for f in group]
            self._coming.clear()
        for _, future in futures:
            future.cancel()
        self._executor.shutdown(wait=True)
        self._teardown.shutdown(wait=True)
        for key, future in futures:
            if future.cancelled() or future.exception() is not None or not (sandbox := future.result()):
                continue
            if key not in self._plans or not self._stocked(sandbox, self._plans[key]):
                self._discard(sandbox)
