"""Reading the regulation's annex as CSV: `GM0363,Amsterdam,725000.00`, one municipality a line.

Lines starting with `#` are comments (e.g. `# illustrative amounts, not the real annex`); blank
lines are skipped; a first row `cbs_code,name,amount` is accepted as a header. Every bad row is
reported, not only the first.

As a Dutch finance office writes it, the same file reads `GM0363;Amsterdam;€ 725.000,00`: the
separator is `,` or `;`, decided by the first line that is not a comment (``contracts.csv_input``),
and the amount is read by ``contracts.amounts`` (ambiguous amounts such as `1.234` are refused).
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass

from contracts.csv_input import QUOTE_HINT, separator_of
from contracts.identifiers import CBS_CODE, CBS_CODE_REASON
from contracts.text import text_problem
from services.payments.domain.errors import RowError
from services.payments.domain.money import euros_to_cents

HEADER_FIRST_CELLS = {"cbs_code", "code", "gemeentecode", "municipality_code"}
MAX_NAME = 200


@dataclass(frozen=True)
class AnnexRow:
    line: int
    municipality_code: str
    municipality_name: str
    amount_cents: int


@dataclass(frozen=True)
class ParsedAnnex:
    rows: list[AnnexRow]
    errors: list[RowError]
    sha256: str


def parse_annex(data: bytes) -> ParsedAnnex:
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return ParsedAnnex([], [RowError(line, "_row", "is not valid UTF-8 text")], sha256)
    rows: list[AnnexRow] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    header_allowed = True
    separator: str | None = None
    for line_no, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if separator is None:
            separator = separator_of(stripped)
        try:
            cells = next(csv.reader(io.StringIO(raw), delimiter=separator, strict=True))
        except csv.Error as error:
            errors.append(RowError(line_no, "_row", f"is not a valid CSV line ({error})"))
            header_allowed = False
            continue
        cells = [cell.strip() for cell in cells]
        if header_allowed and cells and cells[0].lower() in HEADER_FIRST_CELLS:
            header_allowed = False
            continue
        header_allowed = False
        if len(cells) != 3:
            hint = QUOTE_HINT if separator == "," and len(cells) > 3 else ""
            reason = f"must have 3 fields (cbs_code{separator}name{separator}amount), has {len(cells)}{hint}"
            errors.append(RowError(line_no, "_row", reason))
            continue
        code, name, amount = cells
        row_errors: list[RowError] = []
        if not CBS_CODE.fullmatch(code):
            reason = f"{CBS_CODE_REASON}, got {code!r}"
            row_errors.append(RowError(line_no, "cbs_code", reason))
        elif code in seen:
            row_errors.append(RowError(line_no, "cbs_code", f"{code} appears twice: also on line {seen[code]}"))
        else:
            seen[code] = line_no
        if not name:
            row_errors.append(RowError(line_no, "name", "must not be empty"))
        elif len(name) > MAX_NAME:
            row_errors.append(RowError(line_no, "name", f"must be at most {MAX_NAME} characters"))
        elif problem := text_problem(name):
            row_errors.append(RowError(line_no, "name", problem))
        try:
            cents = euros_to_cents(amount)
        except ValueError as error:
            row_errors.append(RowError(line_no, "amount", str(error)))
            cents = 0
        if row_errors:
            errors.extend(row_errors)
        else:
            rows.append(AnnexRow(line_no, code, name, cents))
    return ParsedAnnex(rows, errors, sha256)
