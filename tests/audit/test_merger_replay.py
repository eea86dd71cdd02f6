"""A merger in a random history: the live projection and the audit replay give the same figures
before and after its effective date and before and after it was recorded (issue 15)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

import pytest

from contracts.canonical import parse_utc
from services.audit.replay import replay_topics
from services.common.adapters.sql import create_sql_engine
from services.common.config import Settings
from services.ledger.read_side import LedgerQueries, PointInTime
from tests.audit.support import project, random_history


def without_offsets(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k != "offsets"}


@pytest.mark.parametrize("seed", [5, 31])
def test_a_merger_replays_to_the_live_figures_on_both_sides_of_its_dates(live: Settings, seed: int) -> None:
    history = random_history(live.topic_prefix, seed, merge=True)
    assert history.merger is not None
    old, new, effective, recorded = history.merger
    s = history.streams
    s.send(live)
    project(live, len({m[2]["event_id"] for m in s.sent}))
    queries = LedgerQueries(create_sql_engine(live.view_db_url))

    on = date.fromisoformat(effective)
    known = parse_utc(recorded)
    points = [
        PointInTime(),
        PointInTime(as_of=on - timedelta(days=1)),
        PointInTime(as_of=on),
        PointInTime(as_of=date(2024, 12, 31)),
        PointInTime(known_at=known - timedelta(microseconds=1)),
        PointInTime(known_at=known),
        PointInTime(as_of=on, known_at=known - timedelta(microseconds=1)),
    ]
    for point in points:
        replay = replay_topics(live, as_of=point.as_of, known_at=point.known_at)
        assert replay.stats.invalid == 0 and replay.stats.refused == 0, replay.stats.problems
        for year in (2024, 2025):
            assert replay.national(year) == without_offsets(queries.national(year, point)), (point, year)
        for code, year in sorted(history.codes_years):
            assert replay.balances(code, year) == without_offsets(queries.balances(code, year, point)), (point, code)
            assert replay.sisa(code, year) == without_offsets(queries.sisa(code, year, point)), (point, code)

    # The figures themselves: spending moved with the grant on the effective date.
    spent: dict[str, int] = defaultdict(int)
    for _topic, _key, envelope in s.sent:
        p = envelope["payload"]
        if envelope["event_type"] in ("ExpenditureRecorded", "ExpenditureReversed") and p["grant_year"] == 2024:
            sign = 1 if envelope["event_type"] == "ExpenditureRecorded" else -1
            spent[p["municipality_code"]] += sign * p["amount_cents"]
    now, before = PointInTime(), PointInTime(as_of=on - timedelta(days=1), known_at=known)
    predecessor = queries.balances(old, 2024, now)
    assert predecessor["awarded_cents"] == predecessor["advance_paid_cents"] == predecessor["spent_cents"] == 0
    assert predecessor["spent_beyond_award_cents"] == 0
    assert queries.sisa(old, 2024, now)["besteding_jaar_t_cents"] == 0
    successor = queries.balances(new, 2024, now)
    assert successor["spent_cents"] == spent[new] + spent[old]
    unmerged = queries.balances(old, 2024, PointInTime(known_at=known - timedelta(microseconds=1)))
    assert unmerged["spent_cents"] == sum(
        envelope["payload"]["amount_cents"] * (1 if envelope["event_type"] == "ExpenditureRecorded" else -1)
        for _t, _k, envelope in s.sent
        if envelope["event_type"] in ("ExpenditureRecorded", "ExpenditureReversed")
        and envelope["payload"]["municipality_code"] == old
        and envelope["payload"]["grant_year"] == 2024
        and envelope["recorded_at"] < recorded
    )
    assert unmerged["awarded_cents"] > 0
    assert queries.balances(old, 2024, before)["awarded_cents"] > 0  # before the effective date: its own
