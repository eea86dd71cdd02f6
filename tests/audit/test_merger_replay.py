"""A merger in a random history: the live projection and the audit replay give the same figures
before and after its effective date and before and after it was recorded (issue 15)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest

from contracts.canonical import canonical_json, parse_utc
from services.audit.replay import ReadingOrderError, Replay, replay_topics
from services.common.adapters.sql import create_sql_engine
from services.common.config import Settings
from services.ledger.read_side import LedgerQueries, PointInTime, balances_projection
from tests.audit.support import project, random_history
from tests.ledger.events import Streams, at


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


A, B, C = "GM0501", "GM0530", "GM1992"  # a chain for the test: A merges into B, later B into C


def award_a_and_b(s: Streams) -> None:
    for code in (A, B):
        grant = f"grant-2024-{code}"
        s.event("GrantAwarded", grant, code, at("2024-01-10"), grant_id=grant, year=2024, municipality_code=code,
                municipality_name=f"Gemeente {code}", amount_cents=100_000, awarded_on="2024-01-10", basis="annex")


def merge_a_into_b(s: Streams) -> None:
    """A merges into B, effective 1 May 2024, recorded on 2 May."""
    s.event("GrantTransferred", f"grant-2024-{A}", A, at("2024-05-02"), grant_id=f"grant-2024-{A}", year=2024,
            municipality_code=B, from_municipality_code=A, effective_on="2024-05-01")


def chain(prefix: str) -> Streams:
    s = Streams(prefix)
    award_a_and_b(s)
    spend(s, A, "2024-03-01", 1_000, at("2024-03-02"))
    merge_a_into_b(s)
    spend(s, B, "2024-06-01", 2_000, at("2024-06-02"))
    for grant in (f"grant-2024-{A}", f"grant-2024-{B}"):
        s.event("GrantTransferred", grant, grant.removeprefix("grant-2024-"), at("2024-09-02"), grant_id=grant,
                year=2024, municipality_code=C, from_municipality_code=B, effective_on="2024-09-01")
    # A late invoice of A, recorded between the mergers: A is merged, the ledger would have refused it only
    # from the effective date, it is booked before it. (Recorded after a merger and read before it, it
    # shares its day's sum: the test after this one.)
    spend(s, A, "2024-04-15", 4_000, at("2024-07-01"))
    return s


def spend(s: Streams, code: str, booked_on: str, cents: int, recorded_at: str) -> None:
    expenditure_id = str(uuid.uuid4())
    s.event("ExpenditureRecorded", f"expenditure-{expenditure_id}", code, recorded_at, expenditure_id=expenditure_id,
            municipality_code=code, grant_year=2024, category="promotion", amount_cents=cents, booked_on=booked_on,
            counterparty={"id": "P", "name": "Printer"}, description="illustrative", reference="R")


def replayed_in_order(s: Streams, first: str, point: PointInTime) -> Replay:
    """The two topics read one after the other, ``first`` first, in memory."""
    replay = Replay(as_of=point.as_of, known_at=point.known_at)
    for topic, _key, envelope in sorted(s.sent, key=lambda m: first not in m[0]):  # stable: topics keep order
        replay.feed(topic, canonical_json(envelope))
    replay.finish()
    return replay


def test_a_chain_of_mergers_gives_the_same_figures_in_any_reading_order(live: Settings) -> None:
    s = chain(live.topic_prefix)
    s.send(live)
    project(live, len(s.sent))
    queries = LedgerQueries(create_sql_engine(live.view_db_url))
    expected = {  # spent as known now, per as_of: (A, B, C)
        "2024-04-30": (1_000 + 4_000, 0, 0),
        "2024-06-30": (0, 1_000 + 4_000 + 2_000, 0),
        "2024-12-31": (0, 0, 7_000),
    }
    for as_of, spent in expected.items():
        for code, cents in zip((A, B, C), spent, strict=True):
            answer = queries.balances(code, 2024, PointInTime(as_of=date.fromisoformat(as_of)))
            assert (answer["spent_cents"], answer["spent_beyond_award_cents"]) == (cents, 0), (as_of, code)
    for as_of in (None, "2024-04-30", "2024-06-30", "2024-12-31"):
        for known_at in (None, "2024-06-15T00:00:00Z", "2024-08-01T00:00:00Z", "2024-09-30T00:00:00Z"):
            point = PointInTime(as_of=date.fromisoformat(as_of) if as_of else None,
                                known_at=parse_utc(known_at) if known_at else None)
            replays = [
                replayed_in_order(s, "grants", point),
                replayed_in_order(s, "expenditures", point),
                replay_topics(live, as_of=point.as_of, known_at=point.known_at),
            ]
            for code in (A, B, C):
                live_balance = without_offsets(queries.balances(code, 2024, point))
                live_sisa = without_offsets(queries.sisa(code, 2024, point))
                for replay in replays:
                    assert replay.balances(code, 2024) == live_balance, (point, code)
                    assert replay.sisa(code, 2024) == live_sisa, (point, code)


def test_spending_recorded_after_a_merger_moves_when_it_was_known_in_either_reading_order(tmp_path: Path) -> None:
    """Two postings of A on one day and category, one before the merger into B and one after it: the move
    of each is known from the later of its recording and the merger's, whichever topic is read first."""
    s = Streams("")
    award_a_and_b(s)
    spend(s, A, "2024-04-15", 1_000, at("2024-04-16"))
    merge_a_into_b(s)
    spend(s, A, "2024-04-15", 4_000, at("2024-07-01"))  # a late invoice of the same day, recorded after
    # (A spent, B spent) as known at each moment, worked out by hand from the dates above
    expected = {
        (None, "2024-05-01T00:00:00Z"): (1_000, 0),  # before the merger was recorded
        (None, "2024-06-01T00:00:00Z"): (0, 1_000),  # merged; the late invoice not yet recorded
        (None, "2024-07-02T00:00:00Z"): (0, 5_000),
        ("2024-04-30", "2024-06-01T00:00:00Z"): (1_000, 0),  # before the effective date: A's own
        ("2024-04-30", None): (5_000, 0),
        ("2024-05-01", "2024-06-01T00:00:00Z"): (0, 1_000),
        ("2024-05-01", None): (0, 5_000),
    }
    grants_first = sorted(s.sent, key=lambda m: "grants" not in m[0])
    expenditures_first = sorted(s.sent, key=lambda m: "expenditures" not in m[0])
    for order in (grants_first, expenditures_first):
        engine = create_sql_engine(f"sqlite:///{tmp_path / str(uuid.uuid4())}.db")
        projection = balances_projection()
        projection.create_tables(engine)
        for topic, _key, envelope in order:
            with engine.begin() as connection:
                projection.apply(connection, topic, envelope)
        queries = LedgerQueries(engine)
        for (as_of, known_at), spent in expected.items():
            point = PointInTime(as_of=date.fromisoformat(as_of) if as_of else None,
                                known_at=parse_utc(known_at) if known_at else None)
            live = tuple(queries.balances(code, 2024, point)["spent_cents"] for code in (A, B))
            assert live == spent, (order[2][0], as_of, known_at)
            replay = replayed_in_order(s, "grants", point)  # the order ``Replay.read`` takes
            assert tuple(replay.balances(code, 2024)["spent_cents"] for code in (A, B)) == spent, (as_of, known_at)
            assert replay.balances(A, 2024) == without_offsets(queries.balances(A, 2024, point))
            assert replay.balances(B, 2024) == without_offsets(queries.balances(B, 2024, point))
    # The replay keeps day sums, so it refuses the order it cannot split rather than answer a wrong moment.
    with pytest.raises(ReadingOrderError, match="read the grants topic first"):
        replayed_in_order(s, "expenditures", PointInTime())
