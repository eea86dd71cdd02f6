"""A municipality's balance is read in one statement (issue 17, eleventh round): its sums, the events
recorded after its year's close and the view's offsets, each row tagged. Checked on both stores against
figures computed without that statement: the audit replay of the same events (its own code, no SQL) for
the money and the late events, and the view's offsets as their own query reads them."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import insert

from contracts.canonical import canonical_json, parse_utc
from services.audit.replay import Replay
from services.common.adapters.sql import create_sql_engine
from services.common.config import Settings
from services.common.consumer import consumer_offsets
from services.ledger.read_side import LedgerQueries, PointInTime, balances_projection
from tests.audit.test_after_close import CODE as LATE_CODE
from tests.audit.test_after_close import history
from tests.ledger.conftest import AMSTERDAM, UTRECHT
from tests.ledger.events import Streams, at
from tests.ledger.test_projection import scenario

POINTS = [
    PointInTime(),
    PointInTime(as_of=date(2024, 3, 31)),
    PointInTime(as_of=date(2024, 6, 30)),
    PointInTime(known_at=parse_utc(at("2024-06-15"))),
    PointInTime(known_at=parse_utc(at("2025-07-01"))),
    PointInTime(as_of=date(2024, 6, 30), known_at=parse_utc(at("2024-07-15"))),
]


def projected(settings: Settings, s: Streams) -> LedgerQueries:
    engine = create_sql_engine(settings.view_db_url)
    projection = balances_projection()
    projection.create_tables(engine)
    for topic, _key, envelope in s.sent:  # one event at a time, in the order sent
        with engine.begin() as connection:
            projection.apply_batch(connection, topic, [envelope])
    return LedgerQueries(engine)


def replayed(s: Streams, point: PointInTime) -> Replay:
    replay = Replay(as_of=point.as_of, known_at=point.known_at)
    for topic, _key, envelope in s.sent:
        replay.feed(topic, canonical_json(envelope))
    replay.finish()
    return replay


def without_offsets(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "offsets"}


def test_the_balance_agrees_with_the_replay_at_every_point(settings: Settings) -> None:
    s = Streams("")
    scenario(s)
    queries = projected(settings, s)
    for point in POINTS:
        replay = replayed(s, point)
        for code in (AMSTERDAM, UTRECHT):
            assert without_offsets(queries.balances(code, 2024, point)) == replay.balances(code, 2024), (code, point)
    assert queries.balances(AMSTERDAM, 2024, PointInTime())["spent_by_category"]["library_funding"] > 0


def test_the_balance_names_the_events_recorded_after_the_close(settings: Settings) -> None:
    s, late = history()
    queries = projected(settings, s)
    for point in (PointInTime(), PointInTime(known_at=parse_utc(at("2025-07-01")))):
        answer = without_offsets(queries.balances(LATE_CODE, 2024, point))
        assert answer == replayed(s, point).balances(LATE_CODE, 2024), point
    answer = queries.balances(LATE_CODE, 2024, PointInTime())
    assert answer["recorded_after_close_event_ids"] == sorted(late) and answer["spent_cents"] == 7


def test_the_balance_names_the_views_offsets_of_its_own_consumer_only(settings: Settings) -> None:
    s = Streams("")
    scenario(s)
    queries = projected(settings, s)
    rows = [
        {"consumer": "ledger-balances", "topic": topic, "partition": partition, "next_offset": offset}
        for topic, partition, offset in (("ido.grants.v1", 2, 7), ("ido.expenditures.v1", 0, 2_000_000_001),
                                         ("ido.grants.v1", 0, 3), ("ido.bridge.v1", 1, 0))
    ]
    rows.append({"consumer": "someone-else", "topic": "ido.grants.v1", "partition": 1, "next_offset": 99})
    with queries.engine.begin() as connection:
        connection.execute(insert(consumer_offsets), rows)
    offsets = queries.balances(AMSTERDAM, 2024, PointInTime())["offsets"]
    assert offsets == queries.offsets()  # as their own statement reads them, in their order
    assert offsets == [
        {"topic": "ido.bridge.v1", "partition": 1, "next_offset": 0},
        {"topic": "ido.expenditures.v1", "partition": 0, "next_offset": 2_000_000_001},
        {"topic": "ido.grants.v1", "partition": 0, "next_offset": 3},
        {"topic": "ido.grants.v1", "partition": 2, "next_offset": 7},
    ]
    assert all(type(o["partition"]) is int and type(o["next_offset"]) is int for o in offsets)
