"""Polling helper shared by the tests that wait for asynchronous state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(cond: Callable[[], T], timeout: float, what: str, every: float = 0.1) -> T:
    """Poll `cond` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def wait_until(what: str, fn: Callable[[], object], timeout: float = 30) -> float:
    """Seconds until fn() is truthy (for tests that report convergence times); fails
    naming `what` and the last value."""
    start = time.monotonic()
    value = fn()
    while not value:
        assert time.monotonic() - start < timeout, f"{what}: last {value!r}"
        time.sleep(0.2)
        value = fn()
    return time.monotonic() - start
