"""Named plug-ins (checks, forbidden rules): registered by decorator, looked up by the spec's name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

F = TypeVar("F", bound=Callable[..., object])


class Registry(Generic[F]):
    def __init__(self) -> None:
        self._items: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        def decorator(fn: F) -> F:
            self._items[name] = fn
            return fn

        return decorator

    def get(self, name: str) -> F | None:
        return self._items.get(name)

    def names(self) -> list[str]:
        return sorted(self._items)
