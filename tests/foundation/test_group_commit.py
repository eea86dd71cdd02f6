"""Group commit: concurrent saves share one transaction, and each request still gets its own outcome."""

from __future__ import annotations

import inspect
import logging
import threading
import time
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import pytest
from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError, OperationalError

from services.common.group_commit import GroupCommit, SavesGivenEvents
from services.common.observability import instrument_application
from services.common.recorded_log import begin_request, end_request, note, request_events


class Item(Aggregate):
    @staticmethod
    def create_id(name: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"urn:test-item:{name}")

    @event("Created")
    def __init__(self, name: str) -> None:
        self.name = name


class Gated:
    """Holds the first save until the others have queued behind it."""

    def __init__(self, application: Application[UUID]):
        self.application = application
        self.original = application.save
        self.calls: list[int] = []
        self.release = threading.Event()
        self.away_on_calls: set[int] = set()
        """The calls (1 is the first) that find the database away, after the store's own retries."""
        application.save = self  # type: ignore[method-assign]

    def __call__(self, *objs: Any) -> Any:
        self.calls.append(len(objs))
        if len(self.calls) == 1:
            assert self.release.wait(10)
        if len(self.calls) in self.away_on_calls:
            raise OperationalError("connection refused")
        return self.original(*objs)


def _wait_until(condition: Any) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def _run(saver: GroupCommit, gate: Gated, names: list[str]) -> dict[str, Any]:
    """Saves the first alone, the rest while it is held; returns each name's recordings or error."""
    outcomes: dict[str, Any] = {}

    def save(name: str) -> None:
        try:
            outcomes[name] = saver.save(Item(name))
        except Exception as error:  # noqa: BLE001 - the outcome under test
            outcomes[name] = error

    _held_first_run(saver, gate, names, save)
    return outcomes


def test_saves_that_arrive_during_a_commit_are_committed_together() -> None:
    application: Application[UUID] = Application()
    gate = Gated(application)
    saver = GroupCommit(application)
    names = [f"n{i}" for i in range(6)]
    outcomes = _run(saver, gate, names)
    assert gate.calls == [1, 5]  # one transaction for the five that queued
    assert saver.batches == 2
    for name in names:
        recordings = outcomes[name]
        assert [r.domain_event.originator_id for r in recordings] == [Item.create_id(name)]
        assert application.repository.get(Item.create_id(name)).name == name


def test_one_conflict_in_a_batch_fails_only_its_own_request() -> None:
    application: Application[UUID] = Application()
    application.save(Item("taken"))
    gate = Gated(application)
    saver = GroupCommit(application)
    outcomes = _run(saver, gate, ["first", "a", "taken", "b"])
    assert isinstance(outcomes["taken"], IntegrityError)
    for name in ("first", "a", "b"):
        assert not isinstance(outcomes[name], Exception), outcomes[name]
        assert application.repository.get(Item.create_id(name)).name == name
    # the batch of three failed as a whole, then each was saved on its own
    assert gate.calls == [1, 3, 1, 1, 1]
    assert len(application.recorder.select_notifications(start=None, limit=100)) == 4


def test_two_saves_of_the_same_version_in_one_batch_cost_no_failed_transaction() -> None:
    """Racing commands load a stream at the same version (50 clients advancing one grant): in one batch
    only the first of them can be stored. The later ones get the store's conflict at once, so the rest
    commits as one transaction, instead of the whole batch failing and each being saved on its own
    (a batch of 4 cost 5 transactions for one winner, and the losers' retries ran out of time)."""
    application: Application[UUID] = Application()
    gate = Gated(application)
    saver = GroupCommit(application)
    outcomes: dict[str, Any] = {}

    def save(label: str) -> None:
        try:
            outcomes[label] = saver.save(Item(label.split("#")[0]))
        except Exception as error:  # noqa: BLE001 - the outcome under test
            outcomes[label] = error

    _held_first_run(saver, gate, ["first", "same#1", "other", "same#2"], save)
    assert gate.calls == [1, 2]  # the first alone; then one of the two "same" and "other" together
    assert not isinstance(outcomes["other"], Exception)
    lost = [label for label in ("same#1", "same#2") if isinstance(outcomes[label], IntegrityError)]
    assert len(lost) == 1 and not isinstance(outcomes[({"same#1", "same#2"} - set(lost)).pop()], Exception)
    assert application.repository.get(Item.create_id("same")).name == "same"
    assert len(application.recorder.select_notifications(start=None, limit=100)) == 3


def test_a_batch_larger_than_the_limit_is_split() -> None:
    application: Application[UUID] = Application()
    gate = Gated(application)
    saver = GroupCommit(application, max_batch=2)
    names = [f"m{i}" for i in range(6)]
    outcomes = _run(saver, gate, names)
    assert gate.calls == [1, 2, 2, 1]
    assert all(not isinstance(o, Exception) for o in outcomes.values())
    assert len(application.recorder.select_notifications(start=None, limit=100)) == 6


def test_a_batch_that_finds_the_database_away_is_not_saved_again_item_by_item() -> None:
    # Each try waits out the store's own retries (about 2 s on PostgreSQL): three more tries would keep
    # the last of these requests 8 s before its 503 instead of 2 s.
    application: Application[UUID] = Application()
    gate = Gated(application)
    gate.away_on_calls = {2}
    saver = GroupCommit(application)
    outcomes = _run(saver, gate, ["first", "a", "b", "c"])
    assert gate.calls == [1, 3]
    assert not isinstance(outcomes["first"], Exception)
    for name in ("a", "b", "c"):
        assert isinstance(outcomes[name], OperationalError), outcomes[name]
        assert Item.create_id(name) not in application.repository
    assert saver.batches == 1


def test_saves_queued_behind_a_save_that_found_the_database_away_fail_at_once() -> None:
    application: Application[UUID] = Application()
    gate = Gated(application)
    gate.away_on_calls = {1}
    saver = GroupCommit(application, max_batch=2)  # the queue is longer than one batch
    names = [f"q{i}" for i in range(6)]
    outcomes = _run(saver, gate, names)
    assert gate.calls == [1]
    assert all(isinstance(outcomes[name], OperationalError) for name in names), outcomes
    assert not saver._queue and len(application.recorder.select_notifications(start=None, limit=100)) == 0
    # the database back: the next save goes through
    saver.save(Item("after"))
    assert gate.calls == [1, 1] and application.repository.get(Item.create_id("after")).name == "after"


@pytest.mark.parametrize("count", [1, 20])
def test_every_save_is_stored_once_under_free_concurrency(count: int) -> None:
    application: Application[UUID] = Application()
    saver = GroupCommit(application)
    threads = [threading.Thread(target=saver.save, args=(Item(f"c{i}"),)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    stored = application.recorder.select_notifications(start=None, limit=1000)
    assert len(stored) == count
    assert saver.batches <= count


def _held_first_run(saver: GroupCommit, gate: Gated, names: list[str], save: Any) -> None:
    """Runs ``save(name)`` in a thread per name: the first commits alone, held in the store until the
    others have queued behind it, so they commit as one batch."""
    threads = [threading.Thread(target=save, args=(name,)) for name in names]
    threads[0].start()
    _wait_until(lambda: gate.calls)
    for thread in threads[1:]:
        thread.start()
    _wait_until(lambda: len(saver._queue) == len(names) - 1)
    gate.release.set()
    for thread in threads:
        thread.join(10)


def test_each_request_of_a_batch_names_its_own_events_and_a_save_outside_one_logs_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    application: Application[UUID] = Application()
    instrument_application(application, lambda recordings: note([r.domain_event for r in recordings], "svc"))
    gate = Gated(application)
    saver = GroupCommit(application)
    named: dict[str, list[Any]] = {}

    def in_a_request(name: str) -> None:
        token = begin_request()
        try:
            saver.save(Item(name))
            named[name] = list(request_events())
        finally:
            end_request(token)

    names = [f"r{i}" for i in range(4)]
    with caplog.at_level(logging.INFO, logger="ido.events"):
        _held_first_run(saver, gate, names, in_a_request)
        assert (saver.batches, saver.saved) == (2, 4)  # the first alone, the three others in one batch
        assert {name: [e.originator_id for e in events] for name, events in named.items()} == {
            name: [Item.create_id(name)] for name in names
        }
        assert not caplog.records  # on the requests' own lines, none of their own

        saver.save(Item("outside"))  # no request (a command, the demo): a line of its own
    assert [r.getMessage() for r in caplog.records] == ["events recorded"]
    assert caplog.records[0].service == "svc"  # type: ignore[attr-defined]


class TurnOfAnotherProcess:
    """A store's turn among writer processes (the SQLite store's file lock), held by "another process"
    until released; it counts who took it."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.held_by_other = threading.Event()
        self.free = threading.Event()
        self.waiting = 0
        self.fail_next = False

    def hold(self) -> None:
        def other() -> None:
            with self.lock:
                self.held_by_other.set()
                assert self.free.wait(10)

        threading.Thread(target=other, daemon=True).start()
        assert self.held_by_other.wait(5)

    def __enter__(self) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OSError("the lock file cannot be opened")
        self.waiting += 1
        self.lock.acquire()
        self.waiting -= 1

    def __exit__(self, *exc: Any) -> None:
        self.lock.release()


def test_a_batch_is_picked_in_the_writers_turn_so_saves_queued_meanwhile_go_with_it() -> None:
    """While another process commits, the first save waits for the turn; the saves that queue meanwhile
    join its batch (picked before the wait, the batch would be the first save alone, the rest after)."""
    application: Application[UUID] = Application()
    turn = TurnOfAnotherProcess()
    application.recorder.writer_turn = turn  # type: ignore[attr-defined]
    saver = GroupCommit(application)
    turn.hold()
    outcomes: dict[str, Any] = {}

    def save(name: str) -> None:
        outcomes[name] = saver.save(Item(name))

    threads = [threading.Thread(target=save, args=(f"t{i}",)) for i in range(5)]
    threads[0].start()
    _wait_until(lambda: turn.waiting == 1)  # the first, the committer, waits for the other process
    for thread in threads[1:]:
        thread.start()
    _wait_until(lambda: len(saver._queue) == 5)
    turn.free.set()
    for thread in threads:
        thread.join(10)
    assert saver.batches == 1 and saver.saved == 5
    assert {name: len(recordings) for name, recordings in outcomes.items()} == {f"t{i}": 1 for i in range(5)}


def test_a_save_whose_turn_cannot_be_taken_fails_alone_and_leaves_nothing_queued() -> None:
    application: Application[UUID] = Application()
    turn = TurnOfAnotherProcess()
    turn.fail_next = True
    application.recorder.writer_turn = turn  # type: ignore[attr-defined]
    saver = GroupCommit(application)
    item = Item("refused")
    with pytest.raises(OSError):
        saver.save(item)
    assert saver._queue == []
    saver.save(Item("next"))  # the next save is not joined by the failed one
    assert saver.saved == 1
    with pytest.raises(Exception):  # noqa: B017, PT011 - the failed save was stored by no one
        application.repository.get(item.id)


# -- the save of given events (issue 17, twenty-fifth round) ---------------------------------------


class FastSaving(SavesGivenEvents, Application[UUID]):
    pass


def _stored(application: Application[UUID]) -> list[tuple[Any, ...]]:
    return [
        (n.originator_id, n.originator_version, n.topic, n.state)
        for n in application.recorder.select_notifications(start=1, limit=100)
    ]


def test_a_save_of_given_events_stores_and_tells_what_eventsourcings_save_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    items = [Item(f"given-{i}") for i in range(3)]
    events = [event for item in items for event in item.collect_events()]
    told: dict[str, list[Any]] = {"plain": [], "fast": []}
    plain, fast = Application[UUID](), FastSaving()
    plain.notify = told["plain"].extend  # type: ignore[method-assign,assignment]
    fast.notify = told["fast"].extend  # type: ignore[method-assign,assignment]
    expected = plain.save(*events)
    # eventsourcing's collect_events (its Protocol isinstance) is not asked for events given as they are
    monkeypatch.setattr(ProcessingEvent, "collect_events", lambda *_a, **_k: pytest.fail("asked"))
    recordings = fast.save(*events)
    assert [(r.domain_event, r.notification.id) for r in recordings] == [
        (r.domain_event, r.notification.id) for r in expected
    ]
    assert _stored(fast) == _stored(plain) and len(_stored(fast)) == 3
    assert told["fast"] == told["plain"] == events


def test_a_save_of_an_aggregate_is_eventsourcings_own() -> None:
    fast = FastSaving()
    item = Item("aggregate")
    fast.save(item)
    assert fast.repository.get(item.id).name == "aggregate"
    assert fast.save() == []  # nothing given: eventsourcing's own answer


def test_eventsourcings_save_is_still_the_one_the_mixin_was_written_from() -> None:
    """``SavesGivenEvents.save`` repeats the steps of eventsourcing 9.5.6's ``Application.save``; an upgrade
    that changes them must be read before the mixin is kept."""
    body = inspect.getsource(Application.save).split('"""')[-1]
    steps = [line.strip() for line in body.strip().splitlines()]
    assert steps == [
        "processing_event: ProcessingEvent[TAggregateID] = ProcessingEvent()",
        "processing_event.collect_events(*objs, **kwargs)",
        "recordings = self._record(processing_event)",
        "self._take_snapshots(processing_event)",
        "self._notify(recordings)",
        "self.notify(processing_event.events)  # Deprecated.",
        "return recordings",
    ]
