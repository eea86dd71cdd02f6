"""The services' flask-smorest Blueprint: one schema instance per route, built once.

flask-smorest hands a schema *class* to webargs, which then builds a new instance (and new
instances of its nested schemas) for every request: 7 % of a POST's CPU in the write benchmark
(bench/README.md). A marshmallow schema holds no per-load state, so one instance serves all
requests and threads.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import flask_smorest
from marshmallow import Schema

from services.common.error_schema import ServiceErrorSchema

F = TypeVar("F", bound=Callable[..., Any])

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RETRY_AFTER_HEADER = {
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}
}
WRITE_ERRORS: tuple[tuple[int, str, dict[str, Any] | None], ...] = (
    (400, "The JSON body nests deeper than 32 levels of arrays and objects (services/common/json_depth.py).", None),
    (429, "More writes by this caller than `IDO_WRITE_RATE_LIMIT_PER_MINUTE` in 60 s; nothing was stored. "
     "Retry after `Retry-After` seconds.", RETRY_AFTER_HEADER),
)
"""Answers every write route can give before its own code runs (services/common/http.py)."""

NO_DATABASE_ROUTES = ("/healthz", "/readyz", "/metrics", "/.well-known/ido-keyset.json")
"""Routes that read no database: answered while the database breaker is open (services/common/http.py)."""

DATABASE_AWAY = (
    503,
    "The database is not reachable (down, restarting, or every connection busy); nothing was stored. Retry after "
    "`Retry-After` seconds (a write with the same `Idempotency-Key`).",
    RETRY_AFTER_HEADER,
)
"""What every route that reads or writes a database may answer while it is away (services/common/http.py)."""

WRITE_HELD_BACK = (
    503,
    "The database is not reachable (down, restarting, or every connection busy), or this service's events have "
    "not reached Kafka for `IDO_OUTBOX_STALL_S` seconds while more wait (a broker outage; "
    "services/common/outbox_gate.py); nothing was stored. Or, where `IDO_ANSWER_AFTER_PUBLISHED_MS` is set, the "
    "write was recorded but its events were not confirmed on Kafka in time (services/common/published_answer.py). "
    "Retry after `Retry-After` seconds (a write with the same `Idempotency-Key`: it finds what was recorded).",
    RETRY_AFTER_HEADER,
)
"""A write route's 503: the database away, its events held back from Kafka, or not yet confirmed there."""


class Blueprint(flask_smorest.Blueprint):
    def arguments(self, schema: type[Schema] | Schema, *args: Any, **kwargs: Any) -> Any:
        if isinstance(schema, type):
            schema = schema()
        return super().arguments(schema, *args, **kwargs)

    def route(self, rule: str, *, parameters: Any = None, tags: Any = None, **options: Any) -> Callable[[F], F]:
        """A write route (POST, PUT, PATCH, DELETE) documents the 400 and 429 every write may get; a route
        that reaches a database documents its 503 (a route's own 503 text, if it has one, comes first)."""
        register: Callable[[F], F] = super().route(rule, parameters=parameters, tags=tags, **options)
        writes = bool(WRITE_METHODS & {method.upper() for method in options.get("methods", ())})
        errors = WRITE_ERRORS if writes else ()
        if f"{self.url_prefix or ''}{rule}" not in NO_DATABASE_ROUTES:
            errors = (*errors, WRITE_HELD_BACK if writes else DATABASE_AWAY)
        if not errors:
            return register

        def decorate(view: F) -> F:
            for status, description, headers in errors:
                view = self.alt_response(status, schema=ServiceErrorSchema, description=description, headers=headers)(
                    view
                )
            return register(view)

        return decorate

    def alt_response(self, status_code: int | str, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        """flask-smorest's ``alt_response`` documents an answer and wraps the view in a function that only calls
        it (``current_app.ensure_sync(view)(...)``): a posting went through seven of them, ~15 µs of its CPU
        (issue 17). The documentation is kept (``_apidoc``, which flask-smorest reads at registration), the
        wrapper is not: the view comes back as a copy of itself carrying it. A coroutine view keeps the
        wrapper, where ``ensure_sync`` does something."""
        document: Callable[[F], F] = super().alt_response(status_code, *args, **kwargs)

        def decorate(view: F) -> F:
            wrapper = document(view)
            if not isinstance(view, types.FunctionType) or inspect.iscoroutinefunction(view):
                return wrapper
            return cast(F, _documented_copy(view, wrapper._apidoc))  # type: ignore[attr-defined]

        return decorate

    def documented_errors(self, schema: type[Schema], responses: Iterable[tuple[int, str]]) -> Callable[[F], F]:
        """Adds an endpoint's JSON error answers (status, description) to its OpenAPI description."""
        answers = tuple(responses)

        def decorate(view: F) -> F:
            for status, description in answers:
                view = self.alt_response(status, schema=schema, description=description)(view)
            return view

        return decorate


def _documented_copy(view: types.FunctionType, apidoc: dict[str, Any]) -> types.FunctionType:
    """A new function object running ``view``'s own code (no call in between), with its attributes, and
    ``apidoc`` as its documentation; ``view`` itself is left as it was (another route may use it)."""
    copy = types.FunctionType(view.__code__, view.__globals__, view.__name__, view.__defaults__, view.__closure__)
    functools.update_wrapper(copy, view)
    copy.__kwdefaults__ = view.__kwdefaults__
    copy._apidoc = apidoc  # type: ignore[attr-defined]
    return copy
