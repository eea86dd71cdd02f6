"""Which separator a CSV import uses: ``,`` or ``;`` (what Dutch spreadsheets write), per file.

One rule for every import, decided on the first line that holds data (the header, or the annex's
first row when it has none): the first ``;`` or ``,`` on that line is the separator. The first cell
of each import (a column name such as ``grant_year``, or a CBS code such as ``GM0363``) never holds
either character, so the first one is the boundary of that cell. A line with neither is read with
``,`` (and is then refused for its number of fields, naming the line). Not ``csv.Sniffer``: it
guesses from character counts, and a Dutch amount (``725.000,00``) puts commas in a ``;`` file.
"""

from __future__ import annotations

SEPARATORS = (",", ";")

QUOTE_HINT = "; with , as separator an amount with a decimal comma (725.000,00) must be quoted, or use ; instead"
"""Added to a too-many-fields error of a ``,`` file: the usual cause is an unquoted Dutch amount."""


def separator_of(first_line: str) -> str:
    for character in first_line:
        if character in SEPARATORS:
            return character
    return ","
