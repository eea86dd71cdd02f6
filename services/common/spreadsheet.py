"""Every XLSX the project writes or reads: typed cells, no text ever a formula, no float ever money.

openpyxl stores a text starting with ``=`` as a formula; here every text cell is typed as a string,
so a municipality's description ``=HYPERLINK(...)`` is shown as those characters and never runs.
Numbers, dates and times are written as what they are, so a spreadsheet sums and sorts them:
amounts as euros (``Decimal``, never a float) in a euro format, dates as dates.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from openpyxl import Workbook, load_workbook
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


MAX_UNCOMPRESSED_BYTES = 20 * 1024 * 1024
"""An upload's parts unpacked: far above any real import (5,000 rows), far below a zip bomb."""


class SpreadsheetUnreadable(ValueError):
    """Not an XLSX this reader takes; the message says why."""


def read_xlsx_table(data: bytes, max_rows: int) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The first sheet as text: its header (row 1) and each non-empty row with its row number.

    A number is written back as the text it shows: a whole number as digits, a fraction with its exact
    decimals (Excel keeps numbers as binary floats: 1250.5 is read through its shortest decimal form,
    never rounded here, so a fraction of a cent reaches the import's own check and is refused there).
    A date is ISO 8601. The upload is refused before it is unpacked if its parts would exceed
    ``MAX_UNCOMPRESSED_BYTES``, and after ``max_rows`` + 1 rows reading stops.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise SpreadsheetUnreadable("not an XLSX file") from None
    if unpacked > MAX_UNCOMPRESSED_BYTES:
        raise SpreadsheetUnreadable(f"the XLSX unpacks to more than {MAX_UNCOMPRESSED_BYTES // (1024 * 1024)} MB")
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many kinds for a broken file
        raise SpreadsheetUnreadable(f"not a readable XLSX file ({type(error).__name__})") from None
    try:
        sheet = workbook.worksheets[0]
        rows: list[tuple[int, list[str]]] = []
        header: list[str] | None = None
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_as_text(value) for value in values]
            while cells and cells[-1] == "":
                cells.pop()
            if header is None:
                header = [cell.strip() for cell in cells]
                continue
            if not cells:
                continue
            rows.append((number, cells))
            if len(rows) > max_rows:
                break
    finally:
        workbook.close()
    if header is None:
        raise SpreadsheetUnreadable("the XLSX's first sheet is empty")
    return header, rows


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        exact = Decimal(repr(value))  # the shortest decimal that reads back as this float
        return str(int(exact)) if exact == exact.to_integral_value() else format(exact, "f")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)
