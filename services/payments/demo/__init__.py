"""Illustrative demo data: the 2024 and 2025 frames, a demo annex, and the advances paid."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from services.payments.application.app import PaymentsApplication

ANNEX_DEMO_FILE = Path(__file__).parent / "annex-demo.csv"
DEMO_YEARS = (2024, 2025)
DEMO_FRAME_CENTS = 1_713_000_000
"""€ 17,130,000: the yearly frame of the regulation."""


def load_demo_data(settings: Any, application: PaymentsApplication) -> None:
    """Sets the 2024 and 2025 frames, imports the demo annex for both and pays the advances.

    Safe to run again: an identical frame, the same annex and already paid advances change nothing.
    """
    data = ANNEX_DEMO_FILE.read_bytes()
    for year in DEMO_YEARS:
        decided_on = date(year - 1, 12, 1)
        awarded_on = date(year, 1, 15)
        application.set_frame(year, DEMO_FRAME_CENTS, decided_on)
        application.import_annex(year, data, awarded_on)
        for grant in application.grants(year):
            if grant.paid_cents == 0:
                application.pay_advance(year, grant.original_municipality_code, grant.amount_cents, date(year, 1, 31))
