"""A JSON answer's bytes exactly as Flask's ``jsonify`` writes them, made by orjson.

The posting's 201 went through flask-smorest's schema dump and Flask's JSON provider (the standard library's
encoder with sorted keys): ~6 % of a posting's server time in a py-spy of bench row 1 (issue 17, fourteenth
round), for five plain values. Here orjson writes them, and anything whose bytes could differ from Flask's
takes Flask's own way: a value that is not a text, an integer, a boolean, null, or a list or a mapping (its keys
texts) of those (a float, a date, a UUID object, a tuple: Flask writes those its own way), an integer beyond
64 bits, a text outside ASCII or with a DEL (Flask escapes them). Lists and mappings were added for the
balance's answer (its offsets, its spending by category; thirty-second round). Sorted keys, no spaces and the
final newline are Flask's (``DefaultJSONProvider``, not in debug mode). tests/foundation/test_json_answer.py
holds the two equal, byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import orjson
from flask import Flask, Response, current_app
from flask.json.provider import DefaultJSONProvider

from services.common.context_local import current

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
_PLAIN = (str, int, bool, type(None))


def json_answer(body: Mapping[str, Any], status: int) -> Response:
    """``body`` (a mapping of texts, integers, booleans, nulls, and lists and mappings of them) as the JSON
    response ``status``."""
    app = current(current_app)
    data = answer_bytes(app, body)
    if data is None:
        response = cast(Response, app.json.response(body))
        response.status_code = status
        return response
    answer: Response = app.response_class(data, status=status, mimetype=DefaultJSONProvider.mimetype)
    return answer


def answer_bytes(app: Flask, body: Mapping[str, Any]) -> bytes | None:
    """The bytes ``json_answer`` writes by orjson for ``body``; None where Flask's provider must write them."""
    return _plain_bytes(body) if _writes_as_orjson(app, app.json) else None


def _writes_as_orjson(app: Flask, provider: Any) -> bool:
    """Flask's own provider with its defaults: sorted keys, ASCII, compact (not in debug mode)."""
    if type(provider) is not DefaultJSONProvider or not (provider.sort_keys and provider.ensure_ascii):
        return False
    # DefaultJSONProvider.response indents when compact is False, or None in debug mode
    return provider.compact is True or (provider.compact is None and not app.debug)


def _plain_bytes(body: Mapping[str, Any]) -> bytes | None:
    if type(body) is not dict or not _plain(body):
        return None
    try:
        data = orjson.dumps(body, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a key that is no text
        return None
    # Flask escapes every character outside ASCII and DEL too (json's ESCAPE_ASCII); orjson writes them as they are
    return data if data.isascii() and b"\x7f" not in data else None


def _plain(value: Any) -> bool:
    """Texts, integers, booleans and nulls, in lists and in mappings whose keys are texts (exactly these types:
    a subclass may be written otherwise by the one and the other)."""
    kind = type(value)
    if kind is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    if kind is list:
        return all(_plain(item) for item in value)
    return kind in _PLAIN
