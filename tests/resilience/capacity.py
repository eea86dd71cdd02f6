"""Issue 19, Must show 2: the write path's capacity measured at the start of a run, and postings paced at
a share of it while a fault is injected.

``measure_capacity``: a closed-loop burst against the stack's ledger (``clients`` threads, each posting as
soon as its previous posting was answered) for ``burst_s`` seconds; the capacity is the postings answered
201 per second. It is measured on the same machine, stack and Kafka as the fault that follows, not taken
from a constant: the machine may be busier or idler than the one a constant came from.

What is written is a ``Writes``: ``Postings`` (the ledger's expenditures, the fault tests' load) or a mix of
the three services' writes (``soak_mix.py``); every write carries an Idempotency-Key, so an unknown answer is
retried with the same key.

``PacedPostings``: writes at a fixed rate, open loop. Posting k is due at ``start + k / rate``; its latency
is counted from that moment, so a stall counts for every posting that was due during it, not only for the
few requests in flight (no coordinated omission up to ``workers`` postings in flight). An unknown answer
(no answer, or a 5xx) is retried with the same Idempotency-Key, as ``Load``'s municipalities do.

Every loop is bounded in count and in time; everything goes to 127.0.0.1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tests.resilience.load import MAX_ATTEMPTS, RETRY_SLEEP_S
from tests.resilience.stack import MUNICIPALITIES, expenditure
from tests.resilience.support import Client, LoadStats, StackEnv

UNKNOWN = (0, 500, 502, 503, 504)


@dataclass(frozen=True)
class Write:
    """One write: where it goes, its body and headers (with its Idempotency-Key), and how the id of the event
    it recorded is read from its 201 answer."""

    port: int
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    event_id: Callable[[Any], str]
    what: str

    @property
    def key(self) -> str:
        return self.headers["Idempotency-Key"]


class Writes(Protocol):
    def write(self, n: int, tag: str) -> Write:
        """The ``n``-th write of a run tagged ``tag``: the same ``(n, tag)`` always gives the same request."""
        ...


class Postings:
    """The ledger's postings of expenditures, by the six municipalities in turn."""

    def __init__(self, stack: StackEnv, ledger_port: int):
        self.port = ledger_port
        self.headers = {code: stack.headers("municipality", code) for code in MUNICIPALITIES}

    def write(self, n: int, tag: str) -> Write:
        code = MUNICIPALITIES[n % len(MUNICIPALITIES)]
        return Write(self.port, f"/v1/municipalities/{code}/expenditures", expenditure(n, 100 + n % 1000, tag=tag),
                     {**self.headers[code], "Idempotency-Key": f"{tag}-{n}"}, lambda body: str(body["event_id"]),
                     "POST expenditures")


@dataclass(frozen=True)
class Capacity:
    postings: int
    seconds: float
    clients: int

    @property
    def per_s(self) -> float:
        return self.postings / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Posted:
    """One paced posting: when it was due and when its final answer came (monotonic seconds)."""

    due_s: float
    answered_s: float
    status: int
    attempts: int

    @property
    def latency_s(self) -> float:
        return self.answered_s - self.due_s


@dataclass
class Accepted201:
    """Idempotency-Key -> event id of every posting answered 201; failures a client gave up on."""

    event_ids: dict[str, str] = field(default_factory=dict)
    gave_up: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _write_until_known(
    client: Client, write: Write, stats: LoadStats, accepted: Accepted201, stop: threading.Event,
) -> tuple[int, int]:
    """Sends until the answer is known (201 or a refusal) or the attempts run out; (status, attempts)."""
    status = 0
    for attempt in range(1, MAX_ATTEMPTS + 1):
        answer = client.request("POST", write.path, write.body, headers=write.headers)
        stats.count(answer, write.what)
        status = answer.status
        if status == 201:
            with accepted.lock:
                accepted.event_ids[write.key] = write.event_id(answer.body)
            return status, attempt
        if status not in UNKNOWN:
            with accepted.lock:
                accepted.gave_up.append(f"{write.key}: {status} {str(answer.body)[:200]}")
            return status, attempt
        if stop.is_set() and attempt >= 40:
            break  # the run is over: ten more seconds of retries at most
        time.sleep(RETRY_SLEEP_S)
    with accepted.lock:
        accepted.gave_up.append(f"{write.key}: still unknown after {attempt} attempts ({status})")
    return status, attempt


class _Clients:
    """One keep-alive connection per port for one thread."""

    def __init__(self) -> None:
        self.by_port: dict[int, Client] = {}

    def to(self, port: int) -> Client:
        if port not in self.by_port:
            self.by_port[port] = Client(port, {}, timeout_s=15)
        return self.by_port[port]

    def close(self) -> None:
        for client in self.by_port.values():
            client.close()


def measure_capacity(
    writes: Writes, accepted: Accepted201, *, clients: int = 8, burst_s: float = 10.0, max_postings: int = 100_000,
) -> Capacity:
    """Writes answered 201 per second by ``clients`` closed-loop clients during ``burst_s`` seconds."""
    stats = LoadStats()
    stop = threading.Event()
    counter = iter(range(max_postings))
    counter_lock = threading.Lock()
    done: list[int] = []

    def client_loop() -> None:
        connections = _Clients()
        try:
            while not stop.is_set():
                with counter_lock:
                    n = next(counter, None)
                if n is None:
                    return
                write = writes.write(n, "capacity")
                status, _ = _write_until_known(connections.to(write.port), write, stats, accepted, stop)
                if status == 201:
                    with counter_lock:
                        done.append(n)
        finally:
            connections.close()

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    stop.wait(burst_s)  # holds the burst for its length; the threads stop at the next answer
    with counter_lock:
        answered, seconds = len(done), time.monotonic() - started
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a capacity client did not stop"
    return Capacity(postings=answered, seconds=seconds, clients=clients)


class PacedPostings:
    """Writes due at ``rate_per_s``, by up to ``workers`` at once, until ``finish``, ``max_postings`` or
    ``max_seconds``."""

    def __init__(self, writes: Writes, accepted: Accepted201, *, rate_per_s: float,
                 max_postings: int, max_seconds: float, workers: int = 16):
        assert rate_per_s > 0
        self.writes = writes
        self.accepted = accepted
        self.rate_per_s = rate_per_s
        self.max_postings = max_postings
        self.workers = workers
        self.stats = LoadStats()
        self.posted: list[Posted] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.next_slot = 0
        self.started = 0.0
        self.deadline = 0.0
        self.max_seconds = max_seconds
        self.threads: list[threading.Thread] = []

    def _slot(self) -> int | None:
        with self.lock:
            if self.stop.is_set() or self.next_slot >= self.max_postings:
                return None
            slot = self.next_slot
            if self.started + slot / self.rate_per_s >= self.deadline:
                return None
            self.next_slot += 1
            return slot

    def _worker(self) -> None:
        connections = _Clients()  # one keep-alive connection per worker and service
        try:
            while (slot := self._slot()) is not None:
                due = self.started + slot / self.rate_per_s
                # Pacing, not synchronisation: a posting is not sent before it is due.
                if self.stop.wait(max(0.0, due - time.monotonic())):
                    return
                write = self.writes.write(slot, "paced")
                status, attempts = _write_until_known(connections.to(write.port), write, self.stats, self.accepted,
                                                      self.stop)
                with self.lock:
                    self.posted.append(Posted(due, time.monotonic(), status, attempts))
        finally:
            connections.close()

    def start(self) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + self.max_seconds
        self.stats.started = self.started
        self.threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.workers)]
        for thread in self.threads:
            thread.start()

    def finish(self, timeout_s: float = 120) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=timeout_s)
        self.stats.ended = time.monotonic()
        assert not any(t.is_alive() for t in self.threads), "a paced worker did not stop"

    def answered(self) -> list[Posted]:
        with self.lock:
            return sorted(self.posted, key=lambda p: p.due_s)


@dataclass(frozen=True)
class Window:
    """What clients saw of a fault: the postings due from its start to its end."""

    postings: int
    p99_ms: float
    unavailable_s: float
    """The longest stretch in the window with no posting answered 201 (clients see the write path away)."""


def window_figures(posted: list[Posted], start_s: float, end_s: float) -> Window:
    due = [p for p in posted if start_s <= p.due_s <= end_s]
    latencies = sorted(p.latency_s for p in due)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 if latencies else 0.0
    answers = sorted(p.answered_s for p in posted if p.status == 201 and p.answered_s >= start_s)
    marks = [start_s, *(t for t in answers if t <= end_s)]
    after = next((t for t in answers if t > end_s), end_s)
    marks.append(after)
    gap = max((b - a for a, b in zip(marks, marks[1:], strict=False)), default=0.0)
    return Window(postings=len(due), p99_ms=round(p99, 1), unavailable_s=round(gap, 2))
