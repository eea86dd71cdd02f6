"""The load of the fault tests: municipalities post expenditures, the ministry pays advances, an
auditor reads balances; every loop bounded in count and in time, to 127.0.0.1 only.

Municipalities send an ``Idempotency-Key`` with each posting and, when the answer is unknown (no
answer, or a 5xx), retry the same key until it is accepted, as a client should. The ministry's and
the KB's clients deliberately send none (every write route takes one since issue 14, and
``test_idempotency_races.py`` races them): they show the other way a client can stay exact, reconciling
an unknown answer by reading the history: each payment has a unique amount, and it is sent again
only when it is not there.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.resilience.stack import BRIDGE_LIBRARY, MUNICIPALITIES, YEAR, expenditure
from tests.resilience.support import Answer, Client, LoadStats, Proc, Processes, StackEnv

RETRY_SLEEP_S = 0.25
MAX_ATTEMPTS = 720
"""A key is retried for up to about 180 s of failures: a whole cluster stopped and started again on a busy
machine, with writes refused (503) until its relay publishes again, took more than 60 s."""


@dataclass
class Accepted:
    """What the clients were told is stored: Idempotency-Key or advance amount -> event id."""

    postings: dict[str, str] = field(default_factory=dict)
    posting_amounts: dict[str, int] = field(default_factory=dict)
    advances: dict[int, str] = field(default_factory=dict)
    bridge_payments: dict[int, str] = field(default_factory=dict)
    imports: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def posting_ids(self) -> set[str]:
        with self.lock:
            return set(self.postings.values())

    def event_ids(self) -> set[str]:
        with self.lock:
            imported = (i for ids in self.imports.values() for i in ids)
            return {*self.postings.values(), *self.advances.values(), *self.bridge_payments.values(), *imported}


@dataclass
class Outcome:
    """Answers by phase (e.g. 'outage'), to judge what a fault did to the clients."""

    by_phase: dict[str, dict[str, int]] = field(default_factory=dict)
    failure_seconds: dict[str, list[float]] = field(default_factory=dict)
    """Per phase, how long each answer that was not a 2xx took."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, phase: str, answer: Answer) -> None:
        key = str(answer.status) + ("+retry-after" if answer.status == 503 and answer.retry_after else "")
        with self.lock:
            phase_counts = self.by_phase.setdefault(phase, {})
            phase_counts[key] = phase_counts.get(key, 0) + 1
            if answer.status not in (200, 201):
                self.failure_seconds.setdefault(phase, []).append(answer.seconds)


class Load:
    """Runs the clients in threads until ``stop`` is set, ``max_requests`` are sent or ``max_seconds`` pass."""

    def __init__(
        self,
        stack: StackEnv,
        ledger_ports: list[int],
        payments_ports: list[int],
        *,
        max_requests: int,
        max_seconds: float,
        municipalities: tuple[str, ...] = MUNICIPALITIES,
        with_imports: bool = False,
        seed: int = 7,
        pace_s: float = 0.1,
        bridge_ports: list[int] | None = None,
        attempts: int = MAX_ATTEMPTS,
    ):
        self.stack = stack
        self.ledger_ports = ledger_ports
        self.payments_ports = payments_ports
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.municipalities = municipalities
        self.with_imports = with_imports
        self.bridge_ports = bridge_ports or []
        self.pace_s = pace_s
        self.attempts = attempts
        """How often a client sends one write before it gives up (``RETRY_SLEEP_S`` apart: ``MAX_ATTEMPTS`` is about
        180 s of refusals); the recovery drill's clients wait out a longer stop, as the runbook's operators take it."""
        """Each municipality waits this long between postings (six of them: about 60 postings a second)."""
        self.stats = LoadStats()
        self.accepted = Accepted()
        self.outcome = Outcome()
        self.phase = "before"
        self.stop = threading.Event()
        self.gave_up: list[str] = []
        self.random = random.Random(seed)
        self.threads: list[threading.Thread] = []
        self.sent = 0
        self._sent_lock = threading.Lock()

    # -- budget --------------------------------------------------------------------------------

    def _may_send(self) -> bool:
        if self.stop.is_set() or time.monotonic() >= self.deadline:
            return False
        with self._sent_lock:
            if self.sent >= self.max_requests:
                return False
            self.sent += 1
            return True

    def _send(self, client: Client, method: str, path: str, body: Any = None, **kwargs: Any) -> Answer | None:
        if not self._may_send():
            return None
        answer = client.request(method, path, body, **kwargs)
        self.stats.count(answer, f"{method} {path}")
        self.outcome.count(self.phase, answer)
        return answer

    def _pick(self, ports: list[int], n: int) -> int:
        return ports[n % len(ports)]

    # -- clients -------------------------------------------------------------------------------

    def municipality(self, code: str, index: int) -> None:
        headers = self.stack.headers("municipality", code)
        n = 0
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            n += 1
            if self.with_imports and n % 5 == 0:
                self._import(code, index, n, headers)
                continue
            key = f"{code}-{n}"
            body = expenditure(index * 100_000 + n, 100 + n, tag=f"load-{code}")
            accepted = False
            for attempt in range(self.attempts):
                client = Client(self._pick(self.ledger_ports, n + attempt), headers, timeout_s=15)
                answer = self._send(client, "POST", f"/v1/municipalities/{code}/expenditures", body,
                                    headers={"Idempotency-Key": key})
                client.close()
                if answer is None:
                    break
                if answer.status == 201:
                    with self.accepted.lock:
                        self.accepted.postings[key] = answer.body["event_id"]
                        self.accepted.posting_amounts[key] = body["amount_cents"]
                    accepted = True
                    break
                if answer.status not in (0, 500, 502, 503, 504):
                    self.gave_up.append(f"{key}: {answer.status} {answer.body}")
                    break
                time.sleep(RETRY_SLEEP_S)
            if not accepted and answer is not None and answer.status in (0, 500, 502, 503, 504):
                self.gave_up.append(f"{key}: still failing after retries ({answer.status})")
            time.sleep(self.pace_s)

    def _import(self, code: str, index: int, n: int, headers: dict[str, str]) -> None:
        key = f"{code}-import-{n}"
        rows = [expenditure(index * 100_000 + n * 10 + r, 10 + r, tag=f"imp-{code}-{n}") for r in range(3)]
        csv_text = (
            "grant_year,category,amount_cents,booked_on,counterparty_id,counterparty_name,description,reference\n"
        )
        for row in rows:
            csv_text += (f"{row['grant_year']},{row['category']},{row['amount_cents']},{row['booked_on']},"
                         f"{row['counterparty']['id']},{row['counterparty']['name']},{row['description']},"
                         f"{row['reference']}\n")
        for attempt in range(self.attempts):
            client = Client(self._pick(self.ledger_ports, n + attempt), headers, timeout_s=15)
            answer = self._send(client, "POST", f"/v1/municipalities/{code}/expenditures:import",
                                raw=csv_text.encode(), content_type="text/csv", headers={"Idempotency-Key": key})
            client.close()
            if answer is None:
                return
            if answer.status == 201:
                with self.accepted.lock:
                    self.accepted.imports[key] = [e["event_id"] for e in answer.body["expenditures"]]
                return
            if answer.status not in (0, 500, 502, 503, 504):
                self.gave_up.append(f"{key}: {answer.status} {answer.body}")
                return
            time.sleep(RETRY_SLEEP_S)

    def ministry(self, code: str = "GM0363") -> None:
        headers = self.stack.headers("ministry")
        amount = 0
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            amount += 1  # unique amounts identify each advance in the grant's history
            for attempt in range(self.attempts):
                client = Client(self._pick(self.payments_ports, amount + attempt), headers, timeout_s=15)
                answer = self._send(client, "POST", f"/v1/years/{YEAR}/grants/{code}/advances",
                                    {"amount_cents": amount, "paid_on": "2024-01-31"})
                if answer is None:
                    client.close()
                    return
                if answer.status == 201:
                    with self.accepted.lock:
                        self.accepted.advances[amount] = answer.body["last_event_id"]
                    client.close()
                    break
                if answer.status not in (0, 500, 502, 503, 504):
                    self.gave_up.append(f"advance {amount}: {answer.status} {answer.body}")
                    client.close()
                    break
                time.sleep(RETRY_SLEEP_S)
                found = self._advance_in_history(client, code, amount)
                client.close()
                if found:
                    with self.accepted.lock:
                        self.accepted.advances[amount] = found
                    break
            time.sleep(0.05)

    def _advance_in_history(self, client: Client, code: str, amount: int) -> str | None:
        """The event id of the advance of ``amount`` if the grant's history holds it (an unknown answer)."""
        for _ in range(40):
            answer = client.get(f"/v1/years/{YEAR}/grants/{code}")
            if answer.status == 200:
                for event in answer.body["events"]:
                    if event["event_type"] == "AdvancePaid" and event["payload"]["amount_cents"] == amount:
                        return str(event["event_id"])
                return None
            if self.stop.is_set() or time.monotonic() >= self.deadline + 60:
                return None
            time.sleep(RETRY_SLEEP_S)
        return None

    def kb(self, library_id: str = BRIDGE_LIBRARY) -> None:
        """The KB pays the library, each payment a unique amount; an unknown answer is reconciled
        from the library's payments before it is sent again (no key, as the ministry's client)."""
        headers = self.stack.headers("kb")
        amount = 0
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            amount += 1
            for attempt in range(self.attempts):
                client = Client(self._pick(self.bridge_ports, amount + attempt), headers, timeout_s=15)
                answer = self._send(client, "POST", f"/bridge/libraries/{library_id}/payments",
                                    {"amount_cents": amount, "paid_on": "2022-12-01"})
                found = None
                if answer is not None and answer.status == 201:
                    found = payment_event(answer.body, amount)
                elif answer is not None and answer.status in (0, 500, 502, 503, 504):
                    time.sleep(RETRY_SLEEP_S)
                    for _ in range(40):
                        library = client.get(f"/bridge/libraries/{library_id}")
                        if library.status == 200:
                            found = payment_event(library.body, amount)
                            break
                        if time.monotonic() >= self.deadline + 60:
                            break
                        time.sleep(RETRY_SLEEP_S)
                elif answer is not None:
                    self.gave_up.append(f"bridge payment {amount}: {answer.status} {answer.body}")
                client.close()
                if found or answer is None or answer.status not in (0, 500, 502, 503, 504):
                    if found:
                        with self.accepted.lock:
                            self.accepted.bridge_payments[amount] = found
                    break
            if answer is None:
                return
            time.sleep(0.1)

    def reader(self) -> None:
        headers = self.stack.headers("auditor")
        n = 0
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            n += 1
            with self.accepted.lock:
                latest = next(reversed(self.accepted.postings.values()), None) if self.accepted.postings else None
            query = f"?includes_event_id={latest}" if latest else ""
            client = Client(self._pick(self.ledger_ports, n), headers, timeout_s=15)
            answer = self._send(client, "GET", f"/v1/municipalities/{self.municipalities[0]}/balances/{YEAR}{query}")
            client.close()
            if answer is None:
                return
            time.sleep(0.2)

    # -- running -------------------------------------------------------------------------------

    def start(self) -> None:
        targets = [lambda c=code, i=index: self.municipality(c, i) for index, code in enumerate(self.municipalities)]
        targets += [self.ministry, self.reader]
        if self.bridge_ports:
            targets.append(self.kb)
        self.threads = [threading.Thread(target=t, daemon=True) for t in targets]
        self.stats.started = time.monotonic()
        for thread in self.threads:
            thread.start()

    def finish(self, timeout_s: float = 120) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=timeout_s)
        self.stats.ended = time.monotonic()
        assert not any(t.is_alive() for t in self.threads), "a client thread did not stop"


def payment_event(library: dict[str, Any], amount: int) -> str | None:
    """The event id of the library's payment of ``amount`` (each payment a unique amount), if it holds one."""
    for payment in library.get("payments") or []:
        if payment["amount_cents"] == amount:
            return str(payment["event_id"])
    return None


class Supervisor:
    """Restarts a relay or projector that exited (what systemd or Kubernetes would do); counts restarts."""

    def __init__(self, procs: Processes, watched: list[Proc]):
        self.procs = procs
        self.watched = watched
        self.restarts: dict[str, int] = {}
        self.paused = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            if self.paused.is_set():
                continue
            for proc in self.watched:
                if not proc.alive():
                    self.restarts[proc.name] = self.restarts.get(proc.name, 0) + 1
                    try:
                        self.procs.restart(proc)
                    except Exception:  # noqa: BLE001 - tried again on the next round
                        pass

    def __enter__(self) -> Supervisor:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
