"""Optimistic concurrency with retry, shared by the services' application layers."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
CONFLICT_RETRIES = 40
"""A command whose save lost a race is run again on the new state, up to this many times..."""
CONFLICT_DEADLINE_S = 5.0
"""... and for at most this long: 50 clients racing for one grant took more than 10 tries (each
save a few ms) on a busy machine and got 409s for nothing; a bound in time keeps a stuck store
from holding a request thread forever."""


def retry_on(conflict: type[Exception]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorates a command so that a save that lost the race (raising ``conflict``) runs it again.

    The lost save stored nothing, so the whole command (load, decide, save) runs again on what the
    winner stored; only after ``CONFLICT_RETRIES`` lost races, or ``CONFLICT_DEADLINE_S``, does the
    caller get ``conflict``.
    """

    def decorate(command: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(command)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            deadline = time.monotonic() + CONFLICT_DEADLINE_S
            for attempt in range(1, CONFLICT_RETRIES + 1):
                try:
                    return command(*args, **kwargs)
                except conflict:
                    if attempt == CONFLICT_RETRIES or time.monotonic() >= deadline:
                        raise
                    # jitter, so racing retries spread out; capped so a late winner is not kept waiting
                    time.sleep(random.uniform(0.001, min(0.05, 0.004 * attempt)))
            raise AssertionError("unreachable")

        return run

    return decorate
