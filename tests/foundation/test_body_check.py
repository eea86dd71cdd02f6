"""The fast check of a JSON body (services/common/body_check.py) against marshmallow's load.

What the fast check passes, marshmallow must accept with the same values (and types); what marshmallow
refuses, the fast check must not pass, so its 422 stays marshmallow's own. Checked on the posting's
schema over generated bodies near its edges, and on the bodies that separate JSON Schema from
marshmallow (1.0 for an integer, true for 1, a day without its leading zero, a lone surrogate, ...).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from contracts.events.fields import CBS_CODE, line
from services.common.body_check import BodyCheck, checkable
from services.common.idempotency import key_field
from services.ledger.adapters.http.schemas import CounterpartyIn, ExpenditureIn, Strict
from tests.ledger.conftest import expenditure

SCHEMA = ExpenditureIn()
REFUSED = object()


def raw(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def marshmallow_load(body: bytes) -> Any:
    """What webargs made of the body before: json.loads, then the schema's load (REFUSED on a refusal)."""
    try:
        return SCHEMA.load(json.loads(body.decode("utf-8")))
    except (ValueError, ValidationError):  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        return REFUSED


def same_values(left: Any, right: Any) -> bool:
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(same_values(left[key], right[key]) for key in left)
    return bool(left == right)


@pytest.fixture(scope="module")
def check() -> BodyCheck:
    found = checkable(SCHEMA)
    assert found is not None, "the posting's schema must take the fast check: it is the write path's"
    return found


def assert_agrees(check: BodyCheck, body: bytes) -> Any:
    fast, slow = check.load(body), marshmallow_load(body)
    if fast is not None:
        assert slow is not REFUSED, f"the fast check passed a body marshmallow refuses: {body!r}"
        assert same_values(fast, slow), (fast, slow)
    return fast


def test_a_valid_posting_takes_the_fast_check_with_marshmallows_values(check: BodyCheck) -> None:
    body = raw(expenditure(description="two\tlines\nof prose"))
    values = assert_agrees(check, body)
    assert values is not None
    assert values["booked_on"] == date(2024, 3, 15)
    assert list(values) == list(SCHEMA.load_fields)


@pytest.mark.parametrize(
    "body",
    [
        raw(expenditure(amount_cents=1.0)),
        raw(expenditure(grant_year=True)),
        raw(expenditure(amount_cents=2**64)),
        raw(expenditure(amount_cents=0)),
        raw(expenditure(amount_cents=10**12 + 1)),
        raw(expenditure(booked_on="2024-3-5")),
        raw(expenditure(booked_on="2024-02-30")),
        raw(expenditure(booked_on="2024-03-05\n")),
        raw(expenditure(category="Promotion")),
        raw(expenditure(reference="two\tcells")),
        raw(expenditure(reference="x\u0085y")),
        raw(expenditure(reference="")),
        raw(expenditure(reference="r" * 101)),
        raw(expenditure(extra=1)),
        raw(expenditure(counterparty={"id": "x", "name": "y", "extra": 1})),
        raw(expenditure(counterparty={"id": "x"})),
        raw(expenditure(counterparty=None)),
        raw(expenditure(description=None)),
        raw({k: v for k, v in expenditure().items() if k != "reference"}),
        raw(expenditure()).replace(b'"INV-2024-001"', b'"INV\\ud800"'),
        raw(expenditure()).replace(b'"INV-2024-001"', b'"INV\\udc00x"'),
        raw(expenditure()).replace(b"125000", b"NaN"),
        raw(expenditure()).replace(b"125000", b"1.25e5"),
        b"\xef\xbb\xbf" + raw(expenditure()),
        raw(expenditure()).decode().encode("utf-16"),
        raw([expenditure()]),
        b"",
    ],
)
def test_what_marshmallow_refuses_the_fast_check_does_not_pass(check: BodyCheck, body: bytes) -> None:
    assert marshmallow_load(body) is REFUSED, "the case must be one marshmallow refuses"
    assert check.load(body) is None


def test_what_both_read_alike_the_fast_check_passes_alike(check: BodyCheck) -> None:
    emoji = raw(expenditure(reference="INV \U0001f600"))
    duplicate = raw(expenditure()).replace(b'{"grant_year":2024', b'{"grant_year":2023,"grant_year":2024')
    assert assert_agrees(check, emoji) is None  # an escaped surrogate, even of a pair: marshmallow's way
    assert assert_agrees(check, duplicate) is not None  # the last of duplicate keys, as json.loads reads them
    assert assert_agrees(check, raw(expenditure(booked_on="20240315"))) is None  # marshmallow's ISO 8601 reading


texts = st.one_of(
    st.text(max_size=8),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=95, max_size=105),
    st.sampled_from(["", "x", "a\tb", "a\nb", "x\x7f", "x\x9f", "x\xa0", "\u2028", "promotion", "2024-03-15"]),
)
values = st.one_of(
    texts,
    st.integers(min_value=-2, max_value=2**65),
    st.sampled_from([0, 1, 2018, 2019, 2024, 2100, 2101, 10**12, 10**12 + 1, True, False, None, 1.0, 0.5]),
    st.sampled_from(["2024-03-15", "2024-02-29", "2023-02-29", "2024-13-01", "2024-3-15", "2024-03-15T00:00:00"]),
    st.sampled_from(["library_funding", "promotion", "network_orchestration"]),
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    body: dict[str, Any] = expenditure()
    for name in draw(st.lists(st.sampled_from([*body, "counterparty.id", "counterparty.name", "extra"]), max_size=3)):
        change = draw(st.sampled_from(["set", "drop"]))
        if name.startswith("counterparty."):
            inner = dict(body["counterparty"]) if isinstance(body.get("counterparty"), dict) else {}
            key = name.split(".", 1)[1]
            if change == "drop":
                inner.pop(key, None)
            else:
                inner[key] = draw(values)
            body["counterparty"] = inner
        elif change == "drop":
            body.pop(name, None)
        else:
            body[name] = draw(values)
    return json.dumps(body, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies())
def test_over_generated_bodies_what_the_fast_check_passes_marshmallow_loads_to_the_same_values(
    check: BodyCheck, body: bytes
) -> None:
    assert_agrees(check, body)


class Hooked(Strict):
    reference = line(100, required=True)

    @post_load
    def upper(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {key: value.upper() for key, value in data.items()}


class Lenient(Schema):
    class Meta:
        unknown = EXCLUDE

    reference = line(100, required=True)


class Defaulted(Strict):
    reference = line(100, load_default=None)


class WithCode(Strict):
    code = fields.String(required=True, validate=CBS_CODE)


class WithKey(Strict):
    key = key_field("a key")


class WithUuid(Strict):
    id = fields.UUID(required=True)


class Loose(Strict):
    year = fields.Integer(required=True)


class Renamed(Strict):
    reference = line(100, required=True, data_key="ref")


class WithRegexp(Strict):
    reference = fields.String(required=True, validate=validate.Regexp("^[a-z]+$"))


@pytest.mark.parametrize(
    "schema", [Hooked, Lenient, Defaulted, WithCode, WithKey, WithUuid, Loose, Renamed, WithRegexp]
)
def test_a_schema_saying_more_than_its_json_schema_checks_is_left_to_marshmallow(schema: type[Schema]) -> None:
    assert checkable(schema()) is None


def test_a_nested_schema_is_checked_with_its_parent() -> None:
    assert checkable(CounterpartyIn()) is not None
