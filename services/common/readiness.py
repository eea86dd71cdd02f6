"""What `/readyz` and the scrape-time metrics measure: the event store, the broker, the relay's lag,
and (for the ledger) the projector's lag per partition and the dead-letter topic.

Everything is read from where the other processes leave it, so a service can report on a relay or
projector that runs elsewhere: the relay's position is the eventsourcing tracking record it writes
in the service's own event store (name ``relay:<topic>``, see ``services/common/relay.py``); the
projector's next offsets are in the view database (``consumer_offsets``); the topics' end offsets
come from the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import TrackingRecorder
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec

from services.common.adapters.kafka import AdminClient
from services.common.relay import relay_name

log = logging.getLogger(__name__)

EXACT_LAG_UP_TO = 1000
"""Up to this many events beyond the relay's position are counted one by one (PostgreSQL ids can
have gaps); beyond it the lag is the id difference, an upper bound that is exact on SQLite."""


def short_error(error: BaseException) -> str:
    """The error's class and first line, short: enough to act on, no connection strings."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:160]}" if text else type(error).__name__


@dataclass(frozen=True)
class RelayLag:
    head: int
    """Highest notification id stored."""
    position: int
    """Highest notification id the broker acknowledged (the relay's tracked position)."""
    lag: int
    """Stored notifications beyond the position: events not yet on Kafka."""
    exact: bool


class RelayWatch:
    """Reads a relay's lag from the event store it publishes from (no producer needed)."""

    def __init__(self, application: Application, topic: str):
        self.application = application
        self.topic = topic
        self.name = relay_name(topic)
        self._tracking: TrackingRecorder | None = None
        self._lock = threading.Lock()

    def _tracking_recorder(self) -> TrackingRecorder:
        with self._lock:
            if self._tracking is None:
                self._tracking = self.application.factory.tracking_recorder()
            return self._tracking

    def head(self) -> int:
        return int(self.application.recorder.max_notification_id() or 0)

    def position(self) -> int:
        """The highest notification id the broker acknowledged (0: the relay never published)."""
        return int(self._tracking_recorder().max_tracking_id(self.name) or 0)

    def lag(self) -> RelayLag:
        head = self.head()
        position = self.position()
        gap = head - position
        if gap <= 0:
            return RelayLag(head, position, 0, True)
        if gap > EXACT_LAG_UP_TO:
            return RelayLag(head, position, gap, False)
        stored = self.application.recorder.select_notifications(
            start=position, limit=gap, stop=head, inclusive_of_start=False
        )
        return RelayLag(head, position, len(stored), True)


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    end_offset: int
    next_offset: int

    @property
    def lag(self) -> int:
        return max(self.end_offset - self.next_offset, 0)


@dataclass
class BrokerState:
    reachable: bool
    error: str | None = None
    checked_at: float = field(default_factory=time.monotonic)


class BrokerUnavailable(Exception):
    """The broker failed a moment ago; not asked again until the back-off has passed."""


class KafkaProbe:
    """One admin client per service process, made on first use and remade after a failure.

    Calls are serialised and bounded by ``timeout_ms`` (bootstrap and requests), so a scrape or a
    readiness probe never hangs on a broker that is down; after a failure the broker is not asked
    again for ``timeout_ms`` (the failure is repeated), so probes cannot pile up behind it.
    """

    def __init__(
        self, kafka_config: Callable[[], Mapping[str, Any]], timeout_ms: int = 2000, client_id: str = "ido-probe",
        clock: Callable[[], float] = time.monotonic,
    ):
        # Called for every new admin client: the login (ido-probe, DESCRIBE only) is read anew after a failure.
        self.kafka_config = kafka_config
        self.timeout_ms = timeout_ms
        self.client_id = client_id
        self._admin: KafkaAdminClient | None = None
        self._lock = threading.Lock()
        self._failed_at: float | None = None
        self._failure = ""
        self._clock = clock
        """Seconds, for the back-off after a failure (tests move it)."""

    def _client(self) -> KafkaAdminClient:
        if self._admin is None:
            self._admin = AdminClient(
                **self.kafka_config(),
                client_id=self.client_id,
                request_timeout_ms=self.timeout_ms,
                bootstrap_timeout_ms=self.timeout_ms,
                reconnect_backoff_max_ms=1000,
            )
        return self._admin

    def _drop(self) -> None:
        if self._admin is not None:
            try:
                self._admin.close()
            except Exception:  # noqa: BLE001 - closing a broken client; nothing to do about it
                pass
            self._admin = None

    def call(self, operation: Callable[[KafkaAdminClient], Any]) -> Any:
        with self._lock:
            if self._failed_at is not None and self._clock() - self._failed_at < self.timeout_ms / 1000:
                raise BrokerUnavailable(self._failure)
            try:
                answer = operation(self._client())
            except Exception as error:
                self._drop()
                self._failed_at, self._failure = self._clock(), short_error(error)
                raise
            self._failed_at = None
            return answer

    def check(self) -> BrokerState:
        # A metadata request (the topics this principal may describe): ido-probe has no right on the
        # cluster, and kafka-python's DescribeCluster asks for the cluster's authorized operations,
        # which the broker refuses and logs at every probe.
        try:
            self.call(lambda admin: admin.list_topics())
        except BrokerUnavailable as error:
            return BrokerState(False, str(error))
        except Exception as error:  # noqa: BLE001 - any failure means: not reachable
            return BrokerState(False, short_error(error))
        return BrokerState(True)

    def partitions(self, topics: Sequence[str]) -> dict[str, list[int]]:
        """Partition ids per existing topic (a topic not created yet is left out)."""
        described = self.call(lambda admin: admin.describe_topics(list(topics)))
        found: dict[str, list[int]] = {}
        for topic in described:
            if topic.get("error_code", 0) != 0:
                continue
            found[topic["name"]] = sorted(p["partition_index"] for p in topic["partitions"])
        return found

    def offsets(self, partitions: Sequence[TopicPartition], spec: Any) -> dict[TopicPartition, int]:
        if not partitions:
            return {}
        answer = self.call(
            lambda admin: admin.list_partition_offsets({tp: spec for tp in partitions}, timeout_ms=self.timeout_ms)
        )
        return {tp: int(found.offset) for tp, found in answer.items()}

    def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return self.offsets(partitions, OffsetSpec.LATEST)

    def beginning_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return self.offsets(partitions, OffsetSpec.EARLIEST)

    def close(self) -> None:
        with self._lock:
            self._drop()


class ProjectionWatch:
    """A projector's lag per partition and the dead-letter topic's size, from the view DB and Kafka."""

    def __init__(
        self,
        probe: KafkaProbe,
        topics: Sequence[str],
        dead_letter_topic: str,
        stored_offsets: Callable[[], list[dict[str, Any]]],
        name: str = "ledger-balances",
    ):
        self.probe = probe
        self.topics = list(topics)
        self.dead_letter_topic = dead_letter_topic
        self.stored_offsets = stored_offsets
        self.name = name

    def lag(self) -> list[PartitionLag]:
        partitions = [
            TopicPartition(topic, p) for topic, ids in self.probe.partitions(self.topics).items() for p in ids
        ]
        ends = self.probe.end_offsets(partitions)
        stored = {(row["topic"], row["partition"]): int(row["next_offset"]) for row in self.stored_offsets()}
        missing = [tp for tp in partitions if (tp.topic, tp.partition) not in stored]
        starts = self.probe.beginning_offsets(missing)  # where the projector will start on these
        found = []
        for tp in partitions:
            next_offset = stored.get((tp.topic, tp.partition), starts.get(tp, 0))
            found.append(PartitionLag(tp.topic, tp.partition, ends.get(tp, 0), next_offset))
        return found

    def dead_letters(self) -> int:
        """Messages on the dead-letter topic (0 when it does not exist yet)."""
        ids = self.probe.partitions([self.dead_letter_topic]).get(self.dead_letter_topic, [])
        partitions = [TopicPartition(self.dead_letter_topic, p) for p in ids]
        ends = self.probe.end_offsets(partitions)
        starts = self.probe.beginning_offsets(partitions)
        return sum(max(ends.get(tp, 0) - starts.get(tp, 0), 0) for tp in partitions)
