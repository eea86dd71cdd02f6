"""The consumer kit: topics -> a read model, each event applied exactly once.

For every (topic, partition) the next offset is stored in the view's own database, in the same
transaction as the change the message made, and each applied ``event_id`` is remembered there too.
So a crash at any moment neither loses nor double-applies an event, and a re-sent duplicate is
dropped. Kafka's group offsets are not the truth; on assignment we seek to the stored offsets.
A message that breaks its contract goes to the dead-letter topic and the consumer carries on.
With a ``provenance`` check (the ledger's projector always has one), so does a message that is not
sealed by its topic's owning service (``contracts/provenance.py``): unsigned, wrongly signed, or
signed by a key that does not own the topic. It is never counted, and its event id is not
remembered, so the genuine event still applies when it comes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    any_,
    bindparam,
    delete,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError

from contracts.message_check import MessageCheck
from contracts.provenance import ProvenanceCheck
from services.common.assigned_reader import SEAL_FAMILY, AssignedReader
from services.common.bulk_insert import BulkInsert
from services.common.check_process import Verdict, check_messages, parallel_by_default

log = logging.getLogger(__name__)

consumer_metadata = MetaData()

consumer_offsets = Table(
    "consumer_offsets",
    consumer_metadata,
    Column("consumer", String(200), primary_key=True),
    Column("topic", String(250), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", Integer, nullable=False),
)

applied_events = Table(
    "applied_events",
    consumer_metadata,
    Column("consumer", String(200), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("topic", String(250), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", Integer, nullable=False),
)

# Built once (the per-batch bookkeeping of ProjectionRunner._apply_batch).
_APPLIED_BEFORE_AS_JSON = select(applied_events.c.event_id).where(
    applied_events.c.consumer == bindparam("consumer"),
    applied_events.c.event_id.in_(select(func.json_each(bindparam("event_ids_json")).table_valued("value").c.value)),
)
"""SQLite's form: the poll's ids as one JSON array text, read by SQLite's ``json_each``. An expanding ``IN``
list was rendered anew for every poll (5,000 placeholders): ~1 µs an event more (issue 17, sixth round)."""
_APPLIED_BEFORE_AS_ARRAY = select(applied_events.c.event_id).where(
    applied_events.c.consumer == bindparam("consumer"),
    applied_events.c.event_id == any_(bindparam("event_ids", type_=postgresql.ARRAY(String(36)))),
)
"""PostgreSQL's form: the poll's ids as one array parameter. An expanding ``IN`` renders and converts one
parameter per id (5,000 a poll), ~11 % of the projector's time on PostgreSQL (bench row 3, issue 17)."""
_REMEMBER = BulkInsert(applied_events, ["consumer", "event_id", "topic", "partition", "offset"])
POLL_SETTINGS: dict[str, Any] = {
    "max_poll_records": 5000,
    "max_partition_fetch_bytes": 3 * 1024 * 1024,
    "fetch_max_wait_ms": 20,
}
"""Up to 5,000 records a poll (a partition's fetch up to 3 MiB, ~2,000 messages; was 2,000 and 1 MiB): a
poll is one transaction, and on SQLite its commit writes every index page the poll touched, which the
random event ids spread over the whole index. Per event, 2,000 a commit cost ~31-43 µs of inserts and
commit at 10^5 events, 5,000 ~20-28 (bench/README.md, row 3; its raw consumer uses these settings too).

A fetch the broker cannot fill waits at most 20 ms (kafka-python's default: 500). The reading process asks
for its next fetch early (``assigned_reader._ask_next_fetch``), and such a fetch leaves out every partition
with records still buffered: when the others are at their end (the grants' and bridge's topics, read in a
moment), the broker held it 500 ms while no other fetch could go to it, and the reading process idled in
empty polls ~25 % of row 3 (issue 17, nineteenth round). A caught-up reader now asks ~50 times a second
instead of twice: a few hundred bytes each, no records."""

# SQLite takes 32,766 parameters, PostgreSQL 65,535: a whole poll's ids in one IN list.
_IDS_PER_QUERY = POLL_SETTINGS["max_poll_records"]


class Rejected(Exception):
    """Raised by a projection for an event it must not apply (goes to the dead-letter topic)."""


def _refusal_reason(error: Exception) -> str:
    if isinstance(error, Rejected):
        return f"rejected: {error}"
    # A database refusal: its kind only. Its message holds the SQL and the event's text (maybe personal data).
    original = getattr(error, "orig", None)
    detail = f" ({type(original).__name__})" if original is not None else ""
    return f"rejected: {type(error).__name__}{detail}"


def _position(refusal: tuple[Any, str]) -> tuple[str, int, int]:
    message = refusal[0]
    return message.topic, message.partition, message.offset


class Polled(Protocol):
    """One partition's messages of a poll, read here or by the reading process (``AssignedReader``)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offsets(self) -> list[int]: ...

    def record(self, index: int) -> Any:
        """The ``index``-th message as a dead letter needs it (``topic``, ``partition``, ``offset``, ``key``,
        ``value``, ``headers``)."""
        ...


@dataclass(frozen=True)
class _ReadHere:
    """A partition's records of a poll of this process's own consumer (no reading process)."""

    topic: str
    partition: int
    records: list[Any]

    @property
    def offsets(self) -> list[int]:
        return [record.offset for record in self.records]

    def record(self, index: int) -> Any:
        return self.records[index]


Checked = tuple[Polled, list[tuple[int, dict[str, Any]]], list[tuple[Any, str]]]
"""One partition's messages of a poll: (the messages, (index, envelope) of each passed, (message, reason) of
each refused)."""


UNAIMED_POLL_MS = 20
"""How long one poll of a member whose reading process is aimed at nothing waits before it looks whether the
group said something (``ProjectionRunner._poll_unaimed``)."""

COALESCED_POLLS = 3
"""Polls the projector applies in one transaction at most, each taken when the one before is applied and only if
the reading process has it ready then (``ProjectionRunner._takes``)."""


def _checked(polled: Polled, verdicts: list[Verdict]) -> Checked:
    parsed: list[tuple[int, dict[str, Any]]] = []
    refused: list[tuple[Any, str]] = []
    for index, verdict in enumerate(verdicts):
        if type(verdict) is dict:
            parsed.append((index, verdict))
        else:
            refused.append((polled.record(index), str(verdict)))
    return polled, parsed, refused


# What makes one event unappliable (not the database being down): it goes to the dead-letter topic.
REFUSALS = (Rejected, IntegrityError, DataError)


class Projection(Protocol):
    name: str

    def create_tables(self, engine: Engine) -> None: ...

    def apply(self, connection: Connection, topic: str, envelope: dict[str, Any]) -> None: ...

    def apply_batch(self, connection: Connection, topic: str, envelopes: list[dict[str, Any]]) -> None:
        """The same as ``apply`` for each envelope in turn; a projection may write them together."""
        ...


@dataclass
class ConsumerStats:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    lag_by_partition: dict[str, int] = field(default_factory=dict)


class OffsetStore:
    def __init__(self, engine: Engine, consumer: str):
        self.engine = engine
        self.consumer = consumer
        consumer_metadata.create_all(engine)

    def next_offset(self, topic: str, partition: int) -> int | None:
        with self.engine.connect() as connection:
            return connection.execute(
                select(consumer_offsets.c.next_offset).where(
                    consumer_offsets.c.consumer == self.consumer,
                    consumer_offsets.c.topic == topic,
                    consumer_offsets.c.partition == partition,
                )
            ).scalar_one_or_none()

    def next_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        """``next_offset`` of each of ``partitions``, in one query: an assignment's aim waited for one round trip a
        partition (9 in bench row 3)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(consumer_offsets.c.topic, consumer_offsets.c.partition, consumer_offsets.c.next_offset).where(
                    consumer_offsets.c.consumer == self.consumer
                )
            )
            stored = {(topic, partition): next_offset for topic, partition, next_offset in rows}
        return {tp: stored.get((tp.topic, tp.partition)) for tp in partitions}

    def save_all(self, connection: Connection, next_offsets: Sequence[tuple[str, int, int]]) -> None:
        """Stores (topic, partition, next_offset) for each partition of a poll in one statement (one round trip
        on PostgreSQL, where one per partition was 3 of the ~36 of a small poll's transaction; issue 17, row 5)."""
        if not next_offsets:
            return
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(consumer_offsets).values(
            [
                {"consumer": self.consumer, "topic": topic, "partition": partition, "next_offset": next_offset}
                for topic, partition, next_offset in next_offsets
            ]
        )
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[consumer_offsets.c.consumer, consumer_offsets.c.topic, consumer_offsets.c.partition],
                set_={"next_offset": statement.excluded.next_offset},
            )
        )

    def applied_before(self, connection: Connection, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` were applied before: one query per poll, not one per event."""
        found: set[str] = set()
        as_array = connection.dialect.name == "postgresql"
        for start in range(0, len(event_ids), _IDS_PER_QUERY):
            ids = list(event_ids[start : start + _IDS_PER_QUERY])
            if as_array:
                rows = connection.execute(_APPLIED_BEFORE_AS_ARRAY, {"consumer": self.consumer, "event_ids": ids})
            else:
                rows = connection.execute(
                    _APPLIED_BEFORE_AS_JSON, {"consumer": self.consumer, "event_ids_json": orjson.dumps(ids).decode()}
                )
            found.update(rows.scalars())
        return found

    def remember(self, connection: Connection, topic: str, partition: int, events: Sequence[tuple[str, int]]) -> None:
        """Records (event_id, offset) pairs as applied, in one bulk insert."""
        self.remember_all(connection, [(event_id, topic, partition, offset) for event_id, offset in events])

    def remember_all(self, connection: Connection, events: Sequence[tuple[str, str, int, int]]) -> None:
        """Records (event_id, topic, partition, offset) of several partitions as applied, in one bulk insert."""
        consumer = self.consumer
        # In key order (consumer, event_id): inserts land beside each other in the primary key's B-tree.
        _REMEMBER(connection, [(consumer, *event) for event in sorted(events)])


def forget_consumer(engine: Engine, consumer: str) -> None:
    """Removes what ``consumer`` stored (its offsets and applied event ids), so it starts again at offset 0:
    the rows of other consumers in the same tables stay (`ido recover view`)."""
    consumer_metadata.create_all(engine)
    with engine.begin() as connection:
        for table in (consumer_offsets, applied_events):
            connection.execute(delete(table).where(table.c.consumer == consumer))


class GroupListener(ConsumerRebalanceListener):
    """The runner's rebalance listener. kafka-python 3 calls it on the consumer's network thread while the
    projector's thread runs ``run_once`` (2.x called it inside ``poll``): it only tells the runner what the group
    said, and the projector's own thread aims the reading process (``ProjectionRunner._follow_group``)."""

    def __init__(self, runner: ProjectionRunner):
        self.runner = runner

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.runner.group_revoked()

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.runner.group_assigned(list(assigned))


class ProjectionRunner:
    def __init__(
        self,
        *,
        projection: Projection,
        engine: Engine,
        topics: Sequence[str],
        kafka_config: Mapping[str, Any],
        dead_letter_topic: str,
        group_id: str | None = None,
        consumer_factory: Callable[..., KafkaConsumer] = KafkaConsumer,
        dead_letter_producer: KafkaProducer | None = None,
        provenance: ProvenanceCheck | None,
        parallel: bool | None = None,
        poll_settings: Mapping[str, Any] | None = None,
    ):
        """``provenance``: the seal check every message must pass (None: none, for benchmarks and
        for consumers of topics without seals); keyword-only and required, so no caller forgets it.
        ``parallel``: read and check the messages in a second process (``assigned_reader.py``) while this
        one writes the view; by default where fork exists and there is a second core. ``poll_settings``: in
        place of those of ``POLL_SETTINGS`` (tests: small polls)."""
        self.parallel = parallel_by_default() if parallel is None else parallel
        self._reading: AssignedReader | None = None
        self._group_lock = threading.Lock()
        self._group_word = 0
        """Counts what the group said (each assignment and each revocation), written by ``GroupListener`` on the
        consumer's network thread under ``_group_lock``."""
        self._group_partitions: list[TopicPartition] | None = None
        """The partitions the group last assigned; None before the first assignment and after a revocation."""
        self._followed_word: int | None = None
        """The projector's thread only: the word of the group that the reading process is aimed at (or, without
        one, that the consumer's positions follow); None: aim (seek) again at the stored offsets, because the
        process is new or a poll failed and what was read after that poll must not be applied."""
        self.projection = projection
        self.provenance = provenance
        self.engine = engine
        self.topics = list(topics)
        self.dead_letter_topic = dead_letter_topic
        self.offsets = OffsetStore(engine, projection.name)
        projection.create_tables(engine)
        self.stats = ConsumerStats()
        self.check = MessageCheck()
        # ``kafka_config``: the broker and the principal's login (services.common.adapters.kafka.client_config);
        # it must be allowed to read the topics, use the group and write the dead-letter topic.
        self._kafka_config = dict(kafka_config)
        polls = {**POLL_SETTINGS, **(poll_settings or {})}
        self._reading_settings: dict[str, Any] = {
            "enable_auto_commit": False,
            **polls,
            "client_id": f"projector-{projection.name}-reading",
        }
        self.consumer = consumer_factory(
            **kafka_config,
            group_id=group_id or projection.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **polls,
            client_id=f"projector-{projection.name}",
        )
        self.consumer.subscribe(self.topics, listener=GroupListener(self))
        self.dead_letters = dead_letter_producer or KafkaProducer(
            **kafka_config, acks="all", enable_idempotence=True, client_id="dead-letters"
        )

    def group_assigned(self, partitions: list[TopicPartition]) -> None:
        """The group assigned ``partitions`` (the whole assignment); called on the consumer's network thread.

        The consumer's own state is set here, before it fetches: with a reading process its partitions are
        paused (it keeps the group only), without one it is moved to the offsets stored with the view. The
        reading process is aimed by the projector's thread, never from here: the two threads would write its
        pipe and its generation at once, and a re-aim at an assignment read a moment before this one would undo
        it (a projector aimed at nothing, with its partitions assigned, read nothing for good)."""
        if self.parallel:
            self.consumer.pause(*partitions)
        else:
            self._seek_stored(partitions)
        with self._group_lock:
            self._group_word += 1
            self._group_partitions = list(partitions)

    def group_revoked(self) -> None:
        """The group takes the partitions back (a rebalance); called on the consumer's network thread. Nothing read
        and not applied is applied: the reading process is aimed at nothing until the next assignment."""
        with self._group_lock:
            self._group_word += 1
            self._group_partitions = None

    def rewind(self) -> None:
        """Reads the assigned partitions from the offsets stored with the view again: what was read and not
        applied is read again, never applied twice (before the next poll of ``run_once``)."""
        self._followed_word = None

    def _group_said(self) -> tuple[int, list[TopicPartition] | None]:
        with self._group_lock:
            return self._group_word, self._group_partitions

    def _follow_group(self) -> None:
        """On the projector's thread: aims the reading process at what the group said last, from the stored
        offsets, when that changed or a rewind is due (without a reading process the listener has sought
        already; a rewind seeks again)."""
        word, partitions = self._group_said()
        if word == self._followed_word:
            return
        if self.parallel:
            if self._reading is None:
                return
            self._reading.aim({} if partitions is None else self._stored_offsets(partitions))
        elif self._followed_word is None and partitions is not None:
            self._seek_stored(partitions)
        self._followed_word = word

    def _stored_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        """Each partition's next offset stored with the view (None: nothing applied yet, from the beginning)."""
        return self.offsets.next_offsets(partitions)

    def _seek_stored(self, partitions: list[TopicPartition]) -> None:
        for tp, stored in self._stored_offsets(partitions).items():
            if stored is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, stored)

    def run_once(self, timeout_ms: int = 500) -> int:
        """Polls and applies a poll (every partition's batch in one transaction); returns how many
        messages were handled.

        With a reading process (``parallel``) this process's consumer only takes part in the group (its
        join, rebalances and heartbeats: the listener aims the reading process at each assignment), and a
        call applies the next poll the reading process read and checked, waiting up to ``timeout_ms`` for
        it, and the polls read after it that are ready by then (``_takes``), in one transaction. The
        process reads on while this one applies. What is not applied has no stored offset: after a
        crash, a failure or a rebalance it is read again from the stored offsets. After a failure the next
        call starts there by itself (``run_forever`` also rewinds): the polls read after the failed one are
        never applied before it."""
        reading = None
        self._rescue_stranded_join()
        try:
            if not self.parallel:
                self._follow_group()
                batches = self.consumer.poll(timeout_ms=timeout_ms)
                if not batches:
                    return 0
                return self._apply_checked([self._check(tp, messages) for tp, messages in batches.items()])
            if self._reading is None:
                # Forked here, on the projector's thread, never from the listener (the consumer's network thread), and
                # not in __init__: the entry point settles the collector after building the runner (collector.py),
                # and a process forked before that cost ~15-20 % more CPU an event in both (issue 17, 22nd round).
                self._reading = AssignedReader(
                    self._kafka_config, self._reading_settings, self.check, self.provenance, topics=self.topics
                )
                self._followed_word = None
            reading = self._reading
            if not reading.started(timeout_ms / 1000):
                # The group is joined (polled) once the process can read: a member assigned partitions it cannot
                # read yet holds them unread (bench row 3's first fetch came ~100 ms later); the next call asks again.
                return 0
            stray = self.consumer.poll(timeout_ms=0) if reading.aimed else self._poll_unaimed(timeout_ms)
            if stray:  # read before its partitions were paused: the reading process reads them
                self.consumer.pause(*stray)
            self._follow_group()
            if not reading.aimed:
                return 0
            return self._apply_polls(self._takes(reading, timeout_ms))
        except BaseException as error:
            self._followed_word = None
            if reading is not None and isinstance(error, RuntimeError) and not reading.alive():
                reading.close()  # the next call starts another
                self._reading = None
            raise

    def _group_coordinator(self) -> Any:
        """kafka-python 3.x's group coordinator of the projector's consumer (a private attribute of the pinned
        version: the two places that drive the group's join read it here); None for a consumer without one (the
        tests' stand-ins), which is then polled as a plain consumer."""
        return getattr(self.consumer, "_coordinator", None)

    def _rescue_stranded_join(self) -> None:
        """Asks kafka-python to rejoin when a join of its would otherwise never be finished.

        kafka-python 3.0.12 finishes a join (applies its assignment, calls the listener) only in a poll that
        awaits it, and a poll awaits it only while ``need_rejoin()``. A leader that rejoins because the topics'
        metadata changed (the group's first assignment is often empty: the topics were just made) makes
        ``need_rejoin()`` False the moment it has computed the assignment, mid-join: when a poll's wait ended
        then, no later poll awaited the join, the assignment was never applied and the projector held no
        partition while the broker counted it as their owner, for good (traced in the sixteenth round:
        "Successfully joined group ... Generation 2", its SyncGroup answered, then no "Setting newly assigned
        partitions", and ``need_rejoin: False`` ever after; docs/decisions.md). Asking to rejoin makes the next
        poll await the join again (or join anew), which ends with the assignment applied."""
        coordinator = self._group_coordinator()
        if coordinator is not None and coordinator.rejoining and not coordinator.need_rejoin():
            log.warning("projector %s: a join of the group was left unfinished; rejoining", self.projection.name)
            coordinator.request_rejoin()

    def _poll_unaimed(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        """The group member's poll while the reading process is aimed at nothing (a new process, a rebalance).

        kafka-python's ``poll`` sleeps out its whole timeout while every partition is paused, so an assignment
        that came early in a 500 ms poll was followed only when the poll ended (bench row 3 lost up to 0.5 s a
        rebalance). Its coordinator's own ``poll`` (the first step of the consumer's) returns as soon as the
        group's join is done, the listener called: then this returns at once, and the projector's thread aims.
        The join is awaited with the same 500 ms as before. This was tried before ``_rescue_stranded_join`` and made
        groups that never settled: a wait that ended mid-join left the join unfinished for good; now the next call
        asks for it again (docs/decisions.md, "The rebalance listener runs on kafka-python's network thread").

        A join can also become due after the coordinator's poll said the member is in the group: the group's
        first assignment is often empty (the topics' partitions not yet in the consumer's metadata), and the
        metadata that makes the member join again comes a moment later, inside the consumer's poll, which then
        finishes the join and sleeps on. So the rest of the time is spent in polls of ``UNAIMED_POLL_MS``, and
        this returns after the one in which the group said something: the projector otherwise read nothing for
        up to 0.5 s after every such assignment, ~15 % of bench row 3 (issue 17, twentieth round)."""
        coordinator = self._group_coordinator()
        if coordinator is None:
            return self.consumer.poll(timeout_ms=timeout_ms)
        deadline = time.monotonic() + timeout_ms / 1000
        word = self._followed_word
        remaining_ms = timeout_ms
        while True:
            if not coordinator.poll(timeout_ms=remaining_ms):
                return {}  # the join goes on: the next call awaits it again, as a poll whose timer ended in it would
            if self._group_said()[0] != word:
                return self.consumer.poll(timeout_ms=0)
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                return {}
            polled = self.consumer.poll(timeout_ms=min(remaining_ms, UNAIMED_POLL_MS))
            if polled:
                return polled
            # A join this short poll's wait left unfinished is asked for again at once, and awaited above for the
            # rest of the time: the next call would rescue it only after this one's 500 ms (seen in bench row 3:
            # 2-5 times a `make bench`, 0.5 s each).
            self._rescue_stranded_join()
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))

    def _check(self, tp: TopicPartition, messages: list[Any]) -> Checked:
        """Each message's contract, hash and seal, in this process."""
        verdicts = check_messages(
            self.check, self.provenance, tp.topic, [(message.value, message.headers) for message in messages]
        )
        return _checked(_ReadHere(tp.topic, tp.partition, messages), verdicts)

    def _takes(self, reading: AssignedReader, timeout_ms: int) -> Iterator[list[Checked]]:
        """The next poll the reading process read (waiting up to ``timeout_ms``), then, each time the caller asks
        for the next, a poll it has ready already, up to ``COALESCED_POLLS`` in all: one transaction and one
        durable commit for them all when the projector is behind (issue 17, seventeenth round: the commit was
        12-15 % of the projector's time on SQLite), none waited for when it is not.

        Each poll is taken only when the one before is applied, and no reference to it is kept here, so the
        projector holds one poll's envelopes at a time: taken together, three polls (15,000 parsed envelopes)
        were held at once, and the projector's memory rose ~40 MiB the first time it fell two polls behind
        (bench row 6, issue 17, thirty-second round). A poll read before the group took its partitions back
        (or assigned anew) ends the takes unapplied: it is read again from the stored offsets, then applied.
        An error of the reading raised meanwhile rolls the whole transaction back, as one raised by the first
        take would: nothing applied, the next call reads again from the stored offsets."""
        for taken in range(COALESCED_POLLS):
            polled = reading.take(timeout_ms / 1000, ready_only=taken > 0)
            if polled is None or self._group_said()[0] != self._followed_word:
                return
            checked = [_checked(batch, batch.verdicts) for batch in polled]
            del polled
            yield checked
            del checked

    def _apply_checked(self, checked: list[Checked]) -> int:
        """Applies one poll, every partition's batch, in one transaction (``_apply_polls``)."""
        return self._apply_polls(iter([checked]))

    def _apply_polls(self, polls: Iterator[list[Checked]]) -> int:
        """Applies each poll ``polls`` gives, in one transaction, each poll's every partition's batch: one durable
        commit for them (each up to ``POLL_SETTINGS``' 5,000 records), not one per partition (bench/README.md,
        row 3). The next poll is asked for only when the one before is applied (``_takes``); returns how many
        messages were handled."""
        checked = next(polls, None)
        if checked is None:
            return 0
        handled = 0
        refused_all: list[tuple[Any, str]] = []
        with self.engine.begin() as connection:
            # ids applied by this transaction's earlier partitions and polls: a copy in a later one is a duplicate
            applied_now: set[str] = set()
            while checked is not None:
                handled += self._apply_poll(connection, checked, applied_now, refused_all)
                checked = None  # let go of this poll's envelopes before the next is taken
                checked = next(polls, None)
            # Dead letters are made durable before the offset moves past them.
            for message, reason in sorted(refused_all, key=_position):
                self._dead_letter(message, reason)
            if refused_all:
                self.dead_letters.flush()
        return handled

    def _apply_poll(
        self, connection: Connection, checked: list[Checked], applied_now: set[str], refused_all: list[tuple[Any, str]]
    ) -> int:
        """Applies one poll within the caller's transaction; returns how many messages it handled. Adds the ids
        applied to ``applied_now``, and each refused message with its reason (the checker's and the
        projection's) to ``refused_all``; keeps nothing of the poll besides.

        The offsets are stored with one statement, and the batches of a topic's partitions are applied
        together, under one savepoint, with their applied ids recorded in one bulk insert whose primary key
        finds the duplicates (``_apply_topic``): a small poll's transaction took 36 round trips to PostgreSQL
        when this was done per partition. Only when the projection refuses an event, or the key an id,
        is that savepoint rolled back and each of the topic's partitions applied again on its own, and in
        the partition that holds the refusal one event at a time, each under its own savepoint, so the
        refused events alone go to the dead-letter topic. A refused event's id is not remembered: a
        refused copy must not hide the genuine event. A projection must therefore keep its state in
        ``connection`` only (it may see an event twice).
        """
        # The offsets are written first, on purpose: pysqlite opens its transaction only at the first
        # write, and a SAVEPOINT before it would be a transaction of its own, committed on release.
        self.offsets.save_all(
            connection, [(polled.topic, polled.partition, polled.offsets[-1] + 1) for polled, _p, _r in checked]
        )
        by_topic: dict[str, list[Checked]] = {}
        for batch in checked:  # a topic's partitions in the order the poll gave them; across topics no order holds
            by_topic.setdefault(batch[0].topic, []).append(batch)
        for topic, batches in by_topic.items():
            applied_now.update(self._apply_topic(connection, topic, batches, applied_now))
        for _polled, _parsed, refused in checked:
            refused_all.extend(refused)
        return sum(len(polled.offsets) for polled, _parsed, _refused in checked)

    def _apply_topic(self, connection: Connection, topic: str, batches: list[Checked], seen: set[str]) -> set[str]:
        """Applies the checked batches of one topic's partitions of a poll; returns the ids applied. The
        projection's refusals are added to each batch's refused list (through ``_apply_partition``).

        The ids are recorded as applied first, under the savepoint of the events: the applied ids' primary
        key is the duplicate check. Only when it refuses one (an event applied by an earlier poll: a relay's
        second send, a topic read again) or the projection refuses an event is the savepoint rolled back, the
        ids applied before looked up, and each partition applied on its own. A poll without duplicates thus
        costs no lookup of its own (issue 17, row 3: it was ~10 % of the projector's time on PostgreSQL)."""
        fresh: list[dict[str, Any]] = []
        applied: list[tuple[str, str, int, int]] = []
        taken: set[str] = set()
        for polled, parsed, _refused in batches:
            offsets = polled.offsets
            for index, envelope in parsed:
                event_id = envelope["event_id"]
                if event_id not in seen and event_id not in taken:
                    taken.add(event_id)
                    applied.append((event_id, polled.topic, polled.partition, offsets[index]))
                    fresh.append(envelope)
        if fresh:
            try:
                with connection.begin_nested():
                    self.offsets.remember_all(connection, applied)
                    self.projection.apply_batch(connection, topic, fresh)
            except REFUSALS:
                before = self.offsets.applied_before(connection, [envelope["event_id"] for envelope in fresh])
                found: set[str] = set()
                for polled, parsed, refused in batches:
                    found.update(self._apply_partition(connection, polled, parsed, refused, seen | before | found))
                return found
        self.stats.applied += len(applied)
        # Each parsed message was applied or dropped as a duplicate (the checker's refusals are not parsed).
        self.stats.duplicates += sum(len(parsed) for _polled, parsed, _refused in batches) - len(applied)
        return taken

    def _apply_partition(
        self,
        connection: Connection,
        polled: Polled,
        parsed: list[tuple[int, dict[str, Any]]],
        refused: list[tuple[Any, str]],
        applied_before: set[str],
    ) -> dict[str, int]:
        """Applies one partition's checked messages of a poll; returns the ids applied (and their offsets).
        The projection's refusals are added to ``refused``."""
        refused_before = len(refused)
        offsets = polled.offsets
        applied: dict[str, int] = {}
        fresh: list[dict[str, Any]] = []
        for index, envelope in parsed:
            event_id = envelope["event_id"]
            if event_id not in applied_before and event_id not in applied:
                applied[event_id] = offsets[index]
                fresh.append(envelope)
        try:
            with connection.begin_nested():
                self.projection.apply_batch(connection, polled.topic, fresh)
        except REFUSALS:
            applied = {}
            for index, envelope in parsed:
                event_id = envelope["event_id"]
                if event_id in applied_before or event_id in applied:
                    continue
                try:
                    with connection.begin_nested():
                        self.projection.apply(connection, polled.topic, envelope)
                except REFUSALS as error:
                    refused.append((polled.record(index), _refusal_reason(error)))
                    continue
                applied[event_id] = offsets[index]
        self.offsets.remember(connection, polled.topic, polled.partition, list(applied.items()))
        self.stats.applied += len(applied)
        # Each parsed message was applied, refused by the projection or dropped as a duplicate.
        self.stats.duplicates += len(parsed) - len(applied) - (len(refused) - refused_before)
        return applied

    def _dead_letter(self, message: Any, reason: str) -> None:
        log.warning(
            "dead-lettered %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason
        )
        # The refused message's own headers (its seal, if any) are kept, so the copy can be judged again.
        kept = [(name, value) for name, value in message.headers or () if name.startswith(SEAL_FAMILY)]
        self.stats.dead_lettered += 1
        self.dead_letters.send(
            self.dead_letter_topic,
            key=message.key,
            value=message.value,
            headers=[
                ("reason", reason.encode("utf-8")),
                ("original_topic", message.topic.encode()),
                ("original_partition", str(message.partition).encode()),
                ("original_offset", str(message.offset).encode()),
                ("consumer", self.projection.name.encode()),
                *kept,
            ],
        )

    def run_forever(self, stop: threading.Event, retry_after_s: float = 1.0) -> None:
        """Applies until ``stop``. A failure (the view's database or the broker gone) is retried, never
        skipped: the polled messages were not applied, so every partition is first moved back to
        the offset stored with the view, where a restart would begin too."""
        while not stop.is_set():
            try:
                self.run_once(timeout_ms=500)
            except Exception as error:  # noqa: BLE001 - logged and retried; the lag metrics show it
                log.warning("projector %s: %s; retrying from the stored offsets", self.projection.name, error)
                self.rewind()
                stop.wait(retry_after_s)

    def close(self) -> None:
        # Polls not applied are dropped: their offsets were not stored, the next projector reads them.
        if self._reading is not None:
            self._reading.close()
            self._reading = None
        self.consumer.close()
        self.dead_letters.close()
