"""How a spreadsheet reads a CSV, for the tests of formula injection (issue 16)."""

from __future__ import annotations

import csv
import io
import re

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
"""OWASP's list (CSV injection): a cell starting with one of these is a formula in Excel or LibreOffice."""
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def formula_cells(text: str) -> list[str]:
    """The cells a spreadsheet would take as formulas, read as Excel reads a file: split on ``,``, on ``;``
    (Dutch Excel: quotes count only right after a ``;``) and on tabs. A cell that is a plain number
    (``-1500``, ``-5.00``) is a number, not a formula."""
    found = []
    for delimiter in (",", ";", "\t"):
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            found += [cell for cell in row if cell.startswith(DANGEROUS) and NUMBER.fullmatch(cell) is None]
    return found
