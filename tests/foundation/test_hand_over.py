"""The hand-over of the reading processes (services/common/check_process.py ``HandOver``): which batches come
unchecked for the process that applies them, following the two processes' pace."""

from __future__ import annotations

import pytest

from services.common.check_process import HAND_OVER_STEP, HandOver


def test_the_hand_over_follows_the_receivers_pace() -> None:
    """A batch after the receiver (the projector, the replay) waited goes unchecked; while it keeps waiting the share
    grows, while it is behind it shrinks to nothing; in between the share is what the waits made it."""
    policy = HandOver()
    assert not policy.unchecked(waited=False, behind=False)  # at first, the process checks all
    assert policy.unchecked(waited=True, behind=False)
    for _ in range(5):
        policy.unchecked(waited=True, behind=False)
    assert policy.share == pytest.approx(6 * HAND_OVER_STEP)
    steady = [policy.unchecked(waited=False, behind=False) for _ in range(1000)]
    assert sum(steady) == pytest.approx(1000 * policy.share, abs=1)
    for _ in range(200):
        policy.unchecked(waited=False, behind=True)
    assert policy.share == 0
    assert not any(policy.unchecked(waited=False, behind=False) for _ in range(100))
    for _ in range(100):
        policy.unchecked(waited=True, behind=False)
    assert policy.share == 1.0
