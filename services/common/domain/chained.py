"""Aggregates whose events carry their integration envelope's hash chain.

The hash is computed when an event is triggered and stored with it, so the event store itself
can be verified, and the relay can rebuild the exact envelope from a stored event alone.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic, resolve_topic

from contracts.canonical import GENESIS_HASH, compute_hash, format_utc, parse_utc
from services.common.domain.event_ids import new_event_id

STREAM_NAMESPACE = uuid5(NAMESPACE_URL, "urn:ido-ledger:stream")

METADATA_FIELDS = frozenset(
    {
        "originator_id", "originator_version", "timestamp", "originator_topic",
        "event_id", "stream_id", "partition_key", "producer", "occurred_at", "prev_hash", "hash",
        "record_mac",  # the writer's MAC on a stored event (services/common/signing.py), never payload
    }
)

TChained = TypeVar("TChained", bound="ChainedAggregate")


def stream_uuid(stream_id: str) -> UUID:
    """The aggregate id of a named stream: derived, so a stream can be found by its name."""
    return uuid5(STREAM_NAMESPACE, stream_id)


def build_envelope(
    *,
    event_id: str,
    event_type: str,
    schema_version: int,
    stream_id: str,
    stream_position: int,
    occurred_at: str,
    recorded_at: str,
    producer: str,
    payload: dict[str, Any],
    prev_hash: str,
) -> dict[str, Any]:
    envelope = {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": schema_version,
        "stream_id": stream_id,
        "stream_position": stream_position,
        "occurred_at": occurred_at,
        "recorded_at": recorded_at,
        "producer": producer,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    envelope["hash"] = compute_hash(envelope)
    return envelope


def payload_of(event: Any) -> dict[str, Any]:
    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.name not in METADATA_FIELDS}


def envelope_of(event: Any) -> dict[str, Any]:
    """The integration envelope of a stored chained event, with its stored hash."""
    envelope = build_envelope(
        event_id=event.event_id,
        event_type=type(event).EVENT_TYPE,
        schema_version=getattr(type(event), "class_version", 1),
        stream_id=event.stream_id,
        stream_position=event.originator_version,
        occurred_at=event.occurred_at,
        recorded_at=format_utc(event.timestamp),
        producer=event.producer,
        payload=payload_of(event),
        prev_hash=event.prev_hash,
    )
    # The stored hash is what was chained; a recomputed one differing from it means tampering.
    envelope["hash"] = event.hash
    return envelope


def recorded_envelope(mapper: Any, stored_event: Any) -> tuple[str, dict[str, Any]]:
    """(partition key, envelope) of a stored event exactly as it was recorded (``recorded_event``)."""
    key, envelope, _mac = recorded_event(mapper, stored_event)
    return key, envelope


def recorded_event(mapper: Any, stored_event: Any) -> tuple[str, dict[str, Any], str | None]:
    """(partition key, envelope, record MAC or None) of a stored event exactly as it was recorded.

    Built from the stored state before eventsourcing's upcasters run: an event recorded as
    schema v1 stays v1 on the wire and keeps the hash it was chained with, even after its class
    has moved on to v2 and upcasts old events when aggregates are loaded.
    """
    state = stored_event.state
    if mapper.cipher:
        state = mapper.cipher.decrypt(state)
    if mapper.compressor:
        state = mapper.compressor.decompress(state)
    fields = mapper.transcoder.decode(state)
    schema_version = fields.pop("class_version", 1)
    topic = stored_event.topic
    event_type = topic.split(":", 1)[1] if topic.startswith("ido:") else resolve_topic(topic).EVENT_TYPE
    envelope = {
        "event_id": fields["event_id"],
        "event_type": event_type,
        "schema_version": schema_version,
        "stream_id": fields["stream_id"],
        "stream_position": stored_event.originator_version,
        "occurred_at": fields["occurred_at"],
        "recorded_at": format_utc(fields["timestamp"]),
        "producer": fields["producer"],
        "payload": {k: v for k, v in fields.items() if k not in METADATA_FIELDS},
        "prev_hash": fields["prev_hash"],
        "hash": fields["hash"],
    }
    return fields["partition_key"], envelope, fields.get("record_mac")


def event_state_of(key: str, envelope: dict[str, Any]) -> tuple[UUID, int, str, dict[str, Any]]:
    """(originator id, version, stored topic, state) of the event ``envelope`` was published from: the
    inverse of ``recorded_event``, for `ido recover store`, which re-records a lost store from its topic.

    The state is what the event's class would hold (its ``vars`` without the originator's id and version),
    so the mapper stores it as the service did and ``recorded_event`` gives back this very envelope; the
    class is found by the stable stored topic (``ido:<EventType>``), which needs the service's domain
    imported. A first event also names its aggregate's class (``originator_topic``): the aggregate the
    event class is declared in. The schema version is the envelope's, not the class's: an event recorded as
    v1 stays v1 (it keeps the hash it was chained with) and is upcast when loaded, as it was before.
    """
    topic = f"ido:{envelope['event_type']}"
    event_class = resolve_topic(topic)
    state: dict[str, Any] = {
        "timestamp": parse_utc(envelope["recorded_at"]),
        "event_id": envelope["event_id"],
        "stream_id": envelope["stream_id"],
        "partition_key": key,
        "producer": envelope["producer"],
        "occurred_at": envelope["occurred_at"],
        "prev_hash": envelope["prev_hash"],
        "hash": envelope["hash"],
        **envelope["payload"],
    }
    if envelope["schema_version"] != 1:
        state["class_version"] = envelope["schema_version"]
    if "originator_topic" in {f.name for f in dataclasses.fields(event_class)}:
        state["originator_topic"] = get_topic(_declaring_class(event_class))
    return stream_uuid(envelope["stream_id"]), envelope["stream_position"], topic, state


def _declaring_class(event_class: type[Any]) -> type[Any]:
    """The class an event class is declared in (``Grant`` of ``Grant.Awarded``)."""
    found: Any = sys.modules[event_class.__module__]
    for name in event_class.__qualname__.split(".")[:-1]:
        found = getattr(found, name)
    return found


def _chain_fields(
    event_class: type[Any],
    *,
    stream_id: str,
    partition_key: str,
    producer: str,
    position: int,
    prev_hash: str,
    occurred_at: str | None,
    payload: dict[str, Any],
    event_id: str | None = None,
) -> dict[str, Any]:
    timestamp = event_class.create_timestamp()
    recorded_at = format_utc(timestamp)
    event_id = event_id or new_event_id()
    envelope = build_envelope(
        event_id=event_id,
        event_type=event_class.EVENT_TYPE,
        schema_version=getattr(event_class, "class_version", 1),
        stream_id=stream_id,
        stream_position=position,
        occurred_at=occurred_at or recorded_at,
        recorded_at=recorded_at,
        producer=producer,
        payload=payload,
        prev_hash=prev_hash,
    )
    return {
        "timestamp": timestamp,
        "event_id": event_id,
        "stream_id": stream_id,
        "partition_key": partition_key,
        "producer": producer,
        "occurred_at": envelope["occurred_at"],
        "prev_hash": prev_hash,
        "hash": envelope["hash"],
        **payload,
    }


class ChainedAggregate(Aggregate):
    """Base of every aggregate whose events are published: each event extends the stream's chain."""

    PRODUCER: ClassVar[str] = ""

    if TYPE_CHECKING:  # set by the events; not dataclass fields, so eventsourcing builds no __init__ from them
        stream_id: str
        partition_key: str
        chain_head: str
        last_event_id: str

    class Event(Aggregate.Event):
        EVENT_TYPE: ClassVar[str] = ""

        def __init_subclass__(cls, **kwargs: Any) -> None:
            # The stored topic is the stable event type, never the module path, so classes can move.
            super().__init_subclass__(**kwargs)
            # eventsourcing redefines nested event classes as subclasses of the aggregate's own
            # Event class; the redefinition inherits EVENT_TYPE and is the one that gets stored.
            if cls.EVENT_TYPE:
                cls.TOPIC = f"ido:{cls.EVENT_TYPE}"  # type: ignore[attr-defined]
            elif "TOPIC" not in cls.__dict__:
                # Base classes eventsourcing derives per aggregate; never triggered, never stored.
                cls.TOPIC = f"ido-base:{cls.__module__}:{cls.__qualname__}"  # type: ignore[attr-defined]

        event_id: str
        stream_id: str
        partition_key: str
        producer: str
        occurred_at: str
        prev_hash: str
        hash: str

        def mutate(self, aggregate: Any) -> Any:
            aggregate = super().mutate(aggregate)
            aggregate.chain_head = self.hash
            aggregate.last_event_id = self.event_id
            return aggregate

    class Created(Event, Aggregate.Created):
        def mutate(self, aggregate: Any) -> Any:
            aggregate = super().mutate(aggregate)
            aggregate.stream_id = self.stream_id
            aggregate.partition_key = self.partition_key
            aggregate.chain_head = self.hash
            aggregate.last_event_id = self.event_id
            return aggregate

    @classmethod
    def _start(
        cls: type[TChained],
        event_class: type[Any],
        *,
        stream_id: str,
        partition_key: str,
        occurred_at: str | None = None,
        event_id: str | None = None,
        **payload: Any,
    ) -> TChained:
        """Creates the aggregate of a named stream with its first (genesis-chained) event (``event_id``: as
        for ``_record``)."""
        fields = _chain_fields(
            event_class,
            stream_id=stream_id,
            partition_key=partition_key,
            producer=cls.PRODUCER,
            position=cls.INITIAL_VERSION,
            prev_hash=GENESIS_HASH,
            occurred_at=occurred_at,
            payload=payload,
            event_id=event_id,
        )
        return cls._create(event_class, id=stream_uuid(stream_id), **fields)

    def _record(
        self, event_class: type[Any], *, occurred_at: str | None = None, event_id: str | None = None, **payload: Any
    ) -> None:
        """Triggers the next event of this stream, chained to the current head.

        ``event_id``: given by a command whose re-run must recognise its own event (derived from its
        Idempotency-Key); else a new random one."""
        fields = _chain_fields(
            event_class,
            stream_id=self.stream_id,
            partition_key=self.partition_key,
            producer=self.PRODUCER,
            position=self.version + 1,
            prev_hash=self.chain_head,
            occurred_at=occurred_at,
            payload=payload,
            event_id=event_id,
        )
        self.trigger_event(event_class, **fields)
