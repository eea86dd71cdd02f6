"""The one rule for text: what characters a text field of any request, import line or event may hold.

Plain ``re``, no marshmallow, so a domain, an import reader and the payload schemas use the same rule
(``contracts/events/fields.py`` builds the marshmallow field and the JSON Schema pattern from it).

- **Never**, in any field: NUL and every other C0 control character (U+0000-U+001F), DEL (U+007F),
  the C1 controls (U+0080-U+009F, such as NEL U+0085) and lone surrogates (U+D800-U+DFFF, which
  UTF-8 cannot encode). PostgreSQL text cannot hold a NUL, an event the store keeps but the view
  refuses is money the view does not count, and control characters rewrite terminals, logs and the
  CSV files auditors open.
- **Multi-line fields** (free prose: ``reason``, ``description``) may hold TAB, LF and CR: people paste
  paragraphs there, and payments and bridge always took them in their reasons, so events already
  published with them stay valid. The event contracts use this rule for every text field.
- **Single-line fields** (names, references, counterparties, topics) take none of the three: they
  end up in one CSV cell, one log line, one ``Content-Disposition``. Requests and imports check it.
"""

from __future__ import annotations

import re

_NEVER = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff"
_LINE_BREAKS = "\t\n\r"

MULTI_LINE_FORBIDDEN = re.compile(f"[{_NEVER}]")
SINGLE_LINE_FORBIDDEN = re.compile(f"[{_NEVER}{_LINE_BREAKS}]")

MULTI_LINE_TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"
"""The contracts' JSON Schema pattern of a text field: ECMA-262, Python ``re`` and Rust's regex read it
alike (``$`` is the end of the text in JSON Schema and in jsonschema-rs, the consumers' fast check).
Lone surrogates are left out of it: ECMA-262 without the ``u`` flag would see the halves of every
paired surrogate (an emoji); the consumers' full check (marshmallow) refuses them."""

SINGLE_LINE_TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
"""The same for a single-line field (requests only; the OpenAPI documents publish it)."""

MULTI_LINE_REASON = "must not contain control characters (such as NUL, BEL, ESC or NEL) nor lone surrogates"
SINGLE_LINE_REASON = (
    "must be one line without control characters (such as NUL, TAB, LF, ESC or NEL) nor lone surrogates"
)


def text_problem(value: str, *, multi_line: bool = False) -> str | None:
    """Why ``value`` is not acceptable text (the reason, in words), or None when it is."""
    if multi_line:
        return MULTI_LINE_REASON if MULTI_LINE_FORBIDDEN.search(value) else None
    return SINGLE_LINE_REASON if SINGLE_LINE_FORBIDDEN.search(value) else None
