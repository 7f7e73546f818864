"""`wrap`, `observe` and `auto_instrument`: LLM clients that report each call as an `llm_call` event.

`wrap` instruments one client object (its resources' `create`); `auto_instrument` patches the providers'
classes, so every client of the process reports, made before or after. Both are idempotent, and used
together a call is still recorded once. `uninstrument` undoes `auto_instrument`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, TypeVar

from . import _config, _wrap_anthropic, _wrap_litellm, _wrap_openai
from ._llm_wrappers import RETIRED_MARK, WRAPPED_MARK, instrument
from ._tracing import set_tracer, tracer_from_env

C = TypeVar("C")

PROVIDERS: tuple[ModuleType, ...] = (_wrap_openai, _wrap_anthropic, _wrap_litellm)
"""Each names the `patch_points()` of its package (classes' methods, or a module's functions) and a
client's `client_resources()`."""

_patched: list[tuple[type | ModuleType, str, Any]] = []
"""(class or module, attribute name, original attribute) of every method `auto_instrument` replaced."""
_patch_lock = threading.Lock()


def wrap_client(client: C) -> tuple[C, list[str]]:
    """`client` with every call of its supported resources recorded, and the label of its provider
    (`openai-client`) — none for a client of no supported provider, which is returned as it is."""
    labels = []
    for provider in PROVIDERS:
        points = provider.patch_points()
        for resource in provider.client_resources(client) if points else []:
            for cls, method, reader in points:
                if isinstance(resource, cls):
                    wrapped = instrument(getattr(resource, method), reader)
                    setattr(resource, method, wrapped)
                    labels.append(f"{reader.provider}-client")
    return client, sorted(set(labels))


def patch_providers() -> list[str]:
    """Patch the classes of every importable provider; the names of the providers patched (or already)."""
    applied = []
    with _patch_lock:
        for provider in PROVIDERS:
            for cls, method, reader in provider.patch_points():
                original = vars(cls)[method]
                if not getattr(original, WRAPPED_MARK, False):
                    setattr(cls, method, instrument(original, reader))
                    _patched.append((cls, method, original))
                applied.append(reader.provider)
    return sorted(set(applied))


def uninstrument() -> None:
    """Undo `auto_instrument`: the providers' classes get their own methods back."""
    with _patch_lock:
        while _patched:
            cls, method, original = _patched.pop()
            setattr(vars(cls)[method], RETIRED_MARK, True)
            setattr(cls, method, original)


def auto_instrument(sandbox_id: str | None = None) -> list[str]:
    """Patch every importable LLM provider so each call reports to `sandbox_id` (default
    KEYSTONE_SANDBOX_ID, through KEYSTONE_API_KEY) or, in a sandbox without a key, to the trace file.
    Raises RuntimeError when there is nowhere to report."""
    tracer = tracer_from_env(sandbox_id)
    if tracer is None:
        raise RuntimeError(
            "auto_instrument needs a sandbox id (argument or KEYSTONE_SANDBOX_ID) with KEYSTONE_API_KEY, "
            "or KEYSTONE_TRACE_FILE"
        )
    if sandbox_id is not None or _config.sandbox_id() is None:
        set_tracer(tracer)
    else:
        tracer.close()  # the environment's tracer, which the first event builds anyway
    return patch_providers()


def observe(
    init_tracing: Callable[[str | None], bool],
    clients: Iterable[Any] = (),
    *,
    tracing: bool = True,
    auto_instrument: bool = True,
    sandbox_id: str | None = None,
) -> list[str]:
    """Wrap `clients`, start tracing through `init_tracing` and patch every provider; the labels of what
    was applied (`openai-client`, `tracing`, `openai`, ...)."""
    applied = [label for client in clients for label in wrap_client(client)[1]]
    if (tracing or sandbox_id) and init_tracing(sandbox_id):
        applied.append("tracing")
    if auto_instrument:
        applied.extend(patch_providers())
    return applied
