"""Two projectors in one consumer group over one view: a projector that joins midway takes partitions over
(a rebalance: the first one's reading process is aimed anew and what it had read ahead of them is dropped),
and every event is applied once, by one of them."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from contracts.topics import DEAD_LETTER
from services.common.adapters.sql import create_sql_engine
from services.common.config import load_settings
from services.common.consumer import ProjectionRunner, applied_events
from tests.support.infra import KafkaInfo
from tests.support.toy import TOY_TOPIC, CounterProjection, toy_provenance
from tests.support.toy_kafka import publish_counters

COUNTERS = 12  # spread over the topic's three partitions by their keys
ADDS = 24


def test_a_projector_joining_midway_takes_partitions_over_and_each_event_is_applied_once(
    kafka: KafkaInfo, topic_prefix: str, tmp_path: Path
) -> None:
    settings = load_settings({"IDO_KEYS_DIR": str(tmp_path / "keys"), "IDO_TOPIC_PREFIX": topic_prefix})
    adds = tuple(range(1, ADDS + 1))
    total = publish_counters(kafka.client(), settings, {f"c{c}": adds for c in range(COUNTERS)})
    topic = settings.topic(TOY_TOPIC.name)

    engine = create_sql_engine(f"sqlite:///{tmp_path}/view.sqlite")
    projection = CounterProjection()

    taken_over = threading.Event()

    def slow(apply_batch: Any) -> Any:
        def applied_slowly(connection: Any, topic: str, envelopes: list[Any]) -> None:
            # Slow until the second projector has applied something, so that it joins while the first is midway
            # however long the rebalance takes on a loaded machine (the first still polls between batches). Slow by
            # the event, not the call: one call may apply several polls read ahead (consumer.COALESCED_POLLS).
            if not taken_over.is_set():
                time.sleep(0.06 * len(envelopes))
            apply_batch(connection, topic, envelopes)

        return applied_slowly

    def runner() -> ProjectionRunner:
        own = CounterProjection()  # the same tables, each projector its own slow instance
        own.apply_batch = slow(own.apply_batch)  # type: ignore[method-assign]
        return ProjectionRunner(
            projection=own, engine=engine, topics=[topic], kafka_config=kafka.client(),
            dead_letter_topic=f"{topic_prefix}{DEAD_LETTER.name}", group_id=f"{topic_prefix}group",
            provenance=toy_provenance(settings), parallel=True, poll_settings={"max_poll_records": 5},
        )

    first, second = runner(), runner()
    stop = threading.Event()
    threads = [
        threading.Thread(target=r.run_forever, args=(stop,), kwargs={"retry_after_s": 0.05}) for r in (first, second)
    ]
    try:
        threads[0].start()
        deadline = time.monotonic() + 60
        while first.stats.applied < total // 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.stats.applied < total // 2, "the first projector was too fast for a rebalance midway"
        threads[1].start()
        while first.stats.applied + second.stats.applied < total and time.monotonic() < deadline:
            if second.stats.applied:
                taken_over.set()
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        first.close()
        second.close()
    assert second.stats.applied > 0  # it took partitions over
    assert first.stats.applied + second.stats.applied == total
    with engine.connect() as connection:
        rows = connection.execute(select(projection.table)).all()
        assert sorted(row.events for row in rows) == [ADDS + 1] * COUNTERS
        assert {row.total_cents for row in rows} == {sum(range(1, ADDS + 1))}
        assert connection.execute(select(func.count()).select_from(applied_events)).scalar_one() == total
