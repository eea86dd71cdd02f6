"""A count per verified caller in a moving 60-second window, kept in this process's memory.

Used for writes (``IDO_WRITE_RATE_LIMIT_PER_MINUTE``, services/common/rate_limit.py) and for the
ledger's reads that name an event it cannot answer for (``IDO_READ_YOUR_WRITES_UNANSWERED_PER_MINUTE``).
The key is the caller (role, municipality, token subject), never the address. Counts are per server
process and forgotten on a restart (docs/operations.md).

The window is counted here, not by ``limits``: its MemoryStorage starts a ``threading.Timer`` on a
hit whenever its last one has ended (every 10 ms), which cost each posting ~0.8 ms (issue 17). Here a
key's hits are a deque of their times, pruned when the key is next asked; keys left idle are swept at
most once a window.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from services.common.auth import Principal
from services.common.errors import TooManyRequests

WINDOW_S = 60.0


def principal_key(caller: Principal) -> str:
    return f"{caller.role}/{caller.municipality_code or '-'}/{caller.subject}"


class MovingWindow:
    """At most ``amount`` hits per key in any ``window_s`` seconds (the moving window of ``limits``)."""

    def __init__(self, amount: int, window_s: float = WINDOW_S):
        self.amount, self.window_s = amount, window_s
        self._hits: dict[str, deque[float]] = {}
        """Per key the monotonic times of its counted hits in the window, oldest first."""
        self._lock = threading.Lock()
        self._swept_at_s = time.monotonic()

    def _current(self, key: str, now_s: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque()
        start_s = now_s - self.window_s
        while hits and hits[0] <= start_s:
            hits.popleft()
        return hits

    def _sweep(self, now_s: float) -> None:
        """Drops keys with no hit in the window, so callers that stopped do not stay in memory."""
        if now_s - self._swept_at_s < self.window_s:
            return
        self._swept_at_s = now_s
        start_s = now_s - self.window_s
        for key in [key for key, hits in self._hits.items() if not hits or hits[-1] <= start_s]:
            del self._hits[key]

    def hit(self, key: str) -> bool:
        """Counts one hit of ``key`` unless the window is full; whether it was counted."""
        now_s = time.monotonic()
        with self._lock:
            self._sweep(now_s)
            hits = self._current(key, now_s)
            if len(hits) >= self.amount:
                return False
            hits.append(now_s)
            return True

    def test(self, key: str) -> bool:
        """Whether one more hit of ``key`` would be counted (counts nothing)."""
        now_s = time.monotonic()
        with self._lock:
            return len(self._current(key, now_s)) < self.amount

    def seconds_to_room(self, key: str) -> float:
        """Seconds until the window of ``key`` has room again (0 if it has room now)."""
        now_s = time.monotonic()
        with self._lock:
            hits = self._current(key, now_s)
            if len(hits) < self.amount:
                return 0.0
            # the hit that must leave the window for one more to fit
            return hits[len(hits) - self.amount] + self.window_s - now_s


class PerPrincipalLimit:
    """At most ``per_minute`` counted requests per caller in any 60 s; ``what`` and ``setting`` name them
    in the 429's message."""

    def __init__(self, per_minute: int, *, what: str, setting: str, consequence: str):
        self.per_minute = per_minute
        self.what, self.setting, self.consequence = what, setting, consequence
        self._window = MovingWindow(per_minute)

    def check(self, key: str) -> None:
        """Counts one request of ``key``; raises TooManyRequests over the limit (then it is not counted)."""
        if not self._window.hit(key):
            raise self.refusal(key)

    def exhausted(self, key: str) -> bool:
        """Whether one more request of ``key`` would be over the limit (counts nothing)."""
        return not self._window.test(key)

    def count(self, key: str) -> None:
        """Counts one request of ``key`` (already answered: over the limit it is simply not counted)."""
        self._window.hit(key)

    def refusal(self, key: str) -> TooManyRequests:
        return TooManyRequests(
            f"more than {self.per_minute} {self.what} in 60 s by this caller ({self.setting}); "
            f"{self.consequence}: retry after Retry-After seconds",
            retry_after_s=max(1, math.ceil(self._window.seconds_to_room(key))),
        )
