"""The fast load of a headers schema (services/common/header_check.py, through ``CheckedBodyParser``) against
webargs' own: the same values for the same headers, and where webargs refuses them the fast load passes
nothing, so the 422 stays webargs' and marshmallow's own."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, pre_load, validate, validates
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

from services.common.body_check import CheckedBodyParser
from services.common.header_check import checkable_headers
from services.common.idempotency import HEADER, key_field
from services.ledger.adapters.http.schemas import IdempotencyHeaders

APP = Flask(__name__)


class Several(Schema):
    """Optional with a default, optional without one, required, renamed by data_key, with a Length rule."""

    label = fields.String(data_key="X-Label", load_default="none", validate=validate.Length(min=2, max=5))
    note = fields.String(data_key="X-Note")
    tenant = fields.String(data_key="X-Tenant", required=True, validate=validate.OneOf(["a", "bb"]))
    plain = fields.String()


CHECKABLE = [IdempotencyHeaders(), Several()]

# Header values as they arrive: Latin-1 text without CR or LF, around the rules' edges.
VALUES = st.one_of(
    st.none(),  # the header absent
    st.text(st.characters(min_codepoint=0, max_codepoint=255, blacklist_characters="\r\n"), max_size=8),
    st.sampled_from(["a", "bb", "", " ", "\x85", "\x00", "x" * 200, "x" * 201, "k\x7f", "caf\xe9"]),
    st.integers(min_value=195, max_value=205).map(lambda n: "k" * n),
)


def outcome(parser: FlaskParser, schema: Schema, headers: dict[str, str], **kwargs: Any) -> Any:
    with APP.test_request_context("/", headers=headers):
        try:
            return ("loaded", parser.parse(schema, location="headers", **kwargs))
        except HTTPException as refused:  # webargs' own 422, its messages in the exception's data
            return ("refused", refused.code, getattr(refused, "data", {}).get("messages"))


@pytest.mark.parametrize("schema", CHECKABLE, ids=lambda s: type(s).__name__)
@given(data=st.data())
@settings(max_examples=300, deadline=None)
def test_the_fast_load_gives_webargs_values_and_leaves_every_refusal_to_it(schema: Schema, data: Any) -> None:
    names = [field.data_key or name for name, field in schema.load_fields.items()] + ["Other", "x-label"]
    chosen = {name: data.draw(VALUES, label=name) for name in names}
    headers = {name: value for name, value in chosen.items() if value is not None}
    checked = CheckedBodyParser()
    fast, slow = outcome(checked, schema, headers), outcome(FlaskParser(), schema, headers)
    assert fast == slow
    if slow[0] == "loaded":
        assert type(fast[1]) is dict and list(fast[1]) == list(slow[1])  # the same fields, in the same order
        assert checked.fast_header_loads == 1, "loaded by webargs where the fast load could have"
    else:
        assert checked.fast_header_loads == 0


def test_the_posting_key_header_by_name_in_any_case_and_refused_with_a_control_character() -> None:
    checked = CheckedBodyParser()
    schema = IdempotencyHeaders()
    assert outcome(checked, schema, {"idempotency-KEY": "k-1"}) == ("loaded", {"idempotency_key": "k-1"})
    assert outcome(checked, schema, {}) == ("loaded", {"idempotency_key": None})
    refused = outcome(checked, schema, {HEADER: "k\x85"})
    assert refused[:2] == ("refused", 422) and refused == outcome(FlaskParser(), schema, {HEADER: "k\x85"})
    assert checked.fast_header_loads == 2


class WithHook(Schema):
    key = key_field("x")

    @pre_load
    def _strip(self, data: Any, **_kwargs: Any) -> Any:
        return data


class WithFieldValidator(Schema):
    key = key_field("x")

    @validates("key")
    def _check(self, value: Any, **_kwargs: Any) -> None:
        raise ValidationError("never")


class WithList(Schema):
    keys = fields.List(fields.String(), data_key=HEADER)


class WithInteger(Schema):
    count = fields.Integer(data_key="X-Count")


class Trimmed(fields.String):
    pass


class WithSubclass(Schema):
    key = Trimmed(data_key=HEADER)


class WithAttribute(Schema):
    key = fields.String(data_key=HEADER, attribute="other")


class Ordered(Schema):
    dict_class = OrderedDict
    key = key_field("x")


@pytest.mark.parametrize(
    "schema",
    [WithHook(), WithFieldValidator(), WithList(), WithInteger(), WithSubclass(), WithAttribute(), Ordered(),
     IdempotencyHeaders(many=True), IdempotencyHeaders(partial=True), Schema.from_dict({"a.b": fields.String()})()],
    ids=lambda s: type(s).__name__,
)
def test_a_schema_that_does_more_than_its_fields_stays_with_webargs(schema: Schema) -> None:
    assert checkable_headers(schema) is None


@pytest.mark.parametrize(
    ("kwargs", "fast"),
    [({}, True), ({"unknown": EXCLUDE}, True), ({"unknown": RAISE}, False), ({"unknown": None}, False),
     ({"validate": lambda _values: True}, False)],
    ids=["default", "exclude", "raise", "schema-own", "validate"],
)
def test_only_the_exclude_load_without_more_validation_takes_the_fast_way(kwargs: dict[str, Any], fast: bool) -> None:
    checked = CheckedBodyParser()
    headers = {HEADER: "k-1"}
    assert outcome(checked, IdempotencyHeaders(), headers, **kwargs) == outcome(
        FlaskParser(), IdempotencyHeaders(), headers, **kwargs
    )
    assert checked.fast_header_loads == int(fast)
