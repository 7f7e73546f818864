"""Ready sandboxes kept between experiments (a server's warm pool), so that an experiment's first replicas
start at once instead of after a boot.

A sandbox enters the stock when the experiment that used it needs it no more (its last replicas are
running, or it ends with sandboxes made ready ahead and never used). Off every experiment's path it is
renewed (a fresh agent container, the services reset, the fixtures applied again) and its services' state
digests are compared with those of its first boot; only a sandbox whose state matches is kept. A later
experiment's replica takes it as it is: it only gets its identity (`SandboxBackend.adopt`).

Sandboxes are kept apart by `project` (one project's agents never touch a service another project's
sandbox will use: a reset restores the data, not every trace a hostile agent could leave in a service
container) and by the exact sandbox plan they were made for (images, services, fixtures, limits,
environment), so a taker gets what a boot of its own plan would give.

Bounds: `per_plan` sandboxes per (project, plan), `total` in all, each kept at most `ttl_s`, none taken in
while the host has less than `min_available_bytes` of memory available, and a sandbox whose labels (which
every process's reaper honours) would expire before its next use is not kept. `close` destroys them all;
a crashed server's are reaped with its lease.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from ..sandbox import Sandbox, SandboxBackend, SandboxError
from ._prepare import PreparedSpec, ReplicaPlan
from ._service_reset import renew_verified

log = logging.getLogger("polarity_keystone.engine")

MEMINFO = "/proc/meminfo"
RENEWAL_WAIT_S = 10.0
"""How long a taker waits for a sandbox being renewed for the stock (a renewal takes about a second)."""
LABEL_MARGIN_S = 60.0
"""Kept between a sandbox's last possible use and its labels' expiry."""


@dataclass(frozen=True)
class StockLimits:
    per_plan: int = 2
    """Ready sandboxes kept per project and sandbox plan (0: no stock)."""
    total: int = 8
    """Ready sandboxes kept in all."""
    ttl_s: float = 600.0
    """A sandbox not taken within this long is destroyed."""
    min_available_bytes: int = 1024**3
    """No sandbox is taken in while the host's available memory is below this."""

    def __post_init__(self) -> None:
        if self.per_plan < 0 or self.total < 0:
            raise ValueError(f"a warm pool holds 0 or more sandboxes, not {min(self.per_plan, self.total)}")
        if self.ttl_s <= 0:
            raise ValueError(
                f"a warm pool's sandboxes must be kept for more than 0 seconds, not {self.ttl_s:g}"
            )


@dataclass(frozen=True)
class Stocked:
    sandbox: Sandbox
    reference: dict[str, str]
    """Its services' state digests after its first boot, which later renewals must match."""
    renewals: int
    """How many more replicas may renew it after the one that takes it."""


@dataclass(frozen=True)
class StockShelf:
    """The part of a stock one project's experiments take from and give back to; `for_spec` narrows it
    to the sandboxes of one prepared spec."""

    stock: SandboxStock
    project: str
    spec: str = ""
    """The prepared spec's fingerprint id: its text, images, agent and bundle."""
    bundled: bool = False
    """Whether the spec's files came in a bundle, which the fingerprint pins."""

    def for_spec(self, prepared: PreparedSpec) -> StockShelf:
        return replace(self, spec=prepared.fingerprint_id, bundled="bundle" in prepared.fingerprint)

    def take(self, plan: ReplicaPlan) -> Stocked | None:
        key = plan_key(plan, self.spec, self.bundled)
        return None if key is None else self.stock.take((self.project, key))

    def offer(self, sandbox: Sandbox, plan: ReplicaPlan, reference: dict[str, str], renewals: int) -> bool:
        key = plan_key(plan, self.spec, self.bundled)
        return key is not None and self.stock.offer((self.project, key), sandbox, plan, reference, renewals)


@dataclass
class _Kept:
    stocked: Stocked
    timer: threading.Timer


def plan_key(plan: ReplicaPlan, spec: str, bundled: bool) -> str | None:
    """What makes two replicas' sandboxes interchangeable: the same prepared spec and sandbox plan (but
    for whose they are and how long their labels last), with fixtures of the same content. None when a
    fixture reads files at apply time that no bundle pins: they may have changed since."""
    steps = [(step.label, step.content) for step in plan.sandbox.fixtures]
    if not bundled and not all(content for _, content in steps):
        return None
    anonymous = replace(plan.sandbox, run_id="", sandbox_id=None, renewals=0, keep=False, fixtures=[])
    return hashlib.sha256(repr((spec, anonymous, steps)).encode()).hexdigest()


def available_memory() -> int | None:
    """The host's available memory in bytes (Linux's MemAvailable); None where it cannot be read."""
    with contextlib.suppress(OSError, ValueError), open(MEMINFO, encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


class SandboxStock:
    def __init__(self, backend: Callable[[], SandboxBackend], limits: StockLimits) -> None:
        """`backend`: the engine's own backend (no server identity), called when a sandbox comes in."""
        self._backend = backend
        self.limits = limits
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        """Notified when a renewal for the stock ends (kept or not), and when the stock closes."""
        self._kept: dict[tuple[str, str], list[_Kept]] = {}
        self._coming: Counter[tuple[str, str]] = Counter()
        """Sandboxes being renewed for the stock, per (project, plan)."""
        self._renewing = ThreadPoolExecutor(max_workers=2, thread_name_prefix="keystone-stock")
        self._closed = False

    def shelf(self, project: str) -> StockShelf:
        return StockShelf(self, project)

    def take(self, key: tuple[str, str]) -> Stocked | None:
        """A kept sandbox under (project, plan key), no longer in the stock; None when there is none. One
        being renewed for the stock is waited for (for at most `RENEWAL_WAIT_S`): it is ready sooner than
        a new boot would be."""
        deadline = time.monotonic() + RENEWAL_WAIT_S
        with self._changed:
            while not self._kept.get(key) and self._coming[key] and not self._closed:
                if not self._changed.wait(deadline - time.monotonic()):
                    break
            kept = self._kept.get(key)
            if not kept:
                return None
            taken = kept.pop(0)
        taken.timer.cancel()
        return taken.stocked

    def offer(
        self,
        key: tuple[str, str],
        sandbox: Sandbox,
        plan: ReplicaPlan,
        reference: dict[str, str],
        renewals: int,
    ) -> bool:
        """Take `sandbox` in under (project, plan key) if there is room for it: True, and the stock
        renews, verifies and keeps it (or destroys it) on its own threads; False, and the caller still
        owns it."""
        with self._lock:
            if self._closed or renewals < 1 or not self._room_for(key):
                return False
            self._coming[key] += 1
        self._renewing.submit(self._keep, key, sandbox, plan, reference, renewals - 1)
        return True

    def _room_for(self, key: tuple[str, str]) -> bool:
        here = len(self._kept.get(key, [])) + self._coming[key]
        everywhere = sum(map(len, self._kept.values())) + sum(self._coming.values())
        if here >= self.limits.per_plan or everywhere >= self.limits.total:
            return False
        memory = available_memory()
        return memory is None or memory >= self.limits.min_available_bytes

    def _keep(
        self,
        key: tuple[str, str],
        sandbox: Sandbox,
        plan: ReplicaPlan,
        reference: dict[str, str],
        renewals: int,
    ) -> None:
        stocked = None
        try:
            stocked = self._renewed(sandbox, plan, reference, renewals)
        finally:
            with self._changed:
                self._coming[key] -= 1
                if stocked is not None and not self._closed:
                    timer = threading.Timer(self.limits.ttl_s, self._expire, [key, stocked])
                    timer.daemon = True
                    self._kept.setdefault(key, []).append(_Kept(stocked, timer))
                    timer.start()
                    stocked = None
                self._changed.notify_all()
        if stocked is not None:  # the stock closed meanwhile
            stocked.sandbox.destroy()

    def _renewed(
        self, sandbox: Sandbox, plan: ReplicaPlan, reference: dict[str, str], renewals: int
    ) -> Stocked | None:
        """`sandbox` renewed for nobody in particular and verified; None (and destroyed) otherwise."""
        anonymous = replace(plan.sandbox, sandbox_id=None, keep=False)
        try:
            renewed = renew_verified(self._backend(), sandbox, anonymous, plan.services, reference)
        except SandboxError as exc:  # destroyed
            log.info("a sandbox was not kept for later experiments: %s", exc)
            return None
        # The labels must outlast its stay here, the replica that takes it and the renewals it keeps.
        left = renewed.expires_at - time.time() - LABEL_MARGIN_S - self.limits.ttl_s
        renewals = min(renewals, int(left // plan.sandbox.timeout_s) - 1)
        if renewals < 0:
            renewed.destroy()
            return None
        renewed.expire_after(self.limits.ttl_s + plan.sandbox.timeout_s)
        return Stocked(renewed, reference, renewals)

    def _expire(self, key: tuple[str, str], stocked: Stocked) -> None:
        with self._lock:
            kept = self._kept.get(key, [])
            mine = [entry for entry in kept if entry.stocked is stocked]
            for entry in mine:
                kept.remove(entry)
        if mine:
            stocked.sandbox.destroy()

    def count(self) -> int:
        """Sandboxes kept ready now (not those still being renewed)."""
        with self._lock:
            return sum(map(len, self._kept.values()))

    def close(self) -> None:
        """Destroy every kept sandbox, and those being renewed once they are (the server is stopping)."""
        with self._changed:
            self._closed = True
            kept = [entry for entries in self._kept.values() for entry in entries]
            self._kept.clear()
            self._changed.notify_all()
        for entry in kept:
            entry.timer.cancel()
        self._renewing.shutdown(wait=True)
        for entry in kept:
            entry.stocked.sandbox.destroy()
