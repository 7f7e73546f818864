"""Waiting in a test for what another thread or process does: poll a condition until a deadline and fail
saying what did not happen, never a fixed sleep that hopes to be long enough on every machine. Most
waits are for a server that was just started to answer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import httpx

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """`condition()`'s first truthy answer, polled every `interval` seconds; AssertionError naming `what`
    once `timeout` seconds have passed without one."""
    deadline = time.monotonic() + timeout
    while not (answer := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)
    return answer


def answers_health(base_url: str) -> bool:
    """Whether a server answers `GET /health` with 200: what a test waits for after starting one."""
    try:
        return httpx.get(f"{base_url}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
