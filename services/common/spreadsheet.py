"""Every XLSX the project writes: one writer, typed cells, and no text ever read as a formula.

openpyxl stores a text starting with ``=`` as a formula; here every text cell is typed as a string,
so a municipality's description ``=HYPERLINK(...)`` is shown as those characters and never runs.
Numbers, dates and times are written as what they are, so a spreadsheet sums and sorts them:
amounts as euros (``Decimal``, never a float) in a euro format, dates as dates.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

EURO_FORMAT = '"€" #,##0.00;"€" -#,##0.00'
DATE_FORMAT = "yyyy-mm-dd"
TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
MAX_TITLE = 31
"""Excel's longest sheet name."""


def xlsx_bytes(
    title: str, header: Sequence[str], rows: Iterable[Sequence[Any]], formats: Mapping[str, str] | None = None
) -> bytes:
    """One sheet: a bold header, then the rows; ``formats`` gives a column's number format by its name."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title[:MAX_TITLE])
    bold = Font(bold=True)
    sheet.append([_text(sheet, name, font=bold) for name in header])
    column_formats = [(formats or {}).get(name) for name in header]
    for row in rows:
        sheet.append([_cell(sheet, value, fmt) for value, fmt in zip(row, column_formats, strict=True)])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _text(sheet: Any, text: str, font: Font | None = None) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=text)
    cell.data_type = "s"  # openpyxl would store a leading "=" as a formula
    if font is not None:
        cell.font = font
    return cell


def _cell(sheet: Any, value: Any, number_format: str | None) -> Any:
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError("floats are not written: money is integer cents or Decimal euros")
    if isinstance(value, bool | int | Decimal | date | datetime):
        cell = WriteOnlyCell(sheet, value=value)
        if isinstance(value, datetime):
            cell.number_format = number_format or TIME_FORMAT
        elif isinstance(value, date):
            cell.number_format = number_format or DATE_FORMAT
        elif number_format is not None:
            cell.number_format = number_format
        return cell
    return _text(sheet, str(value))
