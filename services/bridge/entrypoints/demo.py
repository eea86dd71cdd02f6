"""Illustrative demo data for `make run`: the frame, a handful of libraries, their grants, paid.

The numbers are invented and say so in the CSV itself; only the municipality codes are real.
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

from services.bridge.application.app import BridgeApplication
from services.bridge.domain.errors import BridgeNotFound

DEMO_CSV = Path(__file__).resolve().parent.parent / "demo" / "libraries-demo.csv"
DEMO_PAID_ON = date(2022, 12, 15)


def read_demo_libraries(path: Path = DEMO_CSV) -> list[dict[str, Any]]:
    """One entry per library, its rows' municipalities gathered into its service area."""
    with path.open(encoding="utf-8", newline="") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    libraries: dict[str, dict[str, Any]] = {}
    for row in csv.DictReader(lines):
        library = libraries.setdefault(
            row["library_id"], {"library_id": row["library_id"], "name": row["name"], "service_area": []}
        )
        library["service_area"].append(
            {"municipality_code": row["municipality_code"], "inhabitants": int(row["inhabitants"])}
        )
    return list(libraries.values())


def load_demo_data(settings: Any, application: BridgeApplication) -> None:
    """Loads the demo into an empty store; does nothing when a frame is already set."""
    del settings  # the demo needs nothing from the settings
    try:
        application.frame()
        return
    except BridgeNotFound:
        pass
    # The frame as first decided, then the documented move of the spending deadline.
    application.set_frame(spending_deadline=date(2022, 12, 31))
    application.amend_frame(
        reason="spending deadline moved from 31 December 2022 to 1 May 2023",
        spending_deadline=date(2023, 5, 1),
    )
    application.register_libraries(read_demo_libraries())
    application.compute_grants()
    application.pay_batch(paid_on=DEMO_PAID_ON)
