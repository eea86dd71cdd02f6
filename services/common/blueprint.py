"""The services' flask-smorest Blueprint: one schema instance per route, built once.

flask-smorest hands a schema *class* to webargs, which then builds a new instance (and new
instances of its nested schemas) for every request: 7 % of a POST's CPU in the write benchmark
(bench/README.md). A marshmallow schema holds no per-load state, so one instance serves all
requests and threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

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


class Blueprint(flask_smorest.Blueprint):
    def arguments(self, schema: type[Schema] | Schema, *args: Any, **kwargs: Any) -> Any:
        if isinstance(schema, type):
            schema = schema()
        return super().arguments(schema, *args, **kwargs)

    def route(self, rule: str, *, parameters: Any = None, tags: Any = None, **options: Any) -> Callable[[F], F]:
        """A write route (POST, PUT, PATCH, DELETE) documents the 400 and 429 every write may get."""
        register: Callable[[F], F] = super().route(rule, parameters=parameters, tags=tags, **options)
        if not WRITE_METHODS & {method.upper() for method in options.get("methods", ())}:
            return register

        def decorate(view: F) -> F:
            for status, description, headers in WRITE_ERRORS:
                view = self.alt_response(status, schema=ServiceErrorSchema, description=description, headers=headers)(
                    view
                )
            return register(view)

        return decorate

    def documented_errors(self, schema: type[Schema], responses: Iterable[tuple[int, str]]) -> Callable[[F], F]:
        """Adds an endpoint's JSON error answers (status, description) to its OpenAPI description."""
        answers = tuple(responses)

        def decorate(view: F) -> F:
            for status, description in answers:
                view = self.alt_response(status, schema=schema, description=description)(view)
            return view

        return decorate
