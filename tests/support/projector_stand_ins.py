"""Stand-ins for the projector's group member and reading process, for tests of ``ProjectionRunner`` without a
broker: a consumer that calls the rebalance listener from a thread of its own (as kafka-python 3 does), its group
coordinator, and a reading process that records its aims and hands out the polls a test queued. Used by
``tests/foundation/test_group_listener_thread.py`` and ``test_coalesced_polls.py``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition
from sqlalchemy import Connection, Engine

import services.common.consumer as consumer_module
from services.common.adapters.sql import create_sql_engine
from services.common.assigned_reader import ReadBatch
from services.common.consumer import ProjectionRunner

TOPIC = "t.toy"
PARTITIONS = [TopicPartition(TOPIC, p) for p in range(3)]


class NetworkThreadConsumer:
    """As kafka-python 3's ``KafkaConsumer`` does it: the group's word reaches the listener on another thread."""

    def __init__(self, **_settings: Any):
        self.listener: Any = None
        self.assigned: set[TopicPartition] = set()
        self.paused: set[TopicPartition] = set()
        self.polls_ms: list[int] = []

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    def rebalance(self, partitions: list[TopicPartition]) -> None:
        """A whole rebalance (eager: revoke all, then assign), on a thread of its own; returns when it is done."""

        def network_thread() -> None:
            self.listener.on_partitions_revoked(set(self.assigned))
            self.assigned = set(partitions)
            self.listener.on_partitions_assigned(set(partitions))

        thread = threading.Thread(target=network_thread, name="kafka-io-stand-in")
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), "the listener blocked the network thread"

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def poll(self, timeout_ms: int = 0) -> dict[Any, Any]:
        """As kafka-python's does with every partition paused: sleeps out its timeout."""
        self.polls_ms.append(timeout_ms)
        time.sleep(timeout_ms / 1000)
        return {}

    def close(self) -> None:
        pass


class StandInCoordinator:
    """kafka-python 3.0.12's group coordinator as the projector uses it.

    ``poll`` returns True once the member is in the group, False when its timer ended during a join: a join that
    is due (``need_rejoin()``) is awaited and finished there (``finish_join``: its assignment applied, the
    listener called); otherwise ``join``, a test's join, says what the group does during the call. A leader
    rejoining for new topic metadata has ``need_rejoin()`` False once it computed the assignment, mid-join: a
    coordinator made ``stranded`` is such a join whose wait ended then, ``rejoining`` with nobody to finish it."""

    def __init__(self, finish_join: Callable[[], None] = lambda: None, *, stranded: bool = False) -> None:
        self.polls_ms: list[int] = []
        self.join: Callable[[], bool] = lambda: True
        self.rejoining = stranded
        self.rejoin_needed = False
        self.rejoins_asked = 0
        self._finish_join = finish_join

    def need_rejoin(self) -> bool:
        return self.rejoin_needed

    def request_rejoin(self) -> None:
        self.rejoins_asked += 1
        self.rejoin_needed = True

    def poll(self, timeout_ms: int) -> bool:
        self.polls_ms.append(timeout_ms)
        if self.rejoin_needed:  # awaited: the join ends, its assignment applied, the listener called
            self._finish_join()
            self.rejoining = self.rejoin_needed = False
            return True
        return self.join()


class JoiningConsumer(NetworkThreadConsumer):
    """With kafka-python 3.x's coordinator, which the projector's unaimed poll awaits the join with."""

    def __init__(self, **settings: Any):
        super().__init__(**settings)
        self._coordinator = StandInCoordinator()


class LateJoiningConsumer(JoiningConsumer):
    """As kafka-python's consumer with its first assignment empty: the metadata that names the topics' partitions
    comes during a later poll (after the coordinator's poll said the member is in the group), which then joins
    again, calls the listener with the partitions and sleeps out the rest of its timeout."""

    def __init__(self, **settings: Any):
        super().__init__(**settings)
        self.joins_in_poll: list[list[TopicPartition]] = []
        """Assignments made by the next polls, one each (the first first)."""

    def poll(self, timeout_ms: int = 0) -> dict[Any, Any]:
        if self.joins_in_poll:
            self.rebalance(self.joins_in_poll.pop(0))
        return super().poll(timeout_ms)


class StrandedInPollConsumer(JoiningConsumer):
    """A member whose join, started inside a short poll, is left unfinished when that poll's wait ends (the leader
    computed the assignment, so ``need_rejoin()`` is False): the join finishes only when it is asked for again."""

    def __init__(self, **settings: Any):
        super().__init__(**settings)
        self._coordinator = StandInCoordinator(lambda: self.rebalance(PARTITIONS))
        self.strand_in_next_poll = False

    def poll(self, timeout_ms: int = 0) -> dict[Any, Any]:
        if self.strand_in_next_poll:
            self.strand_in_next_poll = False
            self._coordinator.rejoining = True
        return super().poll(timeout_ms)


class StrandingConsumer(NetworkThreadConsumer):
    """A member whose second join (the topics' partitions came) was left unfinished by its poll's wait."""

    def __init__(self, **settings: Any):
        super().__init__(**settings)
        self._coordinator = StandInCoordinator(lambda: self.rebalance(PARTITIONS), stranded=True)

    def poll(self, timeout_ms: int = 0) -> dict[Any, Any]:
        self._coordinator.poll(timeout_ms)  # as kafka-python's consumer polls its coordinator first
        return super().poll(timeout_ms)


class RecordingReader:
    """Stands in for the forked reading process: records each aim and the thread that made it; ``take`` hands out
    what a test queued."""

    made: list[RecordingReader] = []
    before_aim: Callable[[dict[TopicPartition, int | None]], None] | None = None
    """Called with each aim before it is made (a test's moment for the network thread to act)."""
    has_started = True
    """What ``started`` says."""

    def __init__(self, *_args: Any, **_kwargs: Any):
        self.aims: list[tuple[dict[TopicPartition, int | None], str]] = []
        self.aimed = False
        self.on_take: Callable[[], list[ReadBatch] | None] = lambda: None
        self.ready: list[list[ReadBatch]] = []
        """Polls read already, after the one ``on_take`` gives: what ``take(..., ready_only=True)`` hands out."""
        RecordingReader.made.append(self)

    def started(self, timeout_s: float) -> bool:
        return RecordingReader.has_started

    def aim(self, aim: dict[TopicPartition, int | None]) -> None:
        if RecordingReader.before_aim is not None:
            RecordingReader.before_aim(aim)
        self.aims.append((dict(aim), threading.current_thread().name))
        self.aimed = bool(aim)

    def take(self, timeout_s: float, *, ready_only: bool = False) -> list[ReadBatch] | None:
        if ready_only:
            return self.ready.pop(0) if self.ready else None
        return self.on_take()

    def alive(self) -> bool:
        return True

    def close(self) -> None:
        pass


class NoDeadLetters:
    def close(self) -> None:
        pass


class SpyProjection:
    name = "test-listener-thread"

    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []

    def create_tables(self, engine: Engine) -> None:
        pass

    def apply_batch(self, connection: Connection, topic: str, envelopes: list[dict[str, Any]]) -> None:
        self.applied.extend(envelopes)


def stand_in_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, consumer: type[NetworkThreadConsumer]
) -> ProjectionRunner:
    """A projector with ``consumer`` as its group member and a ``RecordingReader`` as its reading process."""
    RecordingReader.made = []
    RecordingReader.before_aim = None
    RecordingReader.has_started = True
    monkeypatch.setattr(consumer_module, "AssignedReader", RecordingReader)
    return ProjectionRunner(
        projection=SpyProjection(), engine=create_sql_engine(f"sqlite:///{tmp_path}/view.sqlite"), topics=[TOPIC],
        kafka_config={}, dead_letter_topic="t.dead", consumer_factory=consumer,
        dead_letter_producer=NoDeadLetters(),  # type: ignore[arg-type]
        provenance=None, parallel=True,
    )


def the_reader() -> RecordingReader:
    """The one reading process the runner made."""
    assert len(RecordingReader.made) == 1
    return RecordingReader.made[0]
