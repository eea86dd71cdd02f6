"""A headers schema's values read field by field, without webargs' and marshmallow's schema machinery.

The posting's one header argument (``Idempotency-Key``, services/ledger/adapters/http/schemas.py) went
through webargs' location proxy and marshmallow's ``Schema.load`` with its hooks, error store and unknown
handling: 8.4 µs for one optional text, 2.9 % of the GIL's samples of a posting under load (bench/README.md,
twenty-fifth round); 3.7 µs this way. For a schema that uses none of that machinery (``checkable_headers``),
each field's own ``deserialize`` is called on the header's value, as ``Schema.load`` calls it, and gives the
same value or the same refusal.
A refusal is not answered here: the caller then parses with webargs as before, so every 422 is its own.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields
from marshmallow.utils import missing
from werkzeug.datastructures import Headers

HeaderFields = tuple[tuple[str, str, fields.Field], ...]
"""Each field's name in the values, the header it reads, and the field."""


class HeaderCheck:
    """``load`` gives the values ``Schema.load`` gives for the headers, or None where it would refuse them."""

    def __init__(self, header_fields: HeaderFields):
        self._fields = header_fields

    def load(self, headers: Headers) -> dict[str, Any] | None:
        values: dict[str, Any] = {}
        for name, header, field in self._fields:
            try:
                # webargs' proxy of the headers gives ``missing`` for an absent header; the field then
                # gives its load_default, unvalidated, as in marshmallow
                value = field.deserialize(headers.get(header, missing), header)  # a String reads no other field
            except ValidationError:
                return None
            if value is not missing:  # no load_default: marshmallow leaves the field out
                values[name] = value
        return values


def checkable_headers(schema: Schema) -> HeaderCheck | None:
    """The schema's check, or None when ``Schema.load`` would do more than call each field's ``deserialize``:
    a hook of any kind, ``many`` or ``partial``, or a field that is not exactly a ``String`` (a list reads
    every value of a header; a subclass may read more) or that stores its value under another name (or in a
    nested dict: a dotted name), or values in another kind of dict."""
    if not loads_by_its_fields(schema):
        return None
    found = []
    for name, field in schema.load_fields.items():
        if type(field) is not fields.String or field.attribute is not None or "." in name:
            return None
        found.append((name, field.data_key or name, field))
    return HeaderCheck(tuple(found))


def loads_by_its_fields(schema: Schema) -> bool:
    """Whether ``Schema.load`` only loads the schema's fields into a plain dict: no hook of any kind, not ``many``
    or ``partial``, no other dict class (the body's check asks the same of its schemas: body_check.py)."""
    return not (schema.many or schema.partial or schema.dict_class is not dict or any(schema._hooks.values()))
