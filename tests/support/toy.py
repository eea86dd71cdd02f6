"""A minimal chained aggregate with a test-only contract, to exercise the relay and consumer kit."""

from __future__ import annotations

from typing import Any

from eventsourcing.application import Application
from marshmallow import fields
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, select, update

from contracts.events.fields import Payload
from contracts.provenance import ProvenanceCheck
from contracts.registry import EventContract, register
from contracts.topics import TopicSpec
from services.common.config import Settings
from services.common.domain.chained import ChainedAggregate
from services.common.signing import build_provenance_check

TOY_TOPIC = TopicSpec(name="test.counters.v1", producer="toy", key="counter name", description="tests only")
TOY_OWNERS = {TOY_TOPIC.name: TOY_TOPIC.producer}
"""The toy topic's owner, for the provenance check of consumers of it (``toy_provenance``)."""


def toy_provenance(settings: Settings) -> ProvenanceCheck:
    """The seal check of a consumer of the toy topic, trusting the key set of ``settings``."""
    return build_provenance_check(settings, owners=TOY_OWNERS)


class CounterStartedPayload(Payload):
    name = fields.String(required=True)


class CounterAddedPayload(Payload):
    amount_cents = fields.Integer(strict=True, required=True)


register(EventContract("TestCounterStarted", 1, TOY_TOPIC.name, CounterStartedPayload, "tests only"))
register(EventContract("TestCounterAdded", 1, TOY_TOPIC.name, CounterAddedPayload, "tests only"))


class Counter(ChainedAggregate):
    TOPIC = "ido:TestCounter"
    PRODUCER = "toy"

    class Started(ChainedAggregate.Created):
        EVENT_TYPE = "TestCounterStarted"
        name: str

        def apply(self, aggregate: Any) -> None:
            aggregate.total_cents = 0

    class Added(ChainedAggregate.Event):
        EVENT_TYPE = "TestCounterAdded"
        amount_cents: int

        def apply(self, aggregate: Any) -> None:
            aggregate.total_cents += self.amount_cents

    @classmethod
    def start(cls, name: str) -> Counter:
        return cls._start(cls.Started, stream_id=f"counter-{name}", partition_key=name, name=name)

    def add(self, amount_cents: int) -> None:
        self._record(self.Added, amount_cents=amount_cents)


class ToyApplication(Application):
    name = "toy"


class CounterProjection:
    """Sums each counter's events, counting how often each stream was applied to."""

    name = "test-counters"

    def __init__(self) -> None:
        self.metadata = MetaData()
        self.table = Table(
            "test_counters",
            self.metadata,
            Column("stream_id", String(200), primary_key=True),
            Column("events", Integer, nullable=False),
            Column("total_cents", Integer, nullable=False),
            Column("last_position", Integer, nullable=False),
        )

    def create_tables(self, engine: Engine) -> None:
        self.metadata.create_all(engine)

    def apply_batch(self, connection: Connection, topic: str, envelopes: list[dict[str, Any]]) -> None:
        for envelope in envelopes:
            self.apply(connection, topic, envelope)

    def apply(self, connection: Connection, topic: str, envelope: dict[str, Any]) -> None:
        amount = envelope["payload"].get("amount_cents", 0)
        stream_id = envelope["stream_id"]
        row = connection.execute(select(self.table).where(self.table.c.stream_id == stream_id)).first()
        if row is None:
            connection.execute(
                self.table.insert().values(
                    stream_id=stream_id, events=1, total_cents=amount, last_position=envelope["stream_position"]
                )
            )
            return
        connection.execute(
            update(self.table)
            .where(self.table.c.stream_id == stream_id)
            .values(
                events=row.events + 1,
                total_cents=row.total_cents + amount,
                last_position=envelope["stream_position"],
            )
        )


__all__ = ["Counter", "CounterProjection", "ToyApplication", "TOY_OWNERS", "TOY_TOPIC", "toy_provenance"]
