"""Retries after a lost race take turns within a process (services/common/retry.py).

CI saw 3 of 50 clients advancing one grant get 409 after 5 s of retries: every loser of a process
retried at once and only one could win each round. The store below is a versioned counter that
refuses a save whose version moved since the load, like the event store.
"""

from __future__ import annotations

import threading
import time

import pytest

from services.common import retry
from services.common.retry import retry_on


class LostRace(Exception):
    pass


class Counter:
    def __init__(self) -> None:
        self.version = 0
        self.lock = threading.Lock()
        self.attempts = 0
        self.retrying = 0
        self.most_retrying_at_once = 0

    def add_one(self, decide_s: float, retrying: bool) -> None:
        with self.lock:
            self.attempts += 1
            seen = self.version
            if retrying:
                self.retrying += 1
                self.most_retrying_at_once = max(self.most_retrying_at_once, self.retrying)
        try:
            time.sleep(decide_s)
            with self.lock:
                if self.version != seen:
                    raise LostRace
                self.version += 1
        finally:
            if retrying:
                with self.lock:
                    self.retrying -= 1


def race(counter: Counter, clients: int, decide_s: float = 0.003) -> list[BaseException]:
    tries: dict[int, int] = {}
    failures: list[BaseException] = []
    barrier = threading.Barrier(clients, timeout=10)

    def client(n: int) -> None:
        @retry_on(LostRace)
        def command() -> None:
            tries[n] = tries.get(n, 0) + 1
            counter.add_one(decide_s, retrying=tries[n] > 1)

        barrier.wait()
        try:
            command()
        except BaseException as error:  # noqa: BLE001 - collected and asserted
            failures.append(error)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return failures


def test_the_losers_of_a_race_retry_one_at_a_time_and_all_win() -> None:
    counter = Counter()
    assert race(counter, clients=16) == []
    assert counter.version == 16
    assert counter.most_retrying_at_once == 1
    # 16 first tries, then each loser wins its turn unless a first try slipped in between
    assert counter.attempts <= 2 * 16


def test_a_retried_command_may_run_another_retried_command() -> None:
    counter = Counter()
    calls: list[str] = []

    @retry_on(LostRace)
    def inner() -> None:
        calls.append("inner")
        if calls.count("inner") == 1:
            raise LostRace

    @retry_on(LostRace)
    def outer() -> None:
        calls.append("outer")
        if calls.count("outer") == 1:
            raise LostRace  # outer now holds the turn while it retries
        inner()  # loses once, then retries within the turn it already holds
        counter.version += 1

    finished = threading.Event()

    def run_outer() -> None:
        outer()
        finished.set()

    runner = threading.Thread(target=run_outer, daemon=True)
    runner.start()
    assert finished.wait(timeout=5), "a nested retried command waited for its own turn"
    assert calls == ["outer", "outer", "inner", "inner"]


def test_a_loser_that_waits_past_its_deadline_for_the_turn_gets_the_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "CONFLICT_DEADLINE_S", 0.3)
    lost_once = threading.Event()
    in_turn = threading.Event()
    release = threading.Event()

    @retry_on(LostRace)
    def slow_retry() -> None:
        if not lost_once.is_set():
            lost_once.set()
            raise LostRace  # into the turn...
        in_turn.set()
        release.wait(timeout=10)  # ...and keeps it

    @retry_on(LostRace)
    def always_loses() -> None:
        raise LostRace

    holder = threading.Thread(target=slow_retry, daemon=True)
    holder.start()
    assert in_turn.wait(timeout=5)
    started = time.monotonic()
    with pytest.raises(LostRace):
        always_loses()
    waited_s = time.monotonic() - started
    release.set()
    holder.join(timeout=5)
    assert waited_s < 2.0
