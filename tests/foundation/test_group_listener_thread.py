"""The projector's rebalance listener runs on another thread than the projector (kafka-python 3 calls it on the
consumer's network thread; 2.x called it inside ``poll``).

`make test` once failed with a projector that never projected: its first assignment was empty (the topics had
just been made, their partitions not yet in the consumer's metadata), and the full one came while the projector's
own thread was re-aiming its reading process at the empty one it had read a moment before. Its stale aim landed
last: the reading process read nothing, for good, with every partition assigned. Here a consumer stands in for
kafka-python's and calls the listener from a thread of its own at the worst moments; the reading process is a
stand-in too, which records its aims (no broker: what is shown is who aims the reading process, and at what).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
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
    """kafka-python's group coordinator as the consumer's ``poll`` uses it first: ``poll`` returns True once the
    member is in the group (the join, if one was due, done and the listener called), False when its timer ended
    during the join. ``join`` is a test's join: what the group does during the call; it returns whether the join
    is done."""

    rejoining = False  # read by the projector's check for a join left unfinished (none here)

    def __init__(self) -> None:
        self.polls_ms: list[int] = []
        self.join: Callable[[], bool] = lambda: True

    def need_rejoin(self) -> bool:
        return False

    def poll(self, timeout_ms: int) -> bool:
        self.polls_ms.append(timeout_ms)
        return self.join()


class JoiningConsumer(NetworkThreadConsumer):
    """With kafka-python 3.x's coordinator, which the projector's unaimed poll awaits the join with."""

    def __init__(self, **settings: Any):
        super().__init__(**settings)
        self._coordinator = StandInCoordinator()


class RecordingReader:
    """Stands in for the forked reading process: records each aim and the thread that made it; ``take`` hands out
    what a test queued."""

    made: list[RecordingReader] = []
    before_aim: Callable[[dict[TopicPartition, int | None]], None] | None = None
    """Called with each aim before it is made (a test's moment for the network thread to act)."""

    def __init__(self, *_args: Any, **_kwargs: Any):
        self.aims: list[tuple[dict[TopicPartition, int | None], str]] = []
        self.aimed = False
        self.on_take: Callable[[], list[ReadBatch] | None] = lambda: None
        self.ready: list[list[ReadBatch]] = []
        """Polls read already, after the one ``on_take`` gives: what ``take(..., ready_only=True)`` hands out."""
        RecordingReader.made.append(self)

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


def _runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, consumer: type[NetworkThreadConsumer]) -> ProjectionRunner:
    RecordingReader.made = []
    RecordingReader.before_aim = None
    monkeypatch.setattr(consumer_module, "AssignedReader", RecordingReader)
    return ProjectionRunner(
        projection=SpyProjection(), engine=create_sql_engine(f"sqlite:///{tmp_path}/view.sqlite"), topics=[TOPIC],
        kafka_config={}, dead_letter_topic="t.dead", consumer_factory=consumer,
        dead_letter_producer=NoDeadLetters(),  # type: ignore[arg-type]
        provenance=None, parallel=True,
    )


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProjectionRunner]:
    made = _runner(tmp_path, monkeypatch, NetworkThreadConsumer)
    yield made
    made.close()


@pytest.fixture
def joining(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProjectionRunner]:
    made = _runner(tmp_path, monkeypatch, JoiningConsumer)
    yield made
    made.close()


def _consumer(runner: ProjectionRunner) -> NetworkThreadConsumer:
    consumer = runner.consumer
    assert isinstance(consumer, NetworkThreadConsumer)
    return consumer


def _reader() -> RecordingReader:
    assert len(RecordingReader.made) == 1
    return RecordingReader.made[0]


def test_an_assignment_that_comes_while_the_projector_aims_at_the_one_before_is_the_one_read(
    runner: ProjectionRunner,
) -> None:
    consumer = _consumer(runner)
    consumer.rebalance([])  # the first join: the topics' partitions not yet in the consumer's metadata

    # the group's next word lands while the projector's thread aims the new reading process at the empty one
    def rebalanced_meanwhile(aim: dict[TopicPartition, int | None]) -> None:
        if threading.current_thread() is threading.main_thread() and not aim and not consumer.assigned:
            consumer.rebalance(PARTITIONS)

    RecordingReader.before_aim = rebalanced_meanwhile
    for _ in range(3):
        runner.run_once(timeout_ms=10)

    reader = _reader()
    assert consumer.assigned == set(PARTITIONS)
    assert reader.aimed, f"the reading process reads nothing with every partition assigned: {reader.aims}"
    assert reader.aims[-1][0] == {tp: None for tp in PARTITIONS}  # from the beginning: nothing stored yet
    assert consumer.paused == set(PARTITIONS)  # the group member itself fetches nothing


def test_only_the_projectors_thread_aims_the_reading_process(runner: ProjectionRunner) -> None:
    consumer = _consumer(runner)
    runner.run_once(timeout_ms=10)
    for partitions in ([], PARTITIONS, PARTITIONS[:1], PARTITIONS):
        consumer.rebalance(partitions)
        runner.run_once(timeout_ms=10)
    reader = _reader()
    assert {thread for _aim, thread in reader.aims} == {threading.main_thread().name}
    assert reader.aims[-1][0] == {tp: None for tp in PARTITIONS}


def test_a_poll_read_before_a_rebalance_is_not_applied_but_read_again(runner: ProjectionRunner) -> None:
    consumer = _consumer(runner)
    consumer.rebalance(PARTITIONS)
    runner.run_once(timeout_ms=10)
    reader = _reader()
    aims_before = len(reader.aims)
    event = {"event_id": "11111111-1111-4111-8111-111111111111"}
    poll = [ReadBatch(TOPIC, 0, [0], [b"k"], [b"{}"], [None], [None], [event], {})]

    def read_then_rebalanced() -> list[ReadBatch]:
        consumer.rebalance(PARTITIONS)  # revoked and assigned again while the poll was on its way
        reader.on_take = lambda: poll
        return poll

    reader.on_take = read_then_rebalanced
    projection = runner.projection
    assert isinstance(projection, SpyProjection)
    assert runner.run_once(timeout_ms=10) == 0
    assert projection.applied == []
    assert runner.run_once(timeout_ms=10) == 1  # aimed again from the stored offsets, read again, applied
    assert projection.applied == [event]
    assert len(reader.aims) == aims_before + 1


class StrandedCoordinator:
    """kafka-python 3.0.12's coordinator as far as a join goes: a poll finishes a join (applies its assignment,
    calls the listener) only while ``need_rejoin()``. A leader rejoining for new topic metadata has
    ``need_rejoin()`` False once it computed the assignment, mid-join: if the poll's wait ended then, the join
    is left ``rejoining`` with nobody to finish it."""

    def __init__(self, finish_join: Callable[[], None]) -> None:
        self.rejoining = True  # the second join (the topics' partitions came) started, and its wait ended
        self.rejoin_needed = False  # ... after the leader computed the assignment
        self.rejoins_asked = 0
        self._finish_join = finish_join

    def need_rejoin(self) -> bool:
        return self.rejoin_needed

    def request_rejoin(self) -> None:
        self.rejoins_asked += 1
        self.rejoin_needed = True

    def poll(self, timeout_ms: int) -> bool:
        if self.rejoin_needed:  # awaited: the join ends, its assignment applied, the listener called
            self._finish_join()
            self.rejoining = self.rejoin_needed = False
        return True  # nothing due (a join left stranded is not awaited)


class StrandingConsumer(NetworkThreadConsumer):
    def __init__(self, **settings: Any):
        super().__init__(**settings)
        self._coordinator = StrandedCoordinator(lambda: self.rebalance(PARTITIONS))

    def poll(self, timeout_ms: int = 0) -> dict[Any, Any]:
        self._coordinator.poll(timeout_ms)  # as kafka-python's consumer polls its coordinator first
        return super().poll(timeout_ms)


def test_a_join_kafka_python_left_unfinished_is_asked_for_again_and_its_assignment_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Traced in `make test` (sixteenth round): the first assignment empty, the second join's wait ended after the
    leader computed the assignment, and no later poll finished it: a projector with nothing assigned, for good."""
    runner = _runner(tmp_path, monkeypatch, StrandingConsumer)
    try:
        consumer = runner.consumer
        assert isinstance(consumer, StrandingConsumer)
        for _ in range(3):
            runner.run_once(timeout_ms=10)
        assert consumer._coordinator.rejoins_asked == 1
        assert _reader().aims[-1][0] == {tp: None for tp in PARTITIONS}
        runner.run_once(timeout_ms=10)
        assert consumer._coordinator.rejoins_asked == 1  # a finished join is left alone
    finally:
        runner.close()


def test_a_member_in_the_group_or_joining_is_not_asked_to_rejoin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _runner(tmp_path, monkeypatch, StrandingConsumer)
    try:
        consumer = runner.consumer
        assert isinstance(consumer, StrandingConsumer)
        coordinator = consumer._coordinator
        coordinator.rejoining, coordinator.rejoin_needed = True, True  # a join due: the poll awaits it
        runner.run_once(timeout_ms=10)
        coordinator.rejoining = coordinator.rejoin_needed = False  # in the group
        runner.run_once(timeout_ms=10)
        assert coordinator.rejoins_asked == 0
    finally:
        runner.close()


def _coordinator(runner: ProjectionRunner) -> StandInCoordinator:
    consumer = runner.consumer
    assert isinstance(consumer, JoiningConsumer)
    return consumer._coordinator


def test_an_assignment_that_ends_the_join_is_followed_at_once_not_when_a_500_ms_poll_ends(
    joining: ProjectionRunner,
) -> None:
    """kafka-python's ``poll`` sleeps out its whole timeout while every partition is paused: an assignment that
    came early in the unaimed projector's 500 ms poll was aimed at only when that poll ended."""
    consumer, coordinator = _consumer(joining), _coordinator(joining)
    joining.run_once(timeout_ms=500)  # the new reading process is aimed at nothing: the group said nothing yet
    reader = _reader()
    assert [aim for aim, _thread in reader.aims] == [{}]
    consumer.polls_ms.clear()

    def joined() -> bool:
        consumer.rebalance(PARTITIONS)  # the join ends: the listener is called on the network thread
        return True

    coordinator.join = joined
    joining.run_once(timeout_ms=500)

    assert reader.aims[-1][0] == {tp: None for tp in PARTITIONS}
    assert coordinator.polls_ms[-1] == 500  # the join awaited as long as before
    assert consumer.polls_ms == [0]  # then no sleeping out the rest of a 500 ms poll


def test_a_join_still_going_when_its_wait_ends_is_awaited_again_by_the_next_call(joining: ProjectionRunner) -> None:
    consumer, coordinator = _consumer(joining), _coordinator(joining)
    joining.run_once(timeout_ms=500)
    reader = _reader()
    consumer.polls_ms.clear()
    coordinator.join = lambda: False  # the broker has not answered the JoinGroup yet
    assert joining.run_once(timeout_ms=500) == 0
    assert consumer.polls_ms == []  # nothing to fetch (every partition paused) and no second wait for the join
    assert [aim for aim, _thread in reader.aims] == [{}]

    def joined() -> bool:
        consumer.rebalance(PARTITIONS)
        return True

    coordinator.join = joined
    joining.run_once(timeout_ms=500)
    assert reader.aims[-1][0] == {tp: None for tp in PARTITIONS}


def test_an_unaimed_member_with_nothing_new_waits_out_its_poll_no_busy_loop(joining: ProjectionRunner) -> None:
    """In the group with nothing assigned to it (more projectors than partitions): it still waits its time."""
    consumer = _consumer(joining)
    consumer.rebalance([])
    joining.run_once(timeout_ms=500)
    consumer.polls_ms.clear()
    joining.run_once(timeout_ms=500)
    assert len(consumer.polls_ms) == 1
    assert 400 < consumer.polls_ms[0] <= 500
