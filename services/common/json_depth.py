"""JSON bodies nested deeper than ``MAX_JSON_DEPTH`` are refused with 400 before anything parses them.

Python's json parser recurses once per level: a body of 100,000 ``[`` (100 kB, well under the body
limit) raised RecursionError inside the request parsing, a 500. No body of the services' APIs
nests more than a few levels (a CSV row error, a counterparty), so 32 leaves room and refuses
the attack. The check drops the strings, then sums +1 per opening and -1 per closing bracket, all
in C (bytes.split, bytes.translate, itertools.accumulate): a posting's body takes microseconds, the
worst megabyte (a million quotes) 0.3 s, where a Python loop over it took seconds.
"""

from __future__ import annotations

from array import array
from itertools import accumulate

from services.common.errors import BadRequest

MAX_JSON_DEPTH = 32
"""Levels of arrays and objects a JSON body may nest."""

_BRACKETS = b"[{]}"
_STEPS = bytes.maketrans(_BRACKETS, b"\x01\x01\xff\xff")  # as signed bytes: +1, +1, -1, -1
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in ``body`` (malformed JSON: as far as it goes)."""
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")  # pairs left to right, as JSON reads them
    # Once the escaped quotes are gone, every other quote opens a string: the even pieces are outside.
    outside = b"".join(unescaped.split(b'"')[::2])
    steps = outside.translate(_STEPS, _NOT_BRACKETS)
    return max(accumulate(array("b", steps)), default=0)


def refuse_deep_json(body: bytes) -> None:
    if json_depth(body) > MAX_JSON_DEPTH:
        raise BadRequest(
            f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels; nothing was stored",
            errors={"_body": [f"must nest at most {MAX_JSON_DEPTH} levels of arrays and objects"]},
        )
