"""Polls the reading process read before the projector took the first are applied with it, in one transaction
(one durable commit for them all, at most ``COALESCED_POLLS``); a projector that is not behind waits for none.
The consumer and the reading process are stand-ins (``tests/support/projector_stand_ins.py``)."""

from __future__ import annotations

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


def test_a_batch_followed_by_a_later_one_keeps_each_messages_own_headers() -> None:
    irregular_first: dict[int, list[tuple[str, Any]]] = {1: [("ido-seal", b"a"), ("ido-seal", b"b")]}
    irregular_later: dict[int, list[tuple[str, Any]]] = {0: []}
    first = ReadBatch(TOPIC, 0, [5, 6], [b"k5", b"k6"], [b"v5", b"v6"], [b"s", None], [b"p", None], ["V5", "V6"],
                      irregular_first)
    later = ReadBatch(TOPIC, 0, [7, 8], [b"k7", b"k8"], [b"v7", b"v8"], [b"s7", b"s8"], [b"p7", b"p8"], ["V7", "V8"],
                      irregular_later)  # type: ignore[arg-type]
    joined = first.then(later)
    assert joined.offsets == [5, 6, 7, 8]
    assert joined.verdicts == ["V5", "V6", "V7", "V8"]
    assert [joined.record(i).offset for i in range(4)] == [5, 6, 7, 8]
    assert [joined.record(i).value for i in range(4)] == [b"v5", b"v6", b"v7", b"v8"]
    assert joined.record(1).headers == [("ido-seal", b"a"), ("ido-seal", b"b")]
    assert joined.record(2).headers == []  # the later batch's irregular message, at its new index
    assert joined.record(3).headers == [("ido-seal", b"s8"), ("ido-seal-proof", b"p8")]
