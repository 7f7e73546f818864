"""The ambient setting of `Eval` calls made without `ks=`: the client that records them, the metadata
(branch, commit) they carry, the Idempotency-Key each eval's experiment is created with, and who hears of
each finished result. `ks eval run FILE.py`, the pytest plugin and `ks gate` run eval files inside one:

    with eval_context(ks=ks, metadata={"branch": "main"}, on_result=results.append):
        runpy.run_path("evals/email.py")     # its Eval(...) calls are recorded through ks
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._client import Keystone
    from ._eval import EvalResult


@dataclasses.dataclass(frozen=True)
class EvalContext:
    ks: Keystone | None = None
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    idempotency_key: Callable[[str], str | None] | None = None
    """Given an eval's name, the key its experiment is created with (None: a fresh one)."""
    on_result: Callable[[EvalResult], None] | None = None


_CURRENT: contextvars.ContextVar[EvalContext | None] = contextvars.ContextVar(
    "keystone_eval_context", default=None
)


@contextlib.contextmanager
def eval_context(
    *,
    ks: Keystone | None = None,
    metadata: Mapping[str, Any] | None = None,
    idempotency_key: Callable[[str], str | None] | None = None,
    on_result: Callable[[EvalResult], None] | None = None,
) -> Iterator[EvalContext]:
    """Within the block, `Eval(...)` without `ks=` records through `ks`, merges `metadata` under its own,
    and hands each finished `EvalResult` to `on_result`. Blocks nest; the innermost applies."""
    context = EvalContext(
        ks=ks, metadata=dict(metadata or {}), idempotency_key=idempotency_key, on_result=on_result
    )
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


def current_eval_context() -> EvalContext:
    """The innermost `eval_context` around the caller, or an empty one."""
    return _CURRENT.get() or EvalContext()
