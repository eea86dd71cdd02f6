"""`ido demo ledger` (issue 18, Must show 5): illustrative spending and reversals for every demo
municipality, marked illustrative in the data, posted through the ledger's own commands once the awards
are in its view; a second run books nothing twice; no award in time is a clear error, not a hang."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from services.common.adapters.sql import create_sql_engine
from services.common.config import Settings, load_settings
from services.common.eventstore import build_application
from services.ledger.application.app import LedgerApplication
from services.ledger.domain.model import Expenditure
from services.ledger.entrypoints.demo import BOOKED_TWICE, load_demo_data, read_demo_postings
from services.ledger.read_side import balances_projection
from tests.ledger.events import Streams, at

POSTINGS = read_demo_postings()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        {"IDO_EVENT_STORE": "sqlite", "IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys")}
    )


@pytest.fixture
def ledger(settings: Settings) -> Iterator[LedgerApplication]:
    application = build_application(LedgerApplication, settings.eventsourcing_env("ledger"))
    yield application
    application.close()


def _project_awards(settings: Settings) -> None:
    s = Streams("")
    for code in POSTINGS:
        for year in (2024, 2025):
            grant = f"grant-{year}-{code}"
            s.event("GrantAwarded", grant, code, at(f"{year}-01-15"), grant_id=grant, year=year,
                    municipality_code=code, municipality_name=code, amount_cents=100_000_000,
                    awarded_on=f"{year}-01-15", basis="annex")
    engine = create_sql_engine(settings.view_db_url)
    projection = balances_projection()
    projection.create_tables(engine)
    with engine.begin() as connection:
        projection.apply_batch(connection, s.sent[0][0], [envelope for _t, _k, envelope in s.sent])


def _expenditures(ledger: LedgerApplication) -> list[Expenditure]:
    ids = {item.originator_id for item in ledger.recorder.select_notifications(start=1, limit=10_000)}
    return [found for found in (ledger.repository.get(i) for i in ids) if isinstance(found, Expenditure)]


def test_the_demo_posts_every_municipalitys_illustrative_spending_and_reverses_the_double_booking(
    settings: Settings, ledger: LedgerApplication
) -> None:
    _project_awards(settings)
    load_demo_data(settings, ledger, wait_s=5)
    expenditures = {e.reference: e for e in _expenditures(ledger)}
    lines = {row["reference"]: (code, row) for code, rows in POSTINGS.items() for row in rows}
    assert sorted(expenditures) == sorted(lines) and len(POSTINGS) >= 6
    for reference, (code, row) in lines.items():
        booked = expenditures[reference]
        assert booked.municipality_code == code and booked.grant_year == int(row["grant_year"])
        assert booked.amount_cents == int(Decimal(row["amount"]) * 100)
        assert booked.description.startswith("Illustratief") and reference.startswith("DEMO-")
        assert booked.reversed == reference.endswith(BOOKED_TWICE), reference
    events = ledger.recorder.max_notification_id()
    load_demo_data(settings, ledger, wait_s=5)  # the same keys: answered from the first run
    assert ledger.recorder.max_notification_id() == events


def test_without_the_awards_the_demo_stops_with_a_clear_error(settings: Settings, ledger: LedgerApplication) -> None:
    engine = create_sql_engine(settings.view_db_url)
    balances_projection().create_tables(engine)
    waits: list[float] = []
    with pytest.raises(RuntimeError, match="is the projector running"):
        load_demo_data(settings, ledger, wait_s=0.2, sleep=waits.append)
    assert ledger.recorder.max_notification_id() in (None, 0)
