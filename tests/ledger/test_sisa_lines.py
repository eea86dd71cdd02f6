"""SiSa lines from one code path: the live projection's SQL and the audit replay give the same lines.

Without a broker (the HTTP and Kafka path is tests/integration/test_sisa_and_settlement.py): the same
envelopes go through ``BalancesProjection`` into a view and through ``Replay.feed``. The history books
a 2024-grant expenditure in 2025, which the ledger's write side refuses today (an expenditure books
within its grant year), so that *besteding in T on G* is seen to be more than "booked in T".
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from contracts.canonical import canonical_json, parse_utc
from services.audit.replay import Replay
from services.common.adapters.sql import create_sql_engine
from services.ledger.read_side import SISA_CSV_COLUMNS, LedgerQueries, PointInTime, balances_projection, sisa_csv_rows
from tests.ledger.conftest import AMSTERDAM, LIBRARY
from tests.ledger.events import Streams, at

M = 100
TODAY = date(2026, 8, 1)
INDICATORS = {2024: ("C8/01", "C8/02", "C8/03")}


def spent(s: Streams, number: int, grant_year: int, booked_on: str, euros: int) -> None:
    expenditure_id = f"00000000-0000-4000-8000-{number:012d}"
    s.event(
        "ExpenditureRecorded", f"expenditure-{expenditure_id}", AMSTERDAM, at(booked_on),
        expenditure_id=expenditure_id, municipality_code=AMSTERDAM, grant_year=grant_year,
        category="library_funding", amount_cents=euros * M, booked_on=booked_on,
        counterparty={"id": LIBRARY, "name": "OBA"}, description="IDO", reference=f"R-{number}",
    )


def history() -> Streams:
    s = Streams("t.")
    for year in (2024, 2025):
        grant = f"grant-{year}-{AMSTERDAM}"
        s.event("GrantAwarded", grant, AMSTERDAM, at(f"{year}-01-10"), grant_id=grant, year=year,
                municipality_code=AMSTERDAM, municipality_name="Amsterdam", amount_cents=500_000 * M,
                awarded_on=f"{year}-01-10", basis="annex")
    spent(s, 1, 2024, "2024-03-01", 100_000)
    spent(s, 2, 2024, "2025-02-01", 30_000)  # on the 2024 grant, booked in 2025
    spent(s, 3, 2025, "2025-04-01", 70_000)
    s.event("SisaLineDeclared", f"sisa-{AMSTERDAM}-2024-2024", AMSTERDAM, at("2025-05-01"),
            municipality_code=AMSTERDAM, accounts_year=2024, grant_year=2024, final_account=False,
            declared_on="2025-05-01", declared_by="municipality", reason=None)
    s.event("SisaLineDeclared", f"sisa-{AMSTERDAM}-2025-2024", AMSTERDAM, at("2026-07-20"),
            municipality_code=AMSTERDAM, accounts_year=2025, grant_year=2024, final_account=True,
            declared_on="2026-07-20", declared_by="ministry", reason="from the annex")
    return s


def lines(answer: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (line["grant_year"], line["besteding_jaar_t_cents"], line["cumulatieve_bestedingen_cents"],
         line["eindverantwoording"], line["late"])
        for line in answer["lines"]
    ]


def test_the_live_view_and_the_replay_give_the_same_lines_per_grant_decision(tmp_path: Path) -> None:
    s = history()
    engine = create_sql_engine(f"sqlite:///{tmp_path / 'view.db'}")
    queries = LedgerQueries(engine, sisa_indicators=INDICATORS)
    queries.today = lambda: TODAY
    projection = balances_projection()
    with engine.begin() as connection:
        for topic, _key, envelope in s.sent:
            projection.apply(connection, topic, envelope)
    live_2025 = queries.sisa(AMSTERDAM, 2025, PointInTime())
    assert lines(live_2025) == [
        (2024, 30_000 * M, 130_000 * M, "Ja", True),  # declared on 20 July 2026, after the deadline
        (2025, 70_000 * M, 70_000 * M, "Nee", True),  # never declared, and 1 August 2026 is past it
    ]
    assert lines(queries.sisa(AMSTERDAM, 2024, PointInTime())) == [(2024, 100_000 * M, 100_000 * M, "Nee", False)]
    assert live_2025["lines"][0]["indicator_codes"] == {
        "besteding": "C8/01", "cumulatief": "C8/02", "eindverantwoording": "C8/03"
    }
    assert live_2025["lines"][1]["indicator_codes"] is None  # no codes set for 2025: none invented
    # the 2024 grant was declared final in the 2025 accounts: 2026's accounts report only 2025's
    assert [line["grant_year"] for line in queries.sisa(AMSTERDAM, 2026, PointInTime())["lines"]] == [2025]

    for point in (
        PointInTime(), PointInTime(as_of=date(2025, 1, 31)), PointInTime(as_of=date(2025, 12, 31)),
        PointInTime(as_of=date(2026, 7, 15)), PointInTime(known_at=parse_utc(at("2026-07-19"))),
    ):
        replay = Replay(as_of=point.as_of, known_at=point.known_at, sisa_indicators=INDICATORS, today=TODAY)
        for topic, _key, envelope in s.sent:
            replay.feed(topic, canonical_json(envelope))
        replay.finish()
        for year in (2024, 2025, 2026):
            live = {k: v for k, v in queries.sisa(AMSTERDAM, year, point).items() if k != "offsets"}
            assert replay.sisa(AMSTERDAM, year) == live, (point, year)


def test_the_sisa_csv_has_one_flat_row_per_line_with_exactly_its_columns() -> None:
    """``sisa_csv_rows`` alone (the CSV route's tests need a store): every cell of every row, for a line with
    the year's indicator codes and one without (issue 20, the mutation check)."""
    answer: dict[str, Any] = {
        "sisa_municipality_code": "0363", "municipality_code": AMSTERDAM, "year": 2025, "deadline": "2026-07-15",
        "final_account": False, "late": True,
        "lines": [
            {"grant_year": 2024, "indicator_codes": {"besteding": "C8/01", "cumulatief": "C8/02",
                                                     "eindverantwoording": "C8/03"},
             "besteding_jaar_t_cents": 12_345, "cumulatieve_bestedingen_cents": 99_000, "eindverantwoording": "Ja",
             "declared_on": "2026-07-01", "declared_by": "municipality", "late": False, "final_account": True},
            {"grant_year": 2025, "indicator_codes": None,
             "besteding_jaar_t_cents": 0, "cumulatieve_bestedingen_cents": 0, "eindverantwoording": "Nee",
             "declared_on": None, "declared_by": None, "late": True, "final_account": False},
        ],
    }
    rows = sisa_csv_rows(answer)
    assert rows == [
        {"sisa_municipality_code": "0363", "municipality_code": AMSTERDAM, "accounts_year": 2025, "grant_year": 2024,
         "indicator_besteding": "C8/01", "indicator_cumulatief": "C8/02", "indicator_eindverantwoording": "C8/03",
         "besteding_jaar_t_cents": 12_345, "cumulatieve_bestedingen_cents": 99_000, "eindverantwoording": "Ja",
         "declared_on": "2026-07-01", "declared_by": "municipality", "deadline": "2026-07-15", "late": False},
        {"sisa_municipality_code": "0363", "municipality_code": AMSTERDAM, "accounts_year": 2025, "grant_year": 2025,
         "indicator_besteding": None, "indicator_cumulatief": None, "indicator_eindverantwoording": None,
         "besteding_jaar_t_cents": 0, "cumulatieve_bestedingen_cents": 0, "eindverantwoording": "Nee",
         "declared_on": None, "declared_by": None, "deadline": "2026-07-15", "late": True},
    ]
    assert all(sorted(row) == sorted(SISA_CSV_COLUMNS) for row in rows)
    assert sisa_csv_rows({**answer, "lines": []}) == []
