"""A JSON request body's check: marshmallow's values at a fraction of the cost, for the posting route.

webargs reads a body with ``json.loads`` and loads it through the route's marshmallow schema: ~6 % of
a posting's CPU, the largest single piece left on the write path (bench/README.md, twenty-fourth round).
Where a schema says nothing its JSON Schema (``contracts.jsonschema``, compiled once with jsonschema-rs)
does not say as strictly (``checkable``), the body is checked against that JSON Schema, and a body that
passes becomes the values marshmallow's load would give (the same fields in the same order, a ``date``
from its ISO text). A body it does not pass is read and loaded by webargs as before, so every refusal
and its 422 is marshmallow's own: the check can only take the fast way for what marshmallow accepts, and
tests/foundation/test_body_check.py holds both to the same values over generated bodies. The same way as
the consumers' message check (contracts/message_check.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

import jsonschema_rs
from flask import Request
from marshmallow import EXCLUDE, INCLUDE, RAISE, Schema, fields, validate
from marshmallow.utils import missing
from webargs.core import _UNKNOWN_DEFAULT_PARAM
from webargs.flaskparser import FlaskParser, is_json_request

from contracts.events.fields import PlainText
from contracts.jsonschema import schema_to_jsonschema
from contracts.message_check import plain_object
from contracts.text import MULTI_LINE_TEXT_PATTERN, SINGLE_LINE_TEXT_PATTERN
from services.common.header_check import HeaderCheck, checkable_headers, loads_by_its_fields

Plan = dict[str, Any]
"""A checkable schema's fields in its order: each ``None`` (the JSON value as it is), ``date`` (from its
ISO text) or the plan of a nested schema."""


class BodyCheck:
    """The fast check of one checkable schema (``checkable``): ``load`` gives marshmallow's values, or
    None when the body is not one the JSON Schema passes (webargs then loads it as before)."""

    def __init__(self, plan: Plan, is_valid: Callable[[Any], bool]):
        self._plan = plan
        self._is_valid = is_valid

    def load(self, body: bytes) -> dict[str, Any] | None:
        # orjson reads UTF-8 only and refuses a BOM, NaN and lone surrogates, where json.loads would have
        # refused or the schema would; it reads 1.0 and integers beyond 64 bits as floats, which
        # ``plain_json`` leaves to marshmallow (JSON Schema's "integer" takes 1.0, a strict Integer does not).
        value = plain_object(body)
        if value is None or not self._is_valid(value):
            return None
        return _values(value, self._plan)


def _values(body: dict[str, Any], plan: Plan) -> dict[str, Any]:
    values = {}
    for name, step in plan.items():
        value = body[name]
        if step is date:
            value = date.fromisoformat(value)
        elif step is not None:
            value = _values(value, step)
        values[name] = value
    return values


def checkable(schema: Schema) -> BodyCheck | None:
    """The fast check of ``schema``, or None when its JSON Schema would not refuse all it refuses.

    Only what is known to translate exactly: a schema refusing unknown fields, without hooks, whose
    fields are all required and not nullable, each a plain ``String``, a strict ``Integer``, an ISO
    ``Date`` or a ``Nested`` checkable schema, with only ``Length``, ``Range``, ``OneOf`` and the text rule
    as validators, each of which must be found in the JSON Schema as the same keyword and value."""
    document = schema_to_jsonschema(schema)
    plan = _plan(schema, document)
    if plan is None:
        return None
    validator = jsonschema_rs.validator_for(document, validate_formats=True, ignore_unknown_formats=False)
    return BodyCheck(plan, validator.is_valid)


def _plan(schema: Schema, document: Mapping[str, Any]) -> Plan | None:
    if schema.unknown != RAISE or not loads_by_its_fields(schema):
        return None
    if document.get("type") != "object" or document.get("additionalProperties") is not False:
        return None
    properties = document.get("properties", {})
    if set(document.get("required", ())) != set(schema.load_fields) or set(properties) != set(schema.load_fields):
        return None
    plan: Plan = {}
    for name, field in schema.load_fields.items():
        if field.data_key not in (None, name) or field.attribute not in (None, name):
            return None
        if not field.required or field.allow_none or field.load_default is not missing:
            return None
        step = _step(field, properties[name])
        if step is False:
            return None
        plan[name] = step
    return plan


def _step(field: fields.Field, prop: Mapping[str, Any]) -> Any:
    """The field's step in the plan, or False when the field is not checkable."""
    if isinstance(field, fields.Nested) and type(field) is fields.Nested:
        nested = field.schema
        if field.many or not isinstance(nested, Schema) or field.validators:
            return False
        return _plan(nested, prop) or False
    kind = type(field)
    if kind is fields.String and prop.get("type") == "string" and "format" not in prop:
        step: Any = None
    elif isinstance(field, fields.Integer) and kind is fields.Integer and field.strict and prop["type"] == "integer":
        step = None
    elif (
        isinstance(field, fields.Date)
        and kind is fields.Date
        and field.format in (None, "iso")
        and prop == {**prop, "type": "string", "format": "date"}
    ):
        step = date
    else:
        return False
    if not all(_in_document(validator, prop) for validator in field.validators):
        return False
    if "pattern" in prop and not any(isinstance(v, PlainText) for v in field.validators):
        return False  # a pattern marshmallow does not check (a description's, say): not the same rule
    return step


def _in_document(validator: Any, prop: Mapping[str, Any]) -> bool:
    kind = type(validator)
    if kind is validate.Length:
        return (
            validator.equal is None
            and _same(prop, "minLength", validator.min)
            and _same(prop, "maxLength", validator.max)
        )
    if kind is validate.Range:
        return (
            validator.min_inclusive
            and validator.max_inclusive
            and _same(prop, "minimum", validator.min)
            and _same(prop, "maximum", validator.max)
        )
    if kind is validate.OneOf:
        return prop.get("enum") == list(validator.choices)
    if kind is PlainText:
        return prop.get("pattern") == (MULTI_LINE_TEXT_PATTERN if validator.multi_line else SINGLE_LINE_TEXT_PATTERN)
    return False


def _same(prop: Mapping[str, Any], keyword: str, bound: Any) -> bool:
    """The bound is the keyword's value; no bound, no keyword."""
    return prop.get(keyword) == bound if bound is not None else keyword not in prop


class CheckedBodyParser(FlaskParser):
    """webargs' Flask parser that tries a JSON body's fast check (``checkable``) and a headers schema's
    (``checkable_headers``) first."""

    def __init__(self) -> None:
        super().__init__()
        self._checks: dict[tuple[str, int], tuple[Schema, Any]] = {}
        """Each schema's check by location and identity: the Blueprint makes one schema instance per route
        (services/common/blueprint.py), kept alive here with its check so that its id is never another schema's."""
        self.fast_loads = 0
        """Bodies loaded by the fast check (the tests read it: the hot route must take it)."""
        self.fast_header_loads = 0
        """Headers loaded by their fast check (services/common/header_check.py)."""

    def parse(self, argmap: Any, req: Request | None = None, **kwargs: Any) -> Any:
        if kwargs.get("location") == "headers" and isinstance(argmap, Schema) and self._headers_excluded(kwargs):
            header_check = self._header_check(argmap)
            if header_check is not None:
                request = req if req is not None else self.get_default_request()
                header_values = header_check.load(request.headers)
                if header_values is not None:
                    self.fast_header_loads += 1
                    return header_values
        if kwargs.get("location") == "json" and isinstance(argmap, Schema) and kwargs.get("validate") is None:
            # EXCLUDE or INCLUDE passed here would overrule the schema's RAISE, which the check relies on.
            check = self._check(argmap) if kwargs.get("unknown") not in (EXCLUDE, INCLUDE) else None
            request = req if req is not None else self.get_default_request()
            if check is not None and is_json_request(request):
                values = check.load(request.get_data(cache=True))
                if values is not None:
                    self.fast_loads += 1
                    return values
        return super().parse(argmap, req, **kwargs)

    def _headers_excluded(self, kwargs: Mapping[str, Any]) -> bool:
        """Whether webargs would load the headers with ``unknown=EXCLUDE`` (its precedence: the argument, the
        parser's own setting, the location's default), with no other validation and no pre-load hook of its own."""
        unknown = kwargs.get("unknown", _UNKNOWN_DEFAULT_PARAM)
        if unknown == _UNKNOWN_DEFAULT_PARAM:
            by_location = self.DEFAULT_UNKNOWN_BY_LOCATION.get("headers")
            unknown = self.unknown if self.unknown != _UNKNOWN_DEFAULT_PARAM else by_location
        return unknown == EXCLUDE and kwargs.get("validate") is None and type(self).pre_load is FlaskParser.pre_load

    def _header_check(self, schema: Schema) -> HeaderCheck | None:
        found: HeaderCheck | None = self._remembered("headers", schema, checkable_headers)
        return found

    def _check(self, schema: Schema) -> BodyCheck | None:
        found: BodyCheck | None = self._remembered("json", schema, checkable)
        return found

    def _remembered(self, location: str, schema: Schema, make: Callable[[Schema], Any]) -> Any:
        found = self._checks.get((location, id(schema)))
        if found is None:
            found = self._checks[(location, id(schema))] = (schema, make(schema))
        return found[1]
