"""A poll's batches of one topic's partitions are applied together (services/common/consumer.py,
``_apply_topic``): one savepoint, one bulk insert of applied ids and one statement for the offsets of all
partitions. What must not change with it: a refusal by the projection dead-letters that event alone, every
other event of every partition is applied exactly once, and each partition's offset is stored with the view,
on SQLite and on PostgreSQL (whose upsert is its own statement)."""

from __future__ import annotations

import time
from collections import Counter as Tally
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Connection, func, select

from contracts.topics import DEAD_LETTER
from services.common.adapters.sql import create_sql_engine
from services.common.config import Settings
from services.common.consumer import ProjectionRunner, Rejected, applied_events, consumer_offsets
from tests.support.infra import KafkaInfo
from tests.support.toy import TOY_TOPIC, CounterProjection, toy_provenance
from tests.support.toy_kafka import publish_counters

FIRST = {f"first-{n}": (n, 7 * n) for n in range(1, 10)}
COUNTERS = {f"counter-{n}": (n, 10 * n, 100 * n) for n in range(1, 10)}
REFUSED_AMOUNT = 50  # counter-5's second amount


class RefusingProjection(CounterProjection):
    """The toy counters, refusing one amount as a projection refuses an event it must not apply."""

    def apply(self, connection: Connection, topic: str, envelope: dict[str, Any]) -> None:
        if envelope["payload"].get("amount_cents") == REFUSED_AMOUNT:
            raise Rejected(f"amount {REFUSED_AMOUNT} refused")
        super().apply(connection, topic, envelope)


def _end_offsets(kafka: KafkaInfo, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(**kafka.client())
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


@pytest.mark.parametrize("parallel", [True, False], ids=["a reading process", "read in the projector"])
def test_a_refusal_among_a_topics_partitions_dead_letters_that_event_alone(
    kafka: KafkaInfo, topic_prefix: str, settings: Settings, tmp_path: Path, parallel: bool
) -> None:
    settings = replace(settings, topic_prefix=topic_prefix)
    topic = settings.topic(TOY_TOPIC.name)
    engine = create_sql_engine(settings.view_db_url)
    projection = RefusingProjection()
    # Polls large enough to hold every partition's messages: the refusal comes in a poll of several partitions.
    runner = ProjectionRunner(
        projection=projection, engine=engine, topics=[topic], kafka_config=kafka.client(),
        dead_letter_topic=f"{topic_prefix}{DEAD_LETTER.name}", group_id=f"{topic_prefix}per-topic",
        provenance=toy_provenance(settings), poll_settings={"max_poll_records": 500}, parallel=parallel,
    )
    polls: list[int] = []
    apply_poll = runner._apply_poll

    def counting(connection: Any, checked: list[Any], applied_now: set[str], refused_all: list[Any]) -> int:
        polls.append(len({(batch[0].topic, batch[0].partition) for batch in checked}))
        return apply_poll(connection, checked, applied_now, refused_all)

    runner._apply_poll = counting  # type: ignore[method-assign]
    published = 0
    try:
        # first offsets and applied ids stored, then a second round updates them (the upsert's other branch)
        for counters in (FIRST, COUNTERS):
            published += publish_counters(kafka.client(), settings, counters)
            deadline = time.monotonic() + 60
            while runner.stats.applied + runner.stats.dead_lettered < published and time.monotonic() < deadline:
                runner.run_once(timeout_ms=300)
    finally:
        runner.close()
    ends = _end_offsets(kafka, topic)
    assert max(polls) >= 2, f"no poll held several partitions: {polls}"

    assert (runner.stats.applied, runner.stats.dead_lettered, runner.stats.duplicates) == (published - 1, 1, 0)
    with engine.connect() as connection:
        totals = {row.stream_id: (row.events, row.total_cents) for row in connection.execute(select(projection.table))}
        remembered = connection.execute(select(func.count()).select_from(applied_events)).scalar_one()
        stored = {
            row.partition: row.next_offset
            for row in connection.execute(select(consumer_offsets).where(consumer_offsets.c.topic == topic))
        }
    expected = {}
    for name, amounts in {**FIRST, **COUNTERS}.items():
        kept = [amount for amount in amounts if amount != REFUSED_AMOUNT]
        expected[name] = (1 + len(kept), sum(kept))
    assert sorted(totals.values()) == sorted(expected.values())
    assert Tally(events for events, _total in totals.values())[3] == 10  # the first nine, and counter-5 less one
    assert remembered == published - 1
    assert stored == {partition: end for partition, end in ends.items() if end > 0}
    engine.dispose()
