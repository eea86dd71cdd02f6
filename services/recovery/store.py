"""`ido recover store SERVICE`: a lost event store re-recorded from the service's topic.

Every topic keeps every event forever, and each message is the event's envelope exactly as recorded (its
``hash`` chained when it was recorded): so the store can be written again with the same stream ids,
positions, event ids, times and hashes. Nothing is written unless all of it can be:

- the store must be empty (no event, no relay position): a recovery never mixes with what a store holds;
- the topic is read and judged by the audit's own check (``services.audit.verify.scan_topics``): every
  stream's chain whole from position 1 and every seal proving its message; one break refuses it all;
- each event is rebuilt through the service's own mapper (with its record key, so the restarted relay
  seals it again) and read back: the envelope it gives must be, byte for byte, the message it came from.

Events are re-recorded in each partition's order (a stream lives in one partition, so its events keep
their order), partitions merged by ``recorded_at``; copies the relay re-sent after a crash are dropped by
``event_id``. The relay's position is set to the last event re-recorded: all of them are on the topic
already, so the restarted relay publishes only what is recorded after. docs/decisions.md says why.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent, Tracking
from kafka import TopicPartition

from contracts.canonical import canonical_json
from services.audit.chain import Chains
from services.audit.sources import topic_of_service
from services.audit.verify import scan_store, scan_topics
from services.common.config import Settings
from services.common.definition import service_definition
from services.common.domain.chained import event_state_of, recorded_event
from services.common.eventstore import build_application
from services.common.recovery_refused import RecoveryRefused
from services.common.relay import relay_name
from services.common.side_rows import SIDE_ROWS
from services.common.signing import build_provenance_check

PAGE_EVENTS = 500
"""Events written per transaction (a relay batch): a page of a large store is not held in one transaction."""


@dataclass(frozen=True)
class Message:
    partition: int
    offset: int
    recorded_at: str
    key: str
    envelope: dict[str, Any]
    value: bytes

    @property
    def where(self) -> str:
        return f"partition {self.partition} offset {self.offset}"


@dataclass(frozen=True)
class StoreRecovered:
    service: str
    topic: str
    events: int
    streams: int
    copies_dropped: int
    relay_position: int

    def lines(self) -> list[str]:
        return [
            f"recovered {self.service} from {self.topic}: {self.events} events in {self.streams} streams "
            f"({self.copies_dropped} re-sent copies dropped); relay position {self.relay_position}",
            "the store's stream heads equal the topic's; every chain verified",
        ]


def recover_store(settings: Settings, service: str) -> StoreRecovered:
    """Re-records ``service``'s store from its topic; raises ``RecoveryRefused`` having written nothing."""
    definition = service_definition(service)
    topic = topic_of_service(settings, service)
    application = build_application(definition.application_class, settings.eventsourcing_env(service))
    try:
        refuse_a_non_empty_store(application, topic)
        messages, chains = verified_messages(settings, topic)
        ordered = list(in_recorded_order(messages))
        stored = [_rebuilt(application, message) for message in ordered]
        last_id = _write(application, definition.recorded_side_rows, ordered, stored)
        if last_id:
            application.factory.tracking_recorder().insert_tracking(Tracking(relay_name(topic), last_id))
    finally:
        application.close()
    _compare_heads(settings, service, chains)
    return StoreRecovered(service, topic, len(ordered), len(chains.links), chains.copies, last_id)


def refuse_a_non_empty_store(application: Application, topic: str) -> None:
    recorder: Any = application.recorder
    count = _count(recorder, recorder.events_table_name)
    refusals = []
    if count:
        refusals.append(f"the store is not empty: table {recorder.events_table_name} holds {count} events")
    position = application.factory.tracking_recorder().max_tracking_id(relay_name(topic))
    if position:
        refusals.append(f"the store is not empty: the relay of {topic} has a position ({position})")
    if refusals:
        raise RecoveryRefused([*refusals, "nothing written (recover only into an empty store)"])


def _count(recorder: Any, table: str) -> int:
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT COUNT(*) AS events FROM {table}")  # noqa: S608 - the recorder's own table name
        row = cursor.fetchone()
    return int(row["events"])


def verified_messages(settings: Settings, topic: str) -> tuple[list[list[Message]], Chains]:
    """Every message of ``topic`` by partition, once the audit's check found no break in any of them."""
    by_partition: dict[int, list[Message]] = {}
    unreadable: list[str] = []

    def keep(tp: TopicPartition, record: Any) -> None:
        try:
            envelope = json.loads(record.value)
            key = record.key.decode("utf-8")
            recorded_at = envelope["recorded_at"]
        except (AttributeError, TypeError, ValueError, KeyError) as error:
            unreadable.append(f"partition {tp.partition} offset {record.offset}: not an event's message ({error})")
            return
        message = Message(tp.partition, record.offset, recorded_at, key, envelope, record.value)
        by_partition.setdefault(tp.partition, []).append(message)

    scan = scan_topics(settings, [topic], build_provenance_check(settings), on_record=keep)[topic]
    if scan.missing:
        raise RecoveryRefused([f"topic {topic} does not exist", "nothing written"])
    problems = [f"BROKEN {found.describe()}" for found in (*scan.chains.breaks(), *scan.refused)]
    problems += [f"BROKEN {line}" for line in unreadable]
    problems += _keys_that_change(by_partition.values())
    if problems:
        raise RecoveryRefused([*problems, f"nothing written: {topic} does not hold an intact history"])
    return [by_partition[p] for p in sorted(by_partition)], scan.chains


def _keys_that_change(partitions: Any) -> list[str]:
    """A stream keeps its partition key for good; the seal does not cover the key, so it is checked here."""
    keys: dict[str, tuple[str, str]] = {}
    found = []
    for messages in partitions:
        for message in messages:
            stream_id = message.envelope["stream_id"]
            first = keys.setdefault(stream_id, (message.key, message.where))
            if first[0] != message.key:
                found.append(
                    f"BROKEN stream {stream_id} ({message.where}): key {message.key!r}, "
                    f"but {first[0]!r} at {first[1]}"
                )
    return found


def in_recorded_order(partitions: Sequence[Sequence[Message]]) -> Iterator[Message]:
    """Each partition in its own order, partitions merged by ``recorded_at``; re-sent copies dropped."""
    seen: set[str] = set()
    for message in heapq.merge(*partitions, key=lambda m: (m.recorded_at, m.partition)):
        event_id = message.envelope["event_id"]
        if event_id in seen:
            continue
        seen.add(event_id)
        yield message


def _rebuilt(application: Application, message: Message) -> StoredEvent:
    """The stored event of ``message``, checked to give back the very message the relay would publish."""
    try:
        originator_id, version, topic, state = event_state_of(message.key, message.envelope)
    except Exception as error:  # noqa: BLE001 - an event type the service does not know: named, nothing written
        raise RecoveryRefused([
            f"event {message.envelope.get('event_id')} ({message.where}) cannot be re-recorded: {error!r}",
            "nothing written",
        ]) from None
    stored: StoredEvent = application.mapper.stored_event_of(originator_id, version, topic, state)  # type: ignore[attr-defined]
    key, envelope, _mac = recorded_event(application.mapper, stored)
    if key != message.key or canonical_json(envelope) != message.value:
        raise RecoveryRefused([
            f"event {message.envelope['event_id']} ({message.where}) would not be re-recorded exactly: "
            "its stored form gives another message",
            "nothing written",
        ])
    return stored


def _write(application: Application, side_rows_of: Any, messages: Sequence[Message],
           stored: Sequence[StoredEvent]) -> int:
    """Writes the events page by page, each page with its side rows; returns the last notification id."""
    for start in range(0, len(stored), PAGE_EVENTS):
        page = messages[start : start + PAGE_EVENTS]
        kwargs: dict[str, Any] = {}
        if side_rows_of is not None:
            kwargs[SIDE_ROWS] = side_rows_of(application, [(m.envelope["event_id"], m.key) for m in page])
        application.recorder.insert_events(list(stored[start : start + PAGE_EVENTS]), **kwargs)
    return application.recorder.max_notification_id() or 0


def _compare_heads(settings: Settings, service: str, topic_chains: Chains) -> None:
    """The store as the audit reads it: every stream's head and chain must be the topic's."""
    store = scan_store(settings, service).chains
    problems = [f"BROKEN {found.describe()}" for found in store.breaks()]
    for stream_id in sorted(set(store.links) | set(topic_chains.links)):
        ours = store.head(stream_id) if stream_id in store.links else None
        theirs = topic_chains.head(stream_id) if stream_id in topic_chains.links else None
        if ours is None or theirs is None or (ours.position, ours.event_id, ours.hash) != (
            theirs.position, theirs.event_id, theirs.hash
        ):
            problems.append(f"stream {stream_id}: store head {ours and ours.position}, topic head "
                            f"{theirs and theirs.position}")
    if problems:
        raise RuntimeError("the recovered store differs from its topic: " + "; ".join(problems))
