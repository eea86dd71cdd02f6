"""Every CSV the project writes: one writer, so no cell reaches a spreadsheet as a formula.

A municipality chooses the texts of its postings (description, reference, counterparty, a reversal's
reason), and the ministry opens the exports in Excel or LibreOffice, which run a cell starting with
``=``, ``+``, ``-`` or ``@`` (and, after a tab or a carriage return, what follows) as a formula:
``=HYPERLINK(...)`` in a description would run on the reader's machine. OWASP's rule (CSV
injection), applied to every text cell here:

- a text starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a single quote (``'``)
  in front.
- so does every place *inside* a text where a spreadsheet may start a new cell or row: right after
  ``,``, ``;``, a tab or a line break. The file is comma-separated and quoted, but Dutch Excel opens
  a CSV splitting on ``;`` and takes no account of quotes that do not follow a ``;``: there
  ``Flyers;=HYPERLINK(...)`` is a cell ``Flyers`` and a formula.
- so does a double quote in such a place (read with ``;``, ``x;"=1+1`` gives a cell ``=1+1"``), and a
  ``'``, so that the rule can be undone exactly: a reader drops every ``'`` at the start of a text
  cell or right after ``,``, ``;``, a tab or a line break (``unescape_cell``).
- every text is written between double quotes (OWASP; ``csv.QUOTE_NONNUMERIC``), which also keeps a
  carriage return inside its cell.
- numbers (``int`` cents, ``Decimal`` euros, booleans) are not text and are written as they are,
  unquoted: ``-1500`` stays the number -1500. A float is refused: money is never a float.

The columns and the line ends (``\n``) are those of the contracts; only the texts' quoting and
escaping are the writer's.
``tests/foundation/test_csv_output.py`` checks that no module under ``services/`` (nor ``contracts/``,
``bench/``) writes CSV by any other way.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

FORMULA_STARTS = "=+-@\t\r"
"""First characters a spreadsheet takes as the start of a formula (OWASP, CSV injection)."""
CELL_BREAKS = ",;\t\n\r"
"""Where a spreadsheet may start a new cell or row inside a text, with one separator or another."""
ESCAPE = "'"
ESCAPED_STARTS = FORMULA_STARTS + '"' + ESCAPE
"""What gets ``ESCAPE`` in front at the start of a text or right after one of ``CELL_BREAKS``."""
_CELL_START = re.compile(f"(?:^|(?<=[{re.escape(CELL_BREAKS)}]))(?=[{re.escape(ESCAPED_STARTS)}])")
_ESCAPED = re.compile(f"(?:^|(?<=[{re.escape(CELL_BREAKS)}])){ESCAPE}")


def safe_cell(value: Any) -> Any:
    """One cell as the writer gives it to ``csv``: a number as it is, None as an empty text, any other
    value as its text with ``ESCAPE`` wherever a cell could start with one of ``ESCAPED_STARTS``."""
    if value is None:
        return ""
    if isinstance(value, float):
        raise TypeError("floats are not written: money is integer cents or Decimal euros")
    if isinstance(value, int | Decimal):  # bool is an int
        return value
    return _CELL_START.sub(ESCAPE, str(value))


def unescape_cell(text: str) -> str:
    """The original text of a text cell ``safe_cell`` wrote (for readers, and to show the rule loses nothing)."""
    return _ESCAPED.sub("", text)


@dataclass(frozen=True)
class CsvDialect:
    """How cells are separated and how a ``Decimal`` is written; texts are quoted and escaped the same way."""

    delimiter: str = ","
    decimal_comma: bool = False


STANDARD = CsvDialect()
"""The contracts' CSV: comma-separated, a decimal point (amounts are integer cents there anyway)."""
DUTCH_EXCEL = CsvDialect(delimiter=";", decimal_comma=True)
"""What Excel with Dutch settings opens by double-click: ``;`` between cells and ``12,50`` as a number."""


class _CommaDecimal(Decimal):
    """A Decimal the csv module writes unquoted (it is a number) with a decimal comma."""

    def __str__(self) -> str:
        return super().__str__().replace(".", ",")


def _cell(value: Any, dialect: CsvDialect) -> Any:
    cell = safe_cell(value)
    if dialect.decimal_comma and isinstance(cell, Decimal):
        return _CommaDecimal(cell)
    return cell


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]], dialect: CsvDialect = STANDARD) -> str:
    """A whole CSV file: the header, then each row, every cell through ``safe_cell``."""
    out = io.StringIO()
    # Text between double quotes (OWASP), which also keeps a carriage return inside its cell: with the
    # minimal quoting a lone \r is written bare (the line ends are \n) and a reader starts a row there.
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC, delimiter=dialect.delimiter)
    writer.writerow([_cell(name, dialect) for name in header])
    for row in rows:
        writer.writerow([_cell(value, dialect) for value in row])
    return out.getvalue()


def csv_text_of_mappings(
    columns: Sequence[str], rows: Iterable[Mapping[str, Any]], dialect: CsvDialect = STANDARD
) -> str:
    """A CSV of ``columns`` from rows given as mappings: a column a row lacks is empty, other keys are left out."""
    return csv_text(columns, ([row.get(column) for column in columns] for row in rows), dialect)
