"""The SiSa answer's shape, without SQL: one for the live queries (``sql/queries.py``) and the audit replay.

SiSa reports each grant decision (beschikking) on its own line: in the accounts of year T, for each
grant year G <= T with an award (or spending on it), *Besteding (jaar T)* is what was booked in T on
G's grant and *Cumulatieve bestedingen t/m (jaar T)* what was booked on it up to and including T,
"booked in T" meaning spent in T (``spent_in_year``): spending a merger moved keeps its year.
Spending on another year's grant never adds to G's line. The eindverantwoording is the
municipality's own declaration (``SisaLineDeclared``); once it declared G's line final (Ja), later
accounts no longer report G. The account is due by 15 July of T+1, and a line declared after that
day, or not declared by it, is late. The indicator codes are a setting per
grant year (``IDO_SISA_INDICATORS``), never invented here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.common.year_settings import SISA_INDICATOR_NAMES, SISA_INDICATORS, for_year

GrantFigures = dict[int, list[int]]
"""grant year G -> [awarded, spent booked in T, spent booked up to and including T] of one municipality."""


def spent_in_year(row: Mapping[str, Any]) -> int:
    """The accounts year T a spent journal row counts in: the year the money was spent (``spent_on``),
    which a merger's move keeps, not the year of the effective date it is booked on; rows without
    ``spent_on`` are the posting's own, spent on their booking day. ``sql/queries.py`` says the same
    in SQL (``coalesce(spent_on, booked_on)``)."""
    return int((row.get("spent_on") or row["booked_on"]).year)


def sisa_deadline(accounts_year: int) -> date:
    """The SiSa account of year T reaches CBS by 15 July of T+1 (Regeling informatieverstrekking sisa, art. 2)."""
    return date(accounts_year + 1, 7, 15)


@dataclass(frozen=True)
class Declaration:
    final_account: bool
    declared_on: date
    declared_by: str
    reason: str | None

    @classmethod
    def of_row(cls, row: Any) -> Declaration:
        return cls(bool(row["final_account"]), row["declared_on"], row["declared_by"], row["reason"])


def is_late(accounts_year: int, declaration: Declaration | None, day: date) -> bool:
    """Declared after the deadline, or not declared while ``day`` is past it."""
    deadline = sisa_deadline(accounts_year)
    if declaration is not None:
        return declaration.declared_on > deadline
    return day > deadline


def indicator_codes(indicators: Mapping[int, tuple[str, ...]], grant_year: int) -> dict[str, str] | None:
    codes = for_year(indicators, grant_year)
    return dict(zip(SISA_INDICATOR_NAMES, codes, strict=True)) if codes else None


Declarations = Mapping[tuple[int, int], Declaration]
"""(accounts year, grant year) -> the declaration of that line, of the accounts years up to T."""


def sisa_lines(
    accounts_year: int,
    figures: GrantFigures,
    declarations: Declarations,
    indicators: Mapping[int, tuple[str, ...]],
    day: date,
) -> list[dict[str, Any]]:
    """One line per grant year G <= T with an award or spending, until the accounts year whose line of G
    the municipality declared final (eindverantwoording Ja): later accounts no longer report G.
    ``day``: what "late" is judged on."""
    finished = {g for (t, g), d in declarations.items() if t < accounts_year and d.final_account}
    lines = []
    for grant_year in sorted(figures):
        awarded, in_year, cumulative = figures[grant_year]
        if grant_year > accounts_year or grant_year in finished or not (awarded or cumulative):
            continue
        declared = declarations.get((accounts_year, grant_year))
        lines.append(
            {
                "grant_year": grant_year,
                "indicator_codes": indicator_codes(indicators, grant_year),
                "besteding_jaar_t_cents": in_year,
                "cumulatieve_bestedingen_cents": cumulative,
                "eindverantwoording": "Ja" if declared is not None and declared.final_account else "Nee",
                "declared": declared is not None,
                "declared_on": declared.declared_on.isoformat() if declared is not None else None,
                "declared_by": declared.declared_by if declared is not None else None,
                "declaration_reason": declared.reason if declared is not None else None,
                "late": is_late(accounts_year, declared, day),
            }
        )
    return lines


def sisa_status(accounts_year: int, lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The account as a whole: declared when every line is, late when any line is."""
    return {
        "accounts_year": accounts_year,
        "deadline": sisa_deadline(accounts_year).isoformat(),
        "declared": bool(lines) and all(line["declared"] for line in lines),
        "late": any(line["late"] for line in lines),
    }


def sisa_answer(
    code: str,
    accounts_year: int,
    lines: list[dict[str, Any]],
    closing: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The SiSa account of year T. The top-level figures are the line of T's own grant (G = T), as
    clients read them before the lines existed; ``lines`` holds every grant decision."""
    own = next((line for line in lines if line["grant_year"] == accounts_year), None)
    codes = own["indicator_codes"] if own is not None else None
    return {
        "municipality_code": code,
        "sisa_municipality_code": "06" + code[2:],
        "indicator_code": codes["besteding"] if codes else None,
        "indicator_setting": SISA_INDICATORS,
        "year": accounts_year,
        "besteding_jaar_t_cents": own["besteding_jaar_t_cents"] if own is not None else 0,
        "cumulatieve_bestedingen_cents": own["cumulatieve_bestedingen_cents"] if own is not None else 0,
        "eindverantwoording": own["eindverantwoording"] if own is not None else "Nee",
        "final_account": own is not None and own["eindverantwoording"] == "Ja",
        "year_closed": closing is not None,
        "closed_on": closing["closed_on"].isoformat() if closing is not None else None,
        **sisa_status(accounts_year, lines),
        "lines": lines,
    }


SISA_CSV_COLUMNS = (
    "sisa_municipality_code",
    "municipality_code",
    "accounts_year",
    "grant_year",
    "indicator_besteding",
    "indicator_cumulatief",
    "indicator_eindverantwoording",
    "besteding_jaar_t_cents",
    "cumulatieve_bestedingen_cents",
    "eindverantwoording",
    "declared_on",
    "declared_by",
    "deadline",
    "late",
)
"""The SiSa CSV of the ledger's API: one row per line (per grant decision), as the JSON's ``lines``."""


def sisa_csv_rows(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The CSV rows of one SiSa answer: its lines, flat."""
    rows = []
    for line in answer["lines"]:
        codes = line["indicator_codes"] or {}
        rows.append(
            {
                "sisa_municipality_code": answer["sisa_municipality_code"],
                "municipality_code": answer["municipality_code"],
                "accounts_year": answer["year"],
                **{f"indicator_{name}": codes.get(name) for name in SISA_INDICATOR_NAMES},
                **{k: line[k] for k in ("grant_year", "besteding_jaar_t_cents", "cumulatieve_bestedingen_cents",
                                        "eindverantwoording", "declared_on", "declared_by", "late")},
                "deadline": answer["deadline"],
            }
        )
    return rows
