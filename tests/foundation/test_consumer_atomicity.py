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
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from contracts.topics import DEAD_LETTER
from services.common.adapters.sql import create_sql_engine
from services.common.config import load_settings
from services.common.consumer import ProjectionRunner, applied_events, consumer_offsets
from tests.support.infra import KafkaInfo
from tests.support.toy import TOY_TOPIC, CounterProjection, toy_provenance
from tests.support.toy_kafka import publish_counters


class Crash(Exception):
    pass


def _published_and_runner(
    kafka: KafkaInfo, topic_prefix: str, tmp_path: Path, name: str, amounts: tuple[int, ...], **options: Any
) -> tuple[ProjectionRunner, CounterProjection, Engine]:
    """One counter's events (its start, then each amount) on the toy topic, and a runner for them."""
    settings = load_settings({"IDO_KEYS_DIR": str(tmp_path / "keys"), "IDO_TOPIC_PREFIX": topic_prefix})
    publish_counters(kafka.client(), settings, {name: amounts})
    topic = settings.topic(TOY_TOPIC.name)
    engine = create_sql_engine(f"sqlite:///{tmp_path}/view.sqlite")
    projection = CounterProjection()
    runner = ProjectionRunner(
        projection=projection, engine=engine, topics=[topic], kafka_config=kafka.client(),
        dead_letter_topic=f"{topic_prefix}{DEAD_LETTER.name}", group_id=f"{topic_prefix}{name}",
        provenance=toy_provenance(settings), **options,
    )
    return runner, projection, engine


def test_a_crash_before_commit_rolls_back_the_whole_batch(kafka: KafkaInfo, topic_prefix: str, tmp_path: Path) -> None:
    runner, projection, engine = _published_and_runner(kafka, topic_prefix, tmp_path, "atomic", (1, 2, 3))

    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise Crash("the process dies after the projection applied the batch, before the commit")

    remember = runner.offsets.remember_all  # the applied ids of a poll's batches of the topic, after the projection
    runner.offsets.remember_all = crash  # type: ignore[method-assign]
    try:
        with pytest.raises(Crash):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                runner.run_once(timeout_ms=500)
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(projection.table)).scalar_one() == 0
            assert connection.execute(select(func.count()).select_from(consumer_offsets)).scalar_one() == 0
        # After the "restart" every event is applied exactly once.
        runner.offsets.remember_all = remember  # type: ignore[method-assign]
        runner.rewind()
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


def _applied_once(runner: ProjectionRunner, engine: Engine, projection: CounterProjection, events: int) -> None:
    """Runs ``runner`` until ``events`` are applied; the counter then holds each event once."""
    deadline = time.monotonic() + 60
    while runner.stats.applied < events and time.monotonic() < deadline:
        runner.run_once(timeout_ms=300)
    with engine.connect() as connection:
        assert connection.execute(select(projection.table.c.events)).scalars().all() == [events]
        assert connection.execute(select(func.count()).select_from(applied_events)).scalar_one() == events


@pytest.mark.parametrize("parallel", [True, False], ids=["a reading process", "read in the projector"])
def test_a_poll_that_failed_is_read_again_even_when_nobody_rewinds(
    kafka: KafkaInfo, topic_prefix: str, tmp_path: Path, parallel: bool
) -> None:
    """After a failed poll the reading process has read on: a caller that simply calls ``run_once`` again (no
    ``rewind``, as ``run_forever`` does) must not get the polls after it, which would skip it."""
    amounts = tuple(range(1, 40))
    # polls of at most 5 messages: the failed one is not the last
    runner, projection, engine = _published_and_runner(
        kafka, topic_prefix, tmp_path, "no-rewind", amounts, poll_settings={"max_poll_records": 5}, parallel=parallel
    )
    failures = [OperationalError("INSERT", {}, Exception("the view database went away"))]
    apply_batch = projection.apply_batch

    def failing_once(*args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        apply_batch(*args, **kwargs)

    projection.apply_batch = failing_once  # type: ignore[method-assign]
    try:
        with pytest.raises(OperationalError):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                runner.run_once(timeout_ms=300)
        _applied_once(runner, engine, projection, len(amounts) + 1)
    finally:
        runner.close()


def test_a_reading_process_that_dies_is_replaced_and_reads_from_the_stored_offsets(
    kafka: KafkaInfo, topic_prefix: str, tmp_path: Path
) -> None:
    amounts = tuple(range(1, 30))
    runner, projection, engine = _published_and_runner(kafka, topic_prefix, tmp_path, "reader-dies", amounts)
    runner.parallel = True  # as on two cores or more
    try:
        deadline = time.monotonic() + 30
        while runner._reading is None or not runner._reading.aimed:
            assert time.monotonic() < deadline
            runner.run_once(timeout_ms=300)
        dead = runner._reading
        dead._process.kill()
        dead._process.join()
        with pytest.raises(RuntimeError, match="the reading process"):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                runner.run_once(timeout_ms=300)
        assert runner._reading is None  # the next call starts another
        _applied_once(runner, engine, projection, len(amounts) + 1)
        assert runner._reading is not dead
    finally:
        runner.close()


def test_a_reading_process_that_never_starts_is_replaced(
    kafka: KafkaInfo, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reading process stuck before READY (as one forked while a thread logged was: services/common/forking.py)
    is killed after ``READY_WITHIN_S`` and the projector's call raises; the next call starts another, which
    applies every event once. Without the bound the projector read nothing, for good, and said nothing."""
    import services.common.assigned_reader as assigned_reader

    amounts = tuple(range(1, 30))
    runner, projection, engine = _published_and_runner(kafka, topic_prefix, tmp_path, "reader-stuck", amounts)
    runner.parallel = True  # as on two cores or more
    genuine = assigned_reader._read_and_send
    monkeypatch.setattr(assigned_reader, "READY_WITHIN_S", 1.0)
    monkeypatch.setattr(assigned_reader, "_read_and_send", lambda *_args: threading.Event().wait())
    try:
        with pytest.raises(RuntimeError, match="did not start in time"):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                runner.run_once(timeout_ms=300)
        assert runner._reading is None  # the next call starts another
        monkeypatch.setattr(assigned_reader, "_read_and_send", genuine)  # the next fork is a sound one
        _applied_once(runner, engine, projection, len(amounts) + 1)
    finally:
        runner.close()
