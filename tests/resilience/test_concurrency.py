"""50 clients post to the same municipality and year at once: no lost update, totals exact.

Real processes on a fresh PostgreSQL database and the suite's broker: two instances of the
payments service (so races cross processes), one ledger service, their relays and the projector.
All 50 clients are released together by a barrier; each posts an advance on GM0363's 2024 grant
(one aggregate: optimistic concurrency, the losers retried by the service) and an expenditure into
GM0363's 2024 books. Then: every answer 201; the grant's paid total, the store's AdvancePaid
events, and the ledger's balances equal the sums of what was posted; every event counted once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from services.common.adapters.sql import create_sql_engine
from services.common.config import load_settings
from tests.resilience.figures import Figures
from tests.resilience.stack import YEAR, expenditure, prepare_payments, stored_envelopes, tally, wait_until_projected
from tests.resilience.support import Client, LoadStats, Processes, StackEnv, assert_no_secrets, wait_for
from tests.support.infra import KafkaInfo, PostgresInfo

CLIENTS = 50
A = "GM0363"


def test_fifty_clients_on_one_municipality_and_year_lose_no_update(
    procs: Processes, database: PostgresInfo, kafka: KafkaInfo, tmp_path: Path, figures: Figures
) -> None:
    stack = StackEnv(tmp_path, kafka, database)
    env = stack.env()
    stack.settings()
    payments = [procs.service("payments", env, name=f"payments-{i}") for i in (1, 2)]
    ledger = procs.service("ledger", env)
    procs.relay("payments", env)
    procs.relay("ledger", env)
    procs.projector(env)
    ministry = stack.headers("ministry")
    municipality = stack.headers("municipality", A)
    prepare_payments(Client(payments[0].port or 0, ministry))

    stats = LoadStats()
    barrier = threading.Barrier(CLIENTS, timeout=60)
    advances: dict[int, str] = {}
    postings: dict[int, str] = {}

    def client(n: int) -> None:
        pay = Client(payments[n % 2].port or 0, ministry, timeout_s=30)
        book = Client(ledger.port or 0, municipality, timeout_s=30)
        barrier.wait()
        answer = pay.post(f"/v1/years/{YEAR}/grants/{A}/advances", {"amount_cents": n + 1, "paid_on": "2024-01-31"})
        stats.count(answer, "advance")
        if answer.status == 201:
            advances[n] = answer.body["last_event_id"]
        answer = book.post(f"/v1/municipalities/{A}/expenditures", expenditure(n, 100 + n, "concurrent"))
        stats.count(answer, "expenditure")
        if answer.status == 201:
            postings[n] = answer.body["event_id"]
        pay.close()
        book.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    stats.ended = time.monotonic()
    figures.add_load("concurrency: 50 clients, one municipality and year", stats.requests, stats.seconds,
                     by_status=stats.summary()["by_status"])
    assert stats.by_status == {201: 2 * CLIENTS}, stats.summary()
    assert len(advances) == len(postings) == CLIENTS
    assert time.monotonic() - started < 120

    advance_total = sum(n + 1 for n in range(CLIENTS))
    spent_total = sum(100 + n for n in range(CLIENTS))
    grant = Client(payments[1].port or 0, ministry).get(f"/v1/years/{YEAR}/grants/{A}")
    assert grant.status == 200, grant
    assert grant.body["paid_cents"] == advance_total
    paid_events = [e for e in grant.body["events"] if e["event_type"] == "AdvancePaid"]
    assert sorted(e["payload"]["amount_cents"] for e in paid_events) == [n + 1 for n in range(CLIENTS)]

    settings = load_settings(env)
    recorded = [e for e in stored_envelopes(settings, "ledger") if e["event_type"] == "ExpenditureRecorded"]
    assert sorted(e["payload"]["amount_cents"] for e in recorded) == [100 + n for n in range(CLIENTS)]

    view = create_sql_engine(settings.view_db_url)
    accepted = set(advances.values()) | set(postings.values())
    # Every stored event, not only the answered ones (the grant's set-up too): the tally below counts
    # them all, and an event of another partition may still be on its way to the view.
    stored = {e["event_id"] for service in ("payments", "ledger") for e in stored_envelopes(settings, service)}
    assert wait_until_projected(view, accepted | stored, 90), "the events were not projected within 90 s"
    reader = Client(ledger.port or 0, stack.headers("auditor"))
    balance = wait_for(
        lambda: (b := reader.get(f"/v1/municipalities/{A}/balances/{YEAR}")).status == 200
        and b.body["advance_paid_cents"] == advance_total and b,
        30, "the balances to show every advance",
    )
    assert balance.body["spent_cents"] == spent_total
    assert balance.body["advance_paid_cents"] == advance_total
    counted = tally(env, view, ("payments", "ledger"), accepted)
    figures.add_events(
        "concurrency", expected=counted.expected, lost=len(counted.lost_ids), doubled=len(counted.doubled)
    )
    assert not counted.lost and not counted.doubled, (counted.lost[:5], counted.doubled[:5])
    assert_no_secrets(procs.logs(), [ministry["Authorization"][7:], municipality["Authorization"][7:]])
    view.dispose()
