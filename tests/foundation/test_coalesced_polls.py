"""Polls the reading process has ready when the projector has applied the one before are applied with it, in one
transaction (one durable commit for them all, at most ``COALESCED_POLLS``), taken one at a time; a projector that
is not behind waits for none. The consumer and the reading process are stand-ins
(``tests/support/projector_stand_ins.py``)."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from services.common.assigned_reader import ReadBatch
from services.common.consumer import COALESCED_POLLS, ProjectionRunner
from tests.support.projector_stand_ins import (
    PARTITIONS,
    TOPIC,
    NetworkThreadConsumer,
    SpyProjection,
    stand_in_runner,
    the_reader,
)


def _poll(*batches: tuple[int, list[int]]) -> list[ReadBatch]:
    """A poll: for each (partition, offsets) a batch whose events are named after their partition and offset."""
    return [
        ReadBatch(
            TOPIC, partition, offsets, [b"k"] * len(offsets), [b"{}"] * len(offsets), [None] * len(offsets),
            [None] * len(offsets), [{"event_id": f"p{partition}-o{offset}"} for offset in offsets], {},
        )
        for partition, offsets in batches
    ]


@pytest.fixture
def aimed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProjectionRunner]:
    runner = stand_in_runner(tmp_path, monkeypatch, NetworkThreadConsumer)
    consumer = runner.consumer
    assert isinstance(consumer, NetworkThreadConsumer)
    consumer.rebalance(PARTITIONS)
    runner.run_once(timeout_ms=10)  # aims the reading process
    assert the_reader().aimed
    yield runner
    runner.close()


def _commits(runner: ProjectionRunner) -> list[int]:
    commits: list[int] = []
    event.listen(runner.engine, "commit", lambda _connection: commits.append(1))
    return commits


def _applied_ids(runner: ProjectionRunner) -> list[str]:
    projection = runner.projection
    assert isinstance(projection, SpyProjection)
    return [envelope["event_id"] for envelope in projection.applied]


def test_polls_read_before_the_first_was_taken_are_applied_with_it_in_one_commit(aimed: ProjectionRunner) -> None:
    reader = the_reader()
    first = _poll((0, [0, 1]), (1, [0]))
    reader.on_take = lambda: first
    reader.ready = [_poll((0, [2]), (2, [0])), _poll((1, [1, 2]))]
    commits = _commits(aimed)

    assert aimed.run_once(timeout_ms=10) == 7
    assert len(commits) == 1
    ids = _applied_ids(aimed)
    assert sorted(ids) == sorted(["p0-o0", "p0-o1", "p0-o2", "p1-o0", "p1-o1", "p1-o2", "p2-o0"])
    for partition in range(3):  # each partition's events in the order read
        mine = [i for i in ids if i.startswith(f"p{partition}-")]
        assert mine == sorted(mine)
    # each partition's offset stored past the last event applied, in that same commit
    assert {p: aimed.offsets.next_offset(TOPIC, p) for p in range(3)} == {0: 3, 1: 3, 2: 1}


def test_no_more_than_coalesced_polls_go_in_one_transaction(aimed: ProjectionRunner) -> None:
    reader = the_reader()
    reader.on_take = lambda: _poll((0, [0]))
    reader.ready = [_poll((0, [offset])) for offset in range(1, 6)]
    assert aimed.run_once(timeout_ms=10) == COALESCED_POLLS
    assert len(reader.ready) == 6 - COALESCED_POLLS
    assert aimed.offsets.next_offset(TOPIC, 0) == COALESCED_POLLS


def test_a_projector_that_is_not_behind_applies_its_one_poll(aimed: ProjectionRunner) -> None:
    reader = the_reader()
    taken: list[Any] = []
    reader.on_take = lambda: taken.append(1) or _poll((0, [0, 1]))  # type: ignore[func-returns-value]
    assert aimed.run_once(timeout_ms=10) == 2
    assert taken == [1]  # the poll it took, and no wait for another
    assert _applied_ids(aimed) == ["p0-o0", "p0-o1"]


def test_each_later_poll_is_taken_only_when_the_one_before_is_applied_and_let_go(aimed: ProjectionRunner) -> None:
    """The projector holds one poll's envelopes at a time: three polls held at once raised its memory ~40 MiB
    (bench row 6, issue 17, thirty-second round)."""
    reader = the_reader()
    alive: list[list[weakref.ref[ReadBatch]]] = []

    def watched(poll: list[ReadBatch]) -> list[ReadBatch]:
        alive.append([weakref.ref(batch) for batch in poll])
        return poll

    reader.on_take = lambda: watched(_poll((0, [0, 1]), (1, [0])))
    reader.ready = [_poll((0, [2]), (2, [0])), _poll((1, [1, 2]))]
    ready_take = reader.take
    at_each_later_take: list[tuple[int, list[bool]]] = []

    def take(timeout_s: float, *, ready_only: bool = False) -> list[ReadBatch] | None:
        if ready_only:
            at_each_later_take.append((len(_applied_ids(aimed)), [ref() is None for refs in alive for ref in refs]))
        poll = ready_take(timeout_s, ready_only=ready_only)
        return watched(poll) if ready_only and poll is not None else poll

    reader.take = take  # type: ignore[method-assign]
    commits = _commits(aimed)

    assert aimed.run_once(timeout_ms=10) == 7
    assert len(commits) == 1
    # the second poll taken when the first's 3 events were applied and its batches let go, the third likewise
    assert at_each_later_take == [(3, [True, True]), (5, [True, True, True, True])]
