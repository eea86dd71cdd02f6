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

F = TypeVar("F", bound=Callable[..., Any])


class Blueprint(flask_smorest.Blueprint):
    def arguments(self, schema: type[Schema] | Schema, *args: Any, **kwargs: Any) -> Any:
        if isinstance(schema, type):
            schema = schema()
        return super().arguments(schema, *args, **kwargs)

    def documented_errors(self, schema: type[Schema], responses: Iterable[tuple[int, str]]) -> Callable[[F], F]:
        """Adds an endpoint's JSON error answers (status, description) to its OpenAPI description."""
        answers = tuple(responses)

        def decorate(view: F) -> F:
            for status, description in answers:
                view = self.alt_response(status, schema=schema, description=description)(view)
            return view

        return decorate
