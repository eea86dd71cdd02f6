"""Writes per principal: at most ``IDO_WRITE_RATE_LIMIT_PER_MINUTE`` in any 60 s, else 429 + Retry-After.

The key is the verified caller (its role, municipality and token subject), never the address: many
municipalities reach the services through one gateway, and one caller must not get more by using
more addresses. A write without a valid token is not counted: the route answers it 401, and
refusing unauthenticated floods by address is the reverse proxy's job.

The counts live in this process's memory (``limits``' moving window, the library under
Flask-Limiter): with ``ido serve --workers N`` a principal may make N times the limit across the
workers, and a restart forgets the counts. Both are documented (docs/operations.md); a shared
store (Redis) would make the limit exact at the cost of one more server to run.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, request

from services.common.auth import Principal
from services.common.blueprint import WRITE_METHODS  # the writes whose 429 the API documents describe
from services.common.context_local import current
from services.common.errors import ServiceError
from services.common.principal_limit import PerPrincipalLimit, principal_key


class WriteRateLimit(PerPrincipalLimit):
    def __init__(self, per_minute: int):
        super().__init__(
            per_minute, what="writes", setting="IDO_WRITE_RATE_LIMIT_PER_MINUTE", consequence="nothing was stored"
        )


def limit_writes(app: Flask, per_minute: int, caller: Callable[[], Principal]) -> WriteRateLimit:
    """Counts every write to a route of ``app`` by its verified caller (``caller()`` returns the
    Principal or raises); installed before the routes run, so a refused write reads no body."""
    limit = WriteRateLimit(per_minute)

    @app.before_request
    def _limit_writes() -> None:
        served = current(request)
        if served.method not in WRITE_METHODS or served.url_rule is None:
            return
        try:
            found = caller()
        except ServiceError:
            return  # no valid token: the route answers 401
        limit.check(principal_key(found))

    app.extensions["ido.write_rate_limit"] = limit
    return limit
