"""The collector of the processes that stream events (services/common/collector.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services.common.collector import STREAM_YOUNG_THRESHOLD, settle


@pytest.fixture
def collector_restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


@pytest.mark.usefixtures("collector_restored")
def test_a_streaming_process_freezes_what_it_built_and_collects_the_young_less_often() -> None:
    built = [[i] for i in range(1000)]  # tracked containers, alive as a process's start-up objects are
    frozen_before = gc.get_freeze_count()
    older = gc.get_threshold()[1:]
    settle()
    assert gc.get_freeze_count() >= frozen_before + len(built)
    assert gc.get_threshold() == (STREAM_YOUNG_THRESHOLD, *older)
    assert STREAM_YOUNG_THRESHOLD > 700  # CPython's own: a poll's objects were walked again and again


@pytest.mark.usefixtures("collector_restored")
def test_a_server_worker_freezes_but_keeps_cpythons_young_threshold() -> None:
    """A young collection is a pause in some request: a server worker keeps them short."""
    built = [[i] for i in range(1000)]
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    settle(young_threshold=None)
    assert gc.get_freeze_count() >= frozen_before + len(built)
    assert gc.get_threshold() == before
