"""The identifiers and years every contract and service shares, written once.

Plain ``re`` and ints, no marshmallow, so a domain can use them as they are; the payload schemas
(``contracts/events/fields.py``) publish the same patterns and range in the JSON Schemas.

Every pattern is matched whole (``fullmatch``) and names its digits ``[0-9]``: with ``re.match`` a
``$`` also matches before a trailing newline (``"GM0363\\n"`` passed), and ``\\d`` takes every
script's digits (``int`` reads them). The ``^`` and ``$`` stay in the patterns for the JSON Schemas,
where ``$`` is the end of the text; ``fullmatch`` makes them redundant here, not wrong.
"""

from __future__ import annotations

import re

CBS_CODE_PATTERN = r"^GM[0-9]{4}$"
CBS_CODE = re.compile(CBS_CODE_PATTERN)
CBS_CODE_REASON = "must be a CBS municipality code: GM and 4 digits"

ORG_ID_PATTERN = r"^[A-Z]{2}-[A-Z0-9]{2,10}-[A-Za-z0-9._-]{1,60}$"
ORG_ID = re.compile(ORG_ID_PATTERN)
ORG_ID_REASON = "must be an organisation identifier such as NL-KVK-12345678"

UTC_TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"
"""``recorded_at``, ``occurred_at`` of the envelope and the seal's times: microseconds, UTC."""
SHA256_HEX_PATTERN = r"^[0-9a-f]{64}$"

FIRST_YEAR = 2019
"""The first grant year any topic carries (the bridging subsidy's account period starts in it)."""
LAST_YEAR = 2100


def is_cbs_code(value: object) -> bool:
    return isinstance(value, str) and CBS_CODE.fullmatch(value) is not None


def is_org_id(value: object) -> bool:
    return isinstance(value, str) and ORG_ID.fullmatch(value) is not None


def is_year(value: object) -> bool:
    """A whole year in the published range; booleans are not years."""
    return type(value) is int and FIRST_YEAR <= value <= LAST_YEAR


_YEAR_TEXT = re.compile(r"[0-9]{4}")


def year_from_text(text: str) -> int | None:
    """A year written in a setting or a file (four ASCII digits in the published range), else None.

    ``str.isdigit`` would let other scripts' digits through (``int`` reads them), hence the pattern.
    """
    year = int(text) if _YEAR_TEXT.fullmatch(text) else None
    return year if is_year(year) else None
