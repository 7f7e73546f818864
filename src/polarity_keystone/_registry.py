"""Named plug-ins (checks, forbidden rules, fixture types, service kinds): registered under the name
the spec uses, looked up by it. A test holds every name the spec's models declare to an implementation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self) -> None:
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator (or a plain call, `register(name)(item)`) that files `item` under `name`."""

        def decorator(item: T) -> T:
            self._items[name] = item
            return item

        return decorator

    def get(self, name: str) -> T | None:
        return self._items.get(name)

    def names(self) -> list[str]:
        return sorted(self._items)
