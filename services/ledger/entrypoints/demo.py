"""Illustrative demo spending for `make run`, so a newcomer's first look shows real-looking figures.

The postings are invented and say so in the data itself (descriptions start with "Illustratief", references
with "DEMO-", suppliers are marked illustrative). They go through the ledger's own commands: one import per
municipality (`import_expenditures`, as `POST .../expenditures:import`), then a reversal of the line booked
twice (`reverse_expenditure`). The ledger books spending only into a year it holds the award of, so the
demo first waits, bounded, until the projector has brought the payments demo's awards into the view.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

from services.common.csv_output import csv_text
from services.ledger.application.app import LedgerApplication

DEMO_CSV = Path(__file__).resolve().parent.parent / "demo" / "expenditures-demo.csv"
BOOKED_TWICE = "-DUBBEL"
"""The reference ending of the line each municipality booked twice; the demo reverses it."""
REVERSAL_REASON = "Illustratief: dubbel geboekt"
REVERSAL_BOOKED_ON = date(2024, 5, 1)
AWARDS_WAIT_S = 180.0


def read_demo_postings(path: Path = DEMO_CSV) -> dict[str, list[dict[str, str]]]:
    """The demo's lines per municipality, in the file's order."""
    with path.open(encoding="utf-8", newline="") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    postings: dict[str, list[dict[str, str]]] = {}
    for row in csv.DictReader(lines):
        code = row.pop("municipality_code")
        postings.setdefault(code, []).append(row)
    return postings


def load_demo_data(
    settings: Any, application: LedgerApplication, *, wait_s: float = AWARDS_WAIT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Imports each municipality's demo lines and reverses its double booking; the same keys make a second
    run answer from the first (nothing is booked twice)."""
    del settings  # the demo needs nothing from the settings
    for code, rows in read_demo_postings().items():
        years = sorted({int(row["grant_year"]) for row in rows})
        _wait_for_awards(application, code, years, wait_s, sleep)
        columns = list(rows[0])
        _status, answer = application.import_expenditures(
            code, csv_text(columns, ([row[c] for c in columns] for row in rows)), idempotency_key=f"demo-import-{code}"
        )
        twice = [line for line, row in enumerate(rows, start=2) if row["reference"].endswith(BOOKED_TWICE)]
        for entry in answer["expenditures"]:
            if entry["line"] in twice:
                application.reverse_expenditure(
                    code, UUID(str(entry["expenditure_id"])), reason=REVERSAL_REASON, booked_on=REVERSAL_BOOKED_ON,
                    idempotency_key=f"demo-reversal-{code}-{entry['line']}",
                )


def _wait_for_awards(
    application: LedgerApplication, code: str, years: list[int], wait_s: float, sleep: Callable[[float], None]
) -> None:
    deadline = time.monotonic() + wait_s
    while not all(application.grant_year(code, year).awarded for year in years):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"ledger demo: no award of {code} for {years} reached the ledger's view within {wait_s:.0f} s; "
                "is the projector running (`ido project`) and the payments demo loaded?"
            )
        sleep(0.5)
