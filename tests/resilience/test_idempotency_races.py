"""20 requests with one Idempotency-Key at once, per kind of write: never a 5xx, never a double.

Real `ido serve` processes, two instances per service (so the race crosses processes), on a fresh
PostgreSQL database and on SQLite files (no broker: the services answer without one, the events wait in the outbox).
For every kind of keyed write two rounds, each of 20 clients released together by a barrier:

- identical: the same key and the same body. Every client gets the same status and the same body
  (the first answer, stored), and exactly one event (or, for an import, one event per row) is stored.
- differing: the same key (a new one) and 20 different bodies, each valid on its own. Exactly one
  wins (2xx); the other 19 get 409 (the key was used with another request) and store nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.common.config import Settings
from tests.resilience.stack import BRIDGE_LIBRARY, YEAR, expenditure, prepare_bridge, prepare_payments, stored_envelopes
from tests.resilience.support import Answer, Client, Processes, StackEnv
from tests.support.infra import PostgresInfo

# Real server processes racing: `make resilience` runs these (slow), so `make test` keeps its 15 minutes.
pytestmark = pytest.mark.slow

CLIENTS = 20


@dataclass(frozen=True)
class Race:
    """One round: ``CLIENTS`` requests to ``path`` with one key, body ``i`` from ``body(i)``."""

    path: str
    body: Callable[[int], Any]
    csv: bool = False


def race(ports: list[int], headers: dict[str, str], key: str, spec: Race) -> list[Answer]:
    barrier = threading.Barrier(CLIENTS, timeout=60)
    answers: list[Answer | None] = [None] * CLIENTS

    def client(i: int) -> None:
        http = Client(ports[i % len(ports)], {**headers, "Idempotency-Key": key}, timeout_s=60)
        barrier.wait()
        if spec.csv:
            answers[i] = http.post(spec.path, raw=spec.body(i).encode(), content_type="text/csv")
        else:
            answers[i] = http.post(spec.path, spec.body(i))
        http.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(a is not None for a in answers), "a client did not finish within 120 s"
    return [a for a in answers if a is not None]


def summary(answers: list[Answer]) -> str:
    return json.dumps([[a.status, a.body if a.status >= 300 else "", a.error] for a in answers])[:3000]


class Rounds:
    """Runs both rounds of each kind and counts the events each stored."""

    def __init__(self, settings: Settings, service: str, ports: list[int]):
        self.settings = settings
        self.service = service
        self.ports = ports
        self.results: dict[str, str] = {}

    def events(self) -> int:
        return len(stored_envelopes(self.settings, self.service))

    def identical(
        self, kind: str, headers: dict[str, str], spec: Race, events_each: int = 1
    ) -> Answer:
        before = self.events()
        answers = race(self.ports, headers, f"{kind}-same", spec)
        assert not [a for a in answers if a.status >= 500 or a.status == 0], (kind, summary(answers))
        first = answers[0]
        assert 200 <= first.status < 300, (kind, summary(answers))
        same = [a for a in answers if (a.status, a.body) == (first.status, first.body)]
        assert len(same) == CLIENTS, (kind, summary(answers))
        assert self.events() - before == events_each, kind
        self.results[f"{kind} identical"] = f"{CLIENTS} x {first.status}, one answer"
        return first

    def differing(self, kind: str, headers: dict[str, str], spec: Race, events_each: int = 1) -> Answer:
        before = self.events()
        answers = race(self.ports, headers, f"{kind}-other", spec)
        assert not [a for a in answers if a.status >= 500 or a.status == 0], (kind, summary(answers))
        won = [a for a in answers if 200 <= a.status < 300]
        refused = [a for a in answers if a.status == 409]
        assert len(won) == 1 and len(refused) == CLIENTS - 1, (kind, summary(answers))
        assert all("Idempotency-Key" in a.body["errors"] for a in refused), (kind, summary(refused))
        assert self.events() - before == events_each, kind
        self.results[f"{kind} differing"] = f"1 x {won[0].status}, {len(refused)} x 409"
        return won[0]


@pytest.fixture(params=["postgresql", "sqlite"])
def store(request: pytest.FixtureRequest) -> PostgresInfo | None:
    """The services' event stores: a fresh PostgreSQL database, or SQLite files (None)."""
    if request.param == "sqlite":
        return None
    found: PostgresInfo = request.getfixturevalue("database")
    return found


def start(procs: Processes, tmp_path: Path, database: PostgresInfo | None, service: str) -> tuple[StackEnv, list[int]]:
    stack = StackEnv(tmp_path, None, database)
    env = stack.env()
    stack.settings()
    ports = [procs.service(service, env, name=f"{service}-{i}", threads=12).port or 0 for i in (1, 2)]
    return stack, ports


def test_ledger_postings_reversals_imports_and_closes_under_one_key(
    procs: Processes, store: PostgresInfo | None, tmp_path: Path
) -> None:
    stack, ports = start(procs, tmp_path, store, "ledger")
    rounds = Rounds(stack.settings(), "ledger", ports)
    own = stack.headers("municipality", "GM0363")
    books = "/v1/municipalities/GM0363"

    rounds.identical("posting", own, Race(f"{books}/expenditures", lambda i: expenditure(1, 500)))
    rounds.differing("posting", own, Race(f"{books}/expenditures", lambda i: expenditure(1, 600 + i)))

    setup = Client(ports[0], own)
    targets = [setup.post(f"{books}/expenditures", expenditure(n, 700 + n)) for n in (1, 2)]
    assert [t.status for t in targets] == [201, 201], targets
    first, second = (f"{books}/expenditures/{t.body['expenditure_id']}/reversal" for t in targets)
    rounds.identical("reversal", own, Race(first, lambda i: {"reason": "booked twice", "booked_on": "2024-06-01"}))
    rounds.differing("reversal", own, Race(second, lambda i: {"reason": f"booked twice ({i})",
                                                                   "booked_on": "2024-06-01"}))

    def csv(amount: int) -> str:
        return (
            "grant_year,category,amount_cents,booked_on,counterparty_id,counterparty_name,description,reference\n"
            f"{YEAR},promotion,{amount},2024-05-01,SUP-1,Supplier 1,flyers,imp-1\n"
            f"{YEAR},promotion,{amount + 1},2024-05-02,SUP-2,Supplier 2,posters,imp-2\n"
        )

    imports = f"{books}/expenditures:import"
    rounds.identical("import", own, Race(imports, lambda i: csv(800), csv=True), events_each=2)
    rounds.differing("import", own, Race(imports, lambda i: csv(900 + 10 * i), csv=True), events_each=2)

    ministry = stack.headers("ministry")
    rounds.identical("close", ministry, Race("/v1/municipalities/GM0599/years/2024/close",
                                             lambda i: {"final_account": True}))
    rounds.differing("close", ministry, Race("/v1/municipalities/GM0518/years/2024/close",
                                             lambda i: {"final_account": True, "closed_on": f"2025-01-{i + 1:02d}"}))
    print(json.dumps(rounds.results, indent=1))


def test_payments_advances_settlements_reclaims_and_receipts_under_one_key(
    procs: Processes, store: PostgresInfo | None, tmp_path: Path
) -> None:
    stack, ports = start(procs, tmp_path, store, "payments")
    rounds = Rounds(stack.settings(), "payments", ports)
    ministry = stack.headers("ministry")
    prepare_payments(Client(ports[0], ministry))
    grant = f"/v1/years/{YEAR}/grants/GM0599"  # awarded 540000.00 by the demo annex

    rounds.identical("advance", ministry, Race(f"{grant}/advances", lambda i: {"amount_cents": 1_000_000,
                                                                              "paid_on": "2024-01-31"}))
    rounds.differing("advance", ministry, Race(f"{grant}/advances", lambda i: {"amount_cents": 2_000_000 + i,
                                                                              "paid_on": "2024-02-28"}))
    rounds.identical("settlement", ministry, Race(f"{grant}/settlements", lambda i: {
        "reported_spending_cents": 2_000_000, "settled_on": "2025-09-01"}))
    paid = Client(ports[1], ministry).get(grant).body["paid_cents"]
    rounds.identical("reclaim", ministry, Race(f"{grant}/reclaims", lambda i: {
        "amount_cents": paid - 2_000_000, "issued_on": "2025-09-02"}))
    rounds.identical("receipt", ministry, Race(f"{grant}/reclaims/receipts", lambda i: {
        "amount_cents": 1_000, "received_on": "2025-10-01"}))
    rounds.differing("receipt", ministry, Race(f"{grant}/reclaims/receipts", lambda i: {
        "amount_cents": 2_000 + i, "received_on": "2025-10-02"}))
    print(json.dumps(rounds.results, indent=1))


def test_bridge_payments_and_payment_batches_under_one_key(
    procs: Processes, store: PostgresInfo | None, tmp_path: Path
) -> None:
    stack, ports = start(procs, tmp_path, store, "bridge")
    rounds = Rounds(stack.settings(), "bridge", ports)
    kb = stack.headers("kb")
    prepare_bridge(Client(ports[0], kb))
    payments = f"/bridge/libraries/{BRIDGE_LIBRARY}/payments"

    rounds.identical("payment", kb, Race(payments, lambda i: {"amount_cents": 10_000, "paid_on": "2022-12-01"}))
    rounds.differing("payment", kb, Race(payments, lambda i: {"amount_cents": 20_000 + i, "paid_on": "2022-12-02"}))
    batch = rounds.identical("payment-batch", kb, Race("/bridge/payment-batches", lambda i: {
        "paid_on": "2022-12-03", "payments": [{"library_id": BRIDGE_LIBRARY, "amount_cents": 30_000}]}))
    assert batch.body["total_cents"] == 30_000
    rounds.differing("payment-batch", kb, Race("/bridge/payment-batches", lambda i: {
        "paid_on": "2022-12-04", "payments": [{"library_id": BRIDGE_LIBRARY, "amount_cents": 40_000 + i}]}))
    print(json.dumps(rounds.results, indent=1))
