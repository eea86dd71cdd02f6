"""Optimistic concurrency with retry, shared by the services' application layers."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
CONFLICT_RETRIES = 10
"""A command whose save lost a race is run again on the new state, up to this many times."""


def retry_on(conflict: type[Exception]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorates a command so that a save that lost the race (raising ``conflict``) runs it again.

    The lost save stored nothing, so the whole command (load, decide, save) runs again on what the
    winner stored; only after ``CONFLICT_RETRIES`` lost races does the caller get ``conflict``.
    """

    def decorate(command: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(command)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            for attempt in range(1, CONFLICT_RETRIES + 1):
                try:
                    return command(*args, **kwargs)
                except conflict:
                    if attempt == CONFLICT_RETRIES:
                        raise
                    time.sleep(random.uniform(0.002, 0.02) * attempt)  # jitter, so racing retries spread out
            raise AssertionError("unreachable")

        return run

    return decorate
