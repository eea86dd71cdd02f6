"""The write side keeps known awards and mergers and reads the others again at most every
IDO_MERGERS_REREAD_MS (issue 17)."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import insert

from services.common.adapters.sql import create_sql_engine
from services.ledger.read_side.sql.grant_years import GrantYearsInView
from services.ledger.read_side.sql.view import mergers


def merge(view: GrantYearsInView, code: str, successor: str, on: str, event_id: str) -> None:
    with view.engine.begin() as connection:
        connection.execute(
            insert(mergers),
            [{"event_id": event_id, "municipality_code": code, "year": 2024, "successor_code": successor,
              "effective_on": date.fromisoformat(on), "recorded_at": "2024-05-02T00:00:00.000000Z"}],
        )


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [5000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


def test_a_merger_is_known_within_the_reread_time_and_then_kept(tmp_path: Path, clock: list[float]) -> None:
    view = GrantYearsInView(create_sql_engine(f"sqlite:///{tmp_path / 'view.sqlite'}"), {2024}, mergers_reread_ms=1000)
    assert view.grant_year("GM0014", 2024).merged_into is None
    merge(view, "GM0014", "GM0344", "2024-07-01", "e1")
    clock[0] += 0.5
    assert view.grant_year("GM0014", 2024).merged_into is None  # read 0.5 s ago: not yet
    clock[0] += 0.5
    known = view.grant_year("GM0014", 2024)
    assert (known.merged_into, known.merged_on) == ("GM0344", date(2024, 7, 1))
    with view.engine.begin() as connection:  # a re-projection empties the table: a merger is final
        connection.execute(mergers.delete())
    clock[0] += 10
    assert view.grant_year("GM0014", 2024).merged_into == "GM0344"


def test_zero_reads_the_mergers_at_every_posting(tmp_path: Path, clock: list[float]) -> None:
    view = GrantYearsInView(create_sql_engine(f"sqlite:///{tmp_path / 'view.sqlite'}"), {2024}, mergers_reread_ms=0)
    assert view.grant_year("GM0014", 2024).merged_into is None
    merge(view, "GM0014", "GM0344", "2024-07-01", "e1")
    assert view.grant_year("GM0014", 2024).merged_into == "GM0344"


def test_the_first_merger_of_a_code_counts(tmp_path: Path, clock: list[float]) -> None:
    view = GrantYearsInView(create_sql_engine(f"sqlite:///{tmp_path / 'view.sqlite'}"), {2024}, mergers_reread_ms=0)
    merge(view, "GM0501", "GM0530", "2024-05-01", "e1")
    merge(view, "GM0501", "GM0530", "2024-03-01", "e2")
    assert view.grant_year("GM0501", 2024).merged_on == date(2024, 3, 1)
