"""A count per verified caller in a moving 60-second window, kept in this process's memory.

Used for writes (``IDO_WRITE_RATE_LIMIT_PER_MINUTE``, services/common/rate_limit.py) and for the
ledger's reads that name an event it cannot answer for (``IDO_READ_YOUR_WRITES_UNANSWERED_PER_MINUTE``).
The key is the caller (role, municipality, token subject), never the address. ``limits``' moving window
is the library under Flask-Limiter; counts are per server process and forgotten on a restart
(docs/operations.md).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from services.common.auth import Principal
from services.common.errors import TooManyRequests


def principal_key(caller: Principal) -> str:
    return f"{caller.role}/{caller.municipality_code or '-'}/{caller.subject}"


class PerPrincipalLimit:
    """At most ``per_minute`` counted requests per caller in any 60 s; ``what`` and ``setting`` name them
    in the 429's message."""

    def __init__(self, per_minute: int, *, what: str, setting: str, consequence: str):
        self.limit = RateLimitItemPerMinute(per_minute)
        self.what, self.setting, self.consequence = what, setting, consequence
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, key: str) -> None:
        """Counts one request of ``key``; raises TooManyRequests over the limit (then it is not counted)."""
        if not self._limiter.hit(self.limit, key):
            raise self.refusal(key)

    def exhausted(self, key: str) -> bool:
        """Whether one more request of ``key`` would be over the limit (counts nothing)."""
        return not self._limiter.test(self.limit, key)

    def count(self, key: str) -> None:
        """Counts one request of ``key`` (already answered: over the limit it is simply not counted)."""
        self._limiter.hit(self.limit, key)

    def refusal(self, key: str) -> TooManyRequests:
        reset_at = self._limiter.get_window_stats(self.limit, key).reset_time
        return TooManyRequests(
            f"more than {self.limit.amount} {self.what} in 60 s by this caller ({self.setting}); "
            f"{self.consequence}: retry after Retry-After seconds",
            retry_after_s=max(1, math.ceil(reset_at - time.time())),
        )
