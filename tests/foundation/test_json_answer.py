"""``json_answer`` writes the bytes Flask's ``jsonify`` writes, or lets Flask write them (issue 17).

The posting's 201 is published in the API documents: a client comparing bytes, or a hash of the body, must see
no change from the schema-and-jsonify way it was written before."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, jsonify
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common import json_answer as module
from services.common.json_answer import json_answer

PLAIN = st.one_of(
    st.text(), st.integers(min_value=-(2**70), max_value=2**70), st.booleans(), st.none(),
)
ANY = st.one_of(PLAIN, st.floats(allow_nan=False), st.lists(st.integers(), max_size=3))
NESTED = st.recursive(
    ANY,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
        st.dictionaries(st.integers(), inner, min_size=1, max_size=2),  # keys Flask writes as texts
        st.tuples(inner),
    ),
    max_leaves=12,
)


def _flask_bytes(app: Flask, body: dict[str, Any], status: int) -> tuple[bytes, int, str]:
    with app.app_context():
        response = jsonify(body)
        response.status_code = status
        return response.get_data(), response.status_code, response.mimetype or ""


def _ours(app: Flask, body: dict[str, Any], status: int) -> tuple[bytes, int, str]:
    with app.app_context():
        response = json_answer(body, status)
        return response.get_data(), response.status_code, response.mimetype or ""


@pytest.fixture(scope="module")
def app() -> Flask:
    return Flask(__name__)


@settings(max_examples=1000, deadline=None)
@given(st.dictionaries(st.text(max_size=8), ANY, max_size=6), st.sampled_from([200, 201]))
def test_any_flat_answer_has_flasks_bytes(app: Flask, body: dict[str, Any], status: int) -> None:
    assert _ours(app, body, status) == _flask_bytes(app, body, status)


@settings(max_examples=1000, deadline=None)
@given(st.dictionaries(st.text(max_size=8), NESTED, max_size=6))
def test_any_nested_answer_has_flasks_bytes(app: Flask, body: dict[str, Any]) -> None:
    assert _ours(app, body, 200) == _flask_bytes(app, body, 200)


def test_a_balance_answer_is_written_by_orjson_with_flasks_bytes(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    body = {
        "municipality_code": "GM0363", "year": 2024, "as_of": None, "known_at": None, "spent_cents": 42175000,
        "spent_by_category": {"promotion": 3387500, "library_funding": 36250000},
        "offsets": [{"topic": "ido.grants.v1", "partition": 1, "next_offset": 4},
                    {"topic": "ido.bridge.v1", "partition": 0, "next_offset": 6}],
        "recorded_after_close_event_ids": [],
    }
    expected = _flask_bytes(app, body, 200)
    flask_way = app.json.response
    calls: list[Any] = []
    monkeypatch.setattr(app.json, "response", lambda *a, **k: calls.append(a) or flask_way(*a, **k))
    assert _ours(app, body, 200) == expected
    assert calls == []


def test_a_posting_answer_is_written_by_orjson_with_flasks_bytes(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    body = {
        "grant_year": 2024,
        "municipality_code": "GM0363",
        "event_id": "0b0c8f8e-7a53-4a8e-9d0b-1f1d8e0d6c11",
        "expenditure_id": "5d2f3c3e-1c55-5b55-9a7e-3c6f7e1f2a10",
        "stream_id": "expenditure-5d2f3c3e-1c55-5b55-9a7e-3c6f7e1f2a10",
    }
    expected = _flask_bytes(app, body, 201)
    assert expected[1:] == (201, "application/json")
    flask_way = app.json.response
    calls: list[Any] = []
    monkeypatch.setattr(app.json, "response", lambda *a, **k: calls.append(a) or flask_way(*a, **k))
    assert _ours(app, body, 201) == expected
    assert calls == []  # orjson wrote it: the fast way is taken, not only its fallback


@pytest.mark.parametrize(
    "value", ["Zoë", "\x7f", 2**64, 1.5, {"nested": 1.5}, [[1, "Zoë"]], {1: "a"}, (1,), [True, {"b": 2**64}]],
    ids=["non-ascii", "delete", "beyond-64-bits", "float", "nested-float", "nested-non-ascii", "int-key", "tuple",
         "nested-beyond-64-bits"],
)
def test_what_orjson_could_write_otherwise_is_left_to_flask(value: Any) -> None:
    assert module._plain_bytes({"a": value}) is None
    assert module._plain_bytes({"a": "plain"}) == b'{"a":"plain"}\n'


def test_in_debug_mode_flask_indents_and_so_does_the_answer() -> None:
    debug = Flask(__name__)
    debug.debug = True
    body = {"b": 1, "a": "x"}
    assert _ours(debug, body, 201) == _flask_bytes(debug, body, 201)
    assert b"\n  " in _ours(debug, body, 201)[0]
