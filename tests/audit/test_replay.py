"""The auditor's replay equals the live projection, for a random history, at many points in time."""

from __future__ import annotations

import random
from datetime import date

import pytest
from kafka import KafkaProducer

from contracts.canonical import canonical_json, parse_utc
from services.audit.replay import Replay, replay_topics
from services.audit.sources import TopicReader, audit_kafka_config, audited_topics
from services.common.adapters.sql import create_sql_engine
from services.common.config import Settings
from services.ledger.read_side import LedgerQueries, PointInTime
from tests.audit.support import project, random_history
from tests.support.infra import KafkaInfo


def without_offsets(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k != "offsets"}


@pytest.mark.parametrize("seed", [7, 2024])
def test_random_history_replays_to_the_live_balances_at_every_point(
    live: Settings, kafka: KafkaInfo, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the replay's on-disk index takes every few new entries, so duplicates, heads and originals are
    # found there and not only in its RAM buffer
    monkeypatch.setattr("services.audit.replay.INDEX_BATCH_SIZE", 3)
    history = random_history(live.topic_prefix, seed)
    s = history.streams
    rng = random.Random(seed)
    s.send(live)
    s.send(live, rng.sample(s.sent, 10))  # the relay re-sends after a crash
    # a message whose content no longer matches its hash, and a reversal that does not match its original
    topic, key, victim = next(m for m in s.sent if m[2]["event_type"] == "ExpenditureRecorded")
    broken = {**victim, "payload": {**victim["payload"], "amount_cents": 1}}
    p = victim["payload"]
    bad = s.event(
        "ExpenditureReversed", victim["stream_id"], key.decode(), "2025-12-30T00:00:00.000000Z",
        expenditure_id=p["expenditure_id"], municipality_code=p["municipality_code"], grant_year=p["grant_year"],
        reverses_event_id=victim["event_id"], amount_cents=p["amount_cents"] + 1, category=p["category"],
        booked_on=p["booked_on"], reason="does not match",
    )
    producer = KafkaProducer(**kafka.client(), acks="all")
    producer.send(topic, key=key, value=canonical_json(broken))
    producer.flush()
    producer.close()
    s.send(live, [s.sent[-1]])  # the reversal is genuine (sealed by the ledger), only its content is refused
    assert s.sent[-1][2] is bad

    distinct_valid = len({m[2]["event_id"] for m in s.sent})
    project(live, distinct_valid)
    queries = LedgerQueries(create_sql_engine(live.view_db_url))

    days = sorted(history.days)
    moments = sorted(history.recorded)
    points = [
        PointInTime(),
        PointInTime(as_of=days[len(days) // 3]),
        PointInTime(as_of=date(2024, 12, 31)),
        PointInTime(known_at=parse_utc(moments[len(moments) // 2])),
        PointInTime(known_at=parse_utc(moments[-5])),
        PointInTime(as_of=date(2024, 12, 31), known_at=parse_utc(moments[(2 * len(moments)) // 3])),
        PointInTime(as_of=date(2025, 6, 30), known_at=parse_utc("2025-06-30T23:59:59Z")),
        # the bridging subsidy's final accounts (deadline 2023-09-01) before it, and after it but before
        # the late ones came in
        PointInTime(as_of=date(2023, 8, 15)),
        PointInTime(as_of=date(2023, 9, 10)),
    ]
    # the libraries' account status, from the history itself (submitted on 2023-08-01 or 2023-09-15, or never)
    def statuses(late: str, not_submitted: str) -> dict[str, str]:
        return {
            library: "on_time" if on == date(2023, 8, 1) else late if on else not_submitted
            for library, on in history.bridge_accounts.items()
        }

    expected_status = {
        PointInTime(): statuses("late", "missing"),
        PointInTime(as_of=date(2023, 8, 15)): statuses("not_due", "not_due"),
        PointInTime(as_of=date(2023, 9, 10)): statuses("missing", "missing"),
    }
    for point in points:
        replay = replay_topics(live, as_of=point.as_of, known_at=point.known_at)
        assert replay.stats.invalid == 1 and replay.stats.refused == 1, replay.stats.problems
        assert replay.stats.duplicates == 10
        for year in (2024, 2025):
            assert replay.national(year) == without_offsets(queries.national(year, point)), (point, year)
        if point in expected_status:
            libraries = queries.national(2024, point)["bridge"]["libraries"]
            assert {row["library_id"]: row["account_status"] for row in libraries} == expected_status[point], point
        for code, year in sorted(history.codes_years):
            assert replay.balances(code, year) == without_offsets(queries.balances(code, year, point)), (point, code)
            assert replay.sisa(code, year) == without_offsets(queries.sisa(code, year, point)), (point, code)
    # the replay read exactly what the projector had when it was done
    assert {t: {p: o for p, o in parts.items() if o} for t, parts in replay.offsets.items()} == {
        t: {str(p["partition"]): p["next_offset"] for p in queries.offsets() if p["topic"] == t}
        for t in audited_topics(live)
    }


def test_a_stream_split_over_partitions_is_read_in_stream_order(live: Settings, kafka: KafkaInfo) -> None:
    """After a merger a grant's later events carry the successor's key: the replay waits for the
    predecessor of an event rather than applying it out of order."""
    history = random_history(live.topic_prefix, 11, expenditures=5)
    s = history.streams
    grant = "grant-2024-GM0363"
    s.event("GrantTransferred", grant, "GM0344", "2025-12-01T00:00:00.000000Z", grant_id=grant, year=2024,
            municipality_code="GM0344", from_municipality_code="GM0363", effective_on="2025-12-01")
    in_order = Replay()
    for topic, _key, envelope in s.sent:
        in_order.feed(topic, canonical_json(envelope))
    in_order.finish()
    shuffled = Replay()
    messages = list(s.sent)
    transfer = messages.pop()
    messages.insert(0, transfer)  # read before the grant's first events, as another partition may be
    for topic, _key, envelope in messages:
        shuffled.feed(topic, canonical_json(envelope))
    shuffled.finish()
    assert shuffled.stats.waited >= 1
    assert shuffled.balances("GM0344", 2024) == in_order.balances("GM0344", 2024)
    assert shuffled.balances("GM0363", 2024)["awarded_cents"] == 0
    assert shuffled.national(2024) == in_order.national(2024)

    s.send(live)
    reader = TopicReader(audit_kafka_config(live), audited_topics(live))
    try:
        from_kafka = Replay().read(reader)
    finally:
        reader.close()
    assert from_kafka.national(2024) == in_order.national(2024)
