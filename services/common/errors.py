"""Base of each service's exception hierarchy; the HTTP layer translates these in one place."""

from __future__ import annotations


class ServiceError(Exception):
    """A refused command. Subclasses fix the HTTP status; ``field`` names the input at fault."""

    http_status = 422
    code = "rule_broken"

    def __init__(self, message: str, *, field: str | None = None, errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors = errors or ({field: [message]} if field else {})


class InvalidInput(ServiceError):
    http_status = 422
    code = "invalid_input"


class NotFound(ServiceError):
    http_status = 404
    code = "not_found"


class Conflict(ServiceError):
    http_status = 409
    code = "conflict"


class RuleBroken(ServiceError):
    http_status = 422
    code = "rule_broken"


class Unauthenticated(ServiceError):
    http_status = 401
    code = "unauthenticated"


class Forbidden(ServiceError):
    http_status = 403
    code = "forbidden"


class BadRequest(ServiceError):
    """A body the service will not even parse (JSON nested deeper than it accepts)."""

    http_status = 400
    code = "bad_request"


class RetryLater(ServiceError):
    """Refused for now; ``retry_after_s`` says when to try again (the answer's Retry-After header)."""

    def __init__(self, message: str, *, retry_after_s: int = 1, field: str | None = None):
        super().__init__(message, field=field)
        self.retry_after_s = retry_after_s


class TooManyRequests(RetryLater):
    """Over a rate limit."""

    http_status = 429
    code = "too_many_requests"


class Unavailable(RetryLater):
    http_status = 503
    code = "unavailable"
