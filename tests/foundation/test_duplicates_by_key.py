"""The projector finds an event applied before by the applied ids' primary key (services/common/consumer.py,
``_apply_topic``): a poll's ids are recorded first, under the savepoint of its events, and only a refusal
by that key (or by the projection) makes it look them up. What must hold, on SQLite and on PostgreSQL: a copy of
an event applied in an earlier poll is dropped and counted once as a duplicate, the other events of its poll
(in its partition and in others) are applied exactly once, a refused event is still dead-lettered alone and
its id not recorded, and a poll without duplicates asks nothing about the applied ids."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from services.common.adapters.sql import create_sql_engine
from services.common.config import load_settings
from services.common.consumer import ProjectionRunner, Rejected, applied_events, consumer_offsets
from tests.support.toy import CounterProjection

TOPIC = "ido.toy-counters.v1"
REFUSED_AMOUNT = 50


class _RefusingProjection(CounterProjection):
    def apply(self, connection: Any, topic: str, envelope: dict[str, Any]) -> None:
        if envelope["payload"]["amount_cents"] == REFUSED_AMOUNT:
            raise Rejected(f"amount {REFUSED_AMOUNT} refused")
        super().apply(connection, topic, envelope)


class _NoBroker:
    """The runner's group consumer: ``_apply_checked`` never reads through it."""

    def __init__(self, **_settings: Any) -> None:
        pass

    def subscribe(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class _DeadLetters:
    sent: list[tuple[str, bytes]] = field(default_factory=list)

    def send(self, topic: str, *, key: Any, value: bytes, headers: Any) -> None:
        self.sent.append((topic, value))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class _Partition:
    topic: str
    partition: int
    offsets: list[int]
    envelopes: list[dict[str, Any]]

    def record(self, index: int) -> Any:
        return SimpleNamespace(
            topic=self.topic, partition=self.partition, offset=self.offsets[index], key=None,
            value=repr(self.envelopes[index]).encode(), headers=[],
        )


def _envelope(stream: str, position: int, amount_cents: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "stream_id": stream, "stream_position": position,
        "payload": {"amount_cents": amount_cents},
    }


class _Poller:
    """Hands the runner polls as the reading process would: each partition's envelopes at its next offsets."""

    def __init__(self, runner: ProjectionRunner):
        self.runner = runner
        self.next_offset: dict[int, int] = {}

    def poll(self, partitions: dict[int, list[dict[str, Any]]]) -> None:
        checked = []
        for partition, envelopes in partitions.items():
            start = self.next_offset.get(partition, 0)
            offsets = list(range(start, start + len(envelopes)))
            self.next_offset[partition] = start + len(envelopes)
            checked.append((_Partition(TOPIC, partition, offsets, envelopes), list(enumerate(envelopes)), []))
        self.runner._apply_checked(checked)


def _runner(engine: Engine, projection: CounterProjection) -> tuple[ProjectionRunner, _DeadLetters]:
    dead_letters = _DeadLetters()
    runner = ProjectionRunner(
        projection=projection, engine=engine, topics=[TOPIC], kafka_config={}, dead_letter_topic="dead",
        consumer_factory=_NoBroker, dead_letter_producer=dead_letters,  # type: ignore[arg-type]
        provenance=None, parallel=False,
    )
    return runner, dead_letters


@pytest.fixture
def engine(store_env: dict[str, str]) -> Any:
    engine = create_sql_engine(load_settings(store_env).view_db_url)
    yield engine
    engine.dispose()


def _lookups_of_applied_ids(engine: Engine) -> list[str]:
    """Every SELECT that reads the applied ids, as the runner sends it (the bulk insert is not one)."""
    seen: list[str] = []

    def _before(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        text = statement.lower()
        if text.lstrip().startswith("select") and "applied_events" in text:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", _before)
    return seen


def test_a_copy_of_an_event_applied_in_an_earlier_poll_is_dropped_and_the_rest_of_its_poll_applied_once(
    engine: Engine,
) -> None:
    projection = CounterProjection()
    runner, dead_letters = _runner(engine, projection)
    poller = _Poller(runner)
    first = [_envelope("counter-a", 1, 10), _envelope("counter-b", 1, 20), _envelope("counter-a", 2, 30)]
    poller.poll({0: first})
    lookups = _lookups_of_applied_ids(engine)

    later_a, later_b, other = _envelope("counter-a", 3, 40), _envelope("counter-b", 2, 50), _envelope("counter-c", 1, 7)
    # the second send of first[1] (a relay's retry) between two new events, and a partition of new events beside it
    poller.poll({0: [later_a, first[1], later_b], 1: [other]})

    assert (runner.stats.applied, runner.stats.duplicates, dead_letters.sent) == (6, 1, [])
    assert len(lookups) == 1, "the copy was found by the applied ids' key, then looked up once"
    with engine.connect() as connection:
        totals = {row.stream_id: (row.events, row.total_cents) for row in connection.execute(select(projection.table))}
        recorded = connection.execute(select(func.count()).select_from(applied_events)).scalar_one()
        stored = {row.partition: row.next_offset for row in connection.execute(select(consumer_offsets))}
    assert totals == {"counter-a": (3, 80), "counter-b": (2, 70), "counter-c": (1, 7)}
    assert recorded == 6
    assert stored == {0: 6, 1: 1}


def test_a_poll_without_copies_asks_nothing_about_the_applied_ids(engine: Engine) -> None:
    projection = CounterProjection()
    runner, _dead_letters = _runner(engine, projection)
    poller = _Poller(runner)
    poller.poll({0: [_envelope("counter-a", 1, 10)]})
    lookups = _lookups_of_applied_ids(engine)

    poller.poll({0: [_envelope("counter-a", n, 10) for n in range(2, 200)], 1: [_envelope("counter-b", 1, 5)]})

    assert lookups == []
    assert (runner.stats.applied, runner.stats.duplicates) == (200, 0)


def test_a_copy_and_a_refusal_in_one_poll_drop_the_copy_and_dead_letter_the_refused_event_alone(
    engine: Engine,
) -> None:
    projection = _RefusingProjection()
    runner, dead_letters = _runner(engine, projection)
    poller = _Poller(runner)
    applied = _envelope("counter-a", 1, 10)
    poller.poll({0: [applied]})

    refused, kept = _envelope("counter-a", 2, REFUSED_AMOUNT), _envelope("counter-a", 3, 30)
    poller.poll({0: [applied, refused, kept], 1: [_envelope("counter-b", 1, 5)]})

    assert (runner.stats.applied, runner.stats.duplicates, runner.stats.dead_lettered) == (3, 1, 1)
    assert len(dead_letters.sent) == 1
    with engine.connect() as connection:
        totals = {row.stream_id: (row.events, row.total_cents) for row in connection.execute(select(projection.table))}
        recorded = set(connection.execute(select(applied_events.c.event_id)).scalars())
    assert totals == {"counter-a": (2, 40), "counter-b": (1, 5)}
    assert refused["event_id"] not in recorded, "a refused event's id is not recorded: its genuine copy may come"
    assert applied["event_id"] in recorded and kept["event_id"] in recorded
