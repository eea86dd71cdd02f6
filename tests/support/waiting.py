"""Waiting in tests: on a condition, with a deadline, never on a guess of how long something takes.

A test that sleeps "long enough" either wastes the time or fails on a loaded machine; a loop without
a deadline hangs the suite. ``wait_until`` asks again every ``interval_s`` and fails, naming what it
waited for, once ``timeout_s`` has passed: bounded in time and, through the interval, in count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.02) -> T:
    """The first truthy answer of ``condition``; AssertionError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    for _attempt in range(int(timeout_s / interval_s) + 2):
        answer = condition()
        if answer:
            return answer
        if time.monotonic() >= deadline:
            break
        threading.Event().wait(interval_s)  # the condition is met by another thread or process
    raise AssertionError(f"not within {timeout_s} s: {what}")


class ManualClock:
    """A clock the test moves: for code that reads the time through an injected ``clock``."""

    def __init__(self, start_s: float = 1_000_000.0):
        self.now_s = start_s
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds
