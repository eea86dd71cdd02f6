"""A crash after the projection applied a batch but before the commit leaves no trace in the view.

Regression: on SQLite a SAVEPOINT taken before the transaction's first write is a transaction of its
own, committed on release; a crash then left journal rows without their offsets or applied ids.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from contracts.canonical import canonical_json
from contracts.topics import DEAD_LETTER
from services.common.adapters.kafka import ensure_topics
from services.common.adapters.sql import create_sql_engine
from services.common.config import load_settings
from services.common.consumer import ProjectionRunner, consumer_offsets
from services.common.domain.chained import recorded_envelope
from services.common.eventstore import build_application
from services.common.signing import seal_envelopes
from tests.support.infra import KafkaInfo
from tests.support.toy import TOY_TOPIC, Counter, CounterProjection, ToyApplication, toy_provenance


class Crash(Exception):
    pass


def _published_and_runner(
    kafka: KafkaInfo, topic_prefix: str, tmp_path: Path, name: str, amounts: tuple[int, ...]
) -> tuple[ProjectionRunner, CounterProjection, Engine]:
    """One counter's events (its start, then each amount) on the toy topic, and a runner for them."""
    topic = f"{topic_prefix}{TOY_TOPIC.name}"
    ensure_topics(kafka.client(), [TOY_TOPIC, DEAD_LETTER], topic_prefix)
    app = build_application(ToyApplication, {"PERSISTENCE_MODULE": "eventsourcing.popo"})
    counter = Counter.start(name)
    for amount in amounts:
        counter.add(amount)
    app.save(counter)
    settings = load_settings({"IDO_KEYS_DIR": str(tmp_path / "keys"), "IDO_TOPIC_PREFIX": topic_prefix})
    recorded = [recorded_envelope(app.mapper, n) for n in app.recorder.select_notifications(start=1, limit=10)]
    seals = seal_envelopes(settings, TOY_TOPIC.name, [e for _k, e in recorded], service=TOY_TOPIC.producer)
    producer = KafkaProducer(**kafka.client(), acks="all")  # the toy topic is a test's own: the admin
    for (key, envelope), headers in zip(recorded, seals, strict=True):
        producer.send(topic, key=key.encode(), value=canonical_json(envelope), headers=headers)
    producer.flush()
    producer.close()
    engine = create_sql_engine(f"sqlite:///{tmp_path}/view.sqlite")
    projection = CounterProjection()
    runner = ProjectionRunner(
        projection=projection, engine=engine, topics=[topic], kafka_config=kafka.client(),
        dead_letter_topic=f"{topic_prefix}{DEAD_LETTER.name}", group_id=f"{topic_prefix}{name}",
        provenance=toy_provenance(settings),
    )
    return runner, projection, engine


def test_a_crash_before_commit_rolls_back_the_whole_batch(kafka: KafkaInfo, topic_prefix: str, tmp_path: Path) -> None:
    runner, projection, engine = _published_and_runner(kafka, topic_prefix, tmp_path, "atomic", (1, 2, 3))

    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise Crash("the process dies after the projection applied the batch, before the commit")

    remember = runner.offsets.remember
    runner.offsets.remember = crash  # type: ignore[method-assign]
    try:
        with pytest.raises(Crash):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                runner.run_once(timeout_ms=500)
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(projection.table)).scalar_one() == 0
            assert connection.execute(select(func.count()).select_from(consumer_offsets)).scalar_one() == 0
        # After the "restart" every event is applied exactly once.
        runner.offsets.remember = remember  # type: ignore[method-assign]
        runner.seek_to_stored(list(runner.consumer.assignment()))
        deadline = time.monotonic() + 30
        while runner.stats.applied < 4 and time.monotonic() < deadline:
            runner.run_once(timeout_ms=500)
    finally:
        runner.close()
    with engine.connect() as connection:
        row = connection.execute(select(projection.table)).one()
    assert (row.events, row.total_cents) == (4, 6)


def test_run_forever_survives_a_failing_view_database_and_applies_every_event_once(
    kafka: KafkaInfo, topic_prefix: str, tmp_path: Path
) -> None:
    """The projector used to exit on a database error and rely on a restart; now it retries in place,
    from the offsets stored with the view (the polled batch was not applied, so it must not be skipped)."""
    runner, projection, engine = _published_and_runner(kafka, topic_prefix, tmp_path, "retried", (1, 2, 3, 4))
    failures = [OperationalError("INSERT", {}, Exception("the view database went away"))] * 3
    apply_batch = projection.apply_batch

    def failing_at_first(*args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        apply_batch(*args, **kwargs)

    projection.apply_batch = failing_at_first  # type: ignore[method-assign]
    stop = threading.Event()
    worker = threading.Thread(target=runner.run_forever, args=(stop,), kwargs={"retry_after_s": 0.05})
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while runner.stats.applied < 5 and time.monotonic() < deadline and worker.is_alive():
            time.sleep(0.05)
        assert worker.is_alive(), "run_forever gave up"
    finally:
        stop.set()
        worker.join(10)
        runner.close()
    assert not failures
    with engine.connect() as connection:
        row = connection.execute(select(projection.table)).one()
    assert (row.events, row.total_cents) == (5, 10)
