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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import TopicPartition

from services.common.assigned_reader import ReadBatch
from services.common.consumer import UNAIMED_POLL_MS, ProjectionRunner
from tests.support.projector_stand_ins import (
    PARTITIONS,
    TOPIC,
    JoiningConsumer,
    LateJoiningConsumer,
    NetworkThreadConsumer,
    RecordingReader,
    SpyProjection,
    StandInCoordinator,
    StrandedInPollConsumer,
    StrandingConsumer,
    stand_in_runner,
    the_reader,
)

MakeRunner = Callable[[type[NetworkThreadConsumer]], ProjectionRunner]
"""A runner around a stand-in consumer of the given class (the ``runner_with`` fixture)."""


@pytest.fixture
def runner_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeRunner]:
    """Makes the test's runner around a stand-in consumer of the given class; closes it after the test."""
    made: list[ProjectionRunner] = []

    def make(consumer_class: type[NetworkThreadConsumer]) -> ProjectionRunner:
        made.append(stand_in_runner(tmp_path, monkeypatch, consumer_class))
        return made[-1]

    yield make
    for each in made:
        each.close()


@pytest.fixture
def runner(runner_with: MakeRunner) -> ProjectionRunner:
    return runner_with(NetworkThreadConsumer)


@pytest.fixture
def joining(runner_with: MakeRunner) -> ProjectionRunner:
    return runner_with(JoiningConsumer)


def _consumer(runner: ProjectionRunner) -> NetworkThreadConsumer:
    consumer = runner.consumer
    assert isinstance(consumer, NetworkThreadConsumer)
    return consumer


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

    reader = the_reader()
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
    reader = the_reader()
    assert {thread for _aim, thread in reader.aims} == {threading.main_thread().name}
    assert reader.aims[-1][0] == {tp: None for tp in PARTITIONS}


def test_a_poll_read_before_a_rebalance_is_not_applied_but_read_again(runner: ProjectionRunner) -> None:
    consumer = _consumer(runner)
    consumer.rebalance(PARTITIONS)
    runner.run_once(timeout_ms=10)
    reader = the_reader()
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


def test_a_join_kafka_python_left_unfinished_is_asked_for_again_and_its_assignment_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Traced in `make test` (sixteenth round): the first assignment empty, the second join's wait ended after the
    leader computed the assignment, and no later poll finished it: a projector with nothing assigned, for good."""
    runner = stand_in_runner(tmp_path, monkeypatch, StrandingConsumer)
    try:
        consumer = runner.consumer
        assert isinstance(consumer, StrandingConsumer)
        for _ in range(3):
            runner.run_once(timeout_ms=10)
        assert consumer._coordinator.rejoins_asked == 1
        assert the_reader().aims[-1][0] == {tp: None for tp in PARTITIONS}
        runner.run_once(timeout_ms=10)
        assert consumer._coordinator.rejoins_asked == 1  # a finished join is left alone
    finally:
        runner.close()


def test_a_member_in_the_group_or_joining_is_not_asked_to_rejoin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = stand_in_runner(tmp_path, monkeypatch, StrandingConsumer)
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
    reader = the_reader()
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
    reader = the_reader()
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
    """In the group with nothing assigned to it (more projectors than partitions): it still waits its time, in
    polls of ``UNAIMED_POLL_MS``."""
    consumer = _consumer(joining)
    consumer.rebalance([])
    joining.run_once(timeout_ms=500)
    consumer.polls_ms.clear()
    joining.run_once(timeout_ms=500)
    assert 400 < sum(consumer.polls_ms) <= 500
    assert max(consumer.polls_ms) <= UNAIMED_POLL_MS
    assert len(consumer.polls_ms) <= 500 // UNAIMED_POLL_MS + 1


@pytest.fixture
def late_joining(runner_with: MakeRunner) -> ProjectionRunner:
    return runner_with(LateJoiningConsumer)


@pytest.fixture
def stranded_in_poll(runner_with: MakeRunner) -> ProjectionRunner:
    return runner_with(StrandedInPollConsumer)


def _aimed_at_an_empty_first_assignment(runner: ProjectionRunner) -> RecordingReader:
    """The group's first assignment, empty (the topics just made), followed: the reading process aimed at nothing;
    the consumer's polls forgotten."""
    consumer = _consumer(runner)
    consumer.rebalance([])
    runner.run_once(timeout_ms=500)
    reader = the_reader()
    assert [aim for aim, _thread in reader.aims] == [{}]
    consumer.polls_ms.clear()
    return reader


def test_an_assignment_made_inside_the_unaimed_poll_is_followed_after_that_poll_not_after_500_ms(
    late_joining: ProjectionRunner,
) -> None:
    """The group's first assignment is often empty (the topics just made), and the join that brings the partitions
    is finished inside a later consumer poll, after the coordinator's poll said the member is in the group. The
    projector sat out the rest of that 500 ms poll before it aimed: bench row 3 read nothing for ~0.5 s."""
    consumer = late_joining.consumer
    assert isinstance(consumer, LateJoiningConsumer)
    reader = _aimed_at_an_empty_first_assignment(late_joining)

    consumer.joins_in_poll = [PARTITIONS]
    late_joining.run_once(timeout_ms=500)

    assert reader.aims[-1][0] == {tp: None for tp in PARTITIONS}
    assert consumer.polls_ms == [UNAIMED_POLL_MS, 0]  # the poll that joined was the last that waited


def test_a_join_a_short_unaimed_poll_left_unfinished_is_asked_for_again_and_awaited_in_the_same_call(
    stranded_in_poll: ProjectionRunner,
) -> None:
    """A poll of ``UNAIMED_POLL_MS`` may end mid-join and strand it; it is rescued within the same call, not after
    the call's 500 ms (bench row 3 lost 0.5 s to it 2-5 times a `make bench`)."""
    consumer = stranded_in_poll.consumer
    assert isinstance(consumer, StrandedInPollConsumer)
    reader = _aimed_at_an_empty_first_assignment(stranded_in_poll)

    consumer.strand_in_next_poll = True
    stranded_in_poll.run_once(timeout_ms=500)

    assert reader.aims[-1][0] == {tp: None for tp in PARTITIONS}
    assert consumer._coordinator.rejoins_asked == 1
    assert consumer.polls_ms == [UNAIMED_POLL_MS, 0]
    assert consumer._coordinator.polls_ms[-1] > 400  # the join awaited for the rest of the call's time


def test_the_projector_joins_its_group_only_once_its_reading_process_has_started(runner: ProjectionRunner) -> None:
    consumer = _consumer(runner)
    RecordingReader.has_started = False  # still connecting, its topics' partitions not yet known
    assert runner.run_once(timeout_ms=10) == 0
    assert runner.run_once(timeout_ms=10) == 0
    assert consumer.polls_ms == []  # the group member has not polled: it has not joined, it holds nothing unread
    assert the_reader().aims == []

    RecordingReader.has_started = True
    consumer.rebalance(PARTITIONS)
    runner.run_once(timeout_ms=10)
    assert consumer.polls_ms  # now it polls the group
    assert the_reader().aims[-1][0] == {tp: None for tp in PARTITIONS}
