"""Optimistic concurrency with retry, shared by the services' application layers."""

from __future__ import annotations

import functools
import random
import threading
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

_RETRY_TURN = threading.RLock()
"""Held by the one command of this process that is retrying after a lost race. Racing retries of
one process only beat each other: with 50 clients on one grant, 12 losers a process retried at
once, one won a round, and 3 of 50 ran out of their 5 s on a busy CI machine. In turn, each retry
races only the other processes and the first tries; a first try never waits for the turn, so an
uncontended command costs nothing. Re-entrant: a command may run another retried command."""


def retry_on(conflict: type[Exception]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorates a command so that a save that lost the race (raising ``conflict``) runs it again.

    The lost save stored nothing, so the whole command (load, decide, save) runs again on what the
    winner stored, in the process's retry turn; only after ``CONFLICT_RETRIES`` lost races, or
    ``CONFLICT_DEADLINE_S`` (waiting for the turn included), does the caller get ``conflict``.
    """

    def decorate(command: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(command)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            deadline = time.monotonic() + CONFLICT_DEADLINE_S
            try:
                return command(*args, **kwargs)
            except conflict as lost:
                first_loss: Exception = lost
            if not _RETRY_TURN.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise first_loss
            try:
                return _retry(command, conflict, deadline, *args, **kwargs)
            finally:
                _RETRY_TURN.release()

        return run

    return decorate


def _retry(
    command: Callable[P, R], conflict: type[Exception], deadline: float, *args: P.args, **kwargs: P.kwargs
) -> R:
    for attempt in range(2, CONFLICT_RETRIES + 1):
        try:
            return command(*args, **kwargs)
        except conflict:
            if attempt == CONFLICT_RETRIES or time.monotonic() >= deadline:
                raise
            # lost to another process: jitter, so racing retries spread out; capped so a late winner
            # is not kept waiting
            time.sleep(random.uniform(0.001, min(0.05, 0.004 * attempt)))
    raise AssertionError("unreachable")

