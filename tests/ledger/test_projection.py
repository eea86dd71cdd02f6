"""The balances projection against the real broker: exact figures, points in time, crash, replay."""

from __future__ import annotations

import csv
import io
import time
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from services.common.adapters.sql import create_sql_engine
from services.common.config import Settings, load_settings
from services.common.consumer import ProjectionRunner, applied_events
from services.ledger.entrypoints.definition import create_app
from services.ledger.entrypoints.projector import build_runner
from tests.ledger.conftest import AMSTERDAM, LIBRARY, UTRECHT
from tests.ledger.events import Streams, at
from tests.support.infra import KafkaInfo
from tests.support.tokens import TokenFactory

M = 100  # cents per euro


@pytest.fixture
def env(store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str) -> dict[str, str]:
    return {
        **store_env,
        **kafka.settings_env(),
        "IDO_TOPIC_PREFIX": topic_prefix,
        "IDO_READ_YOUR_WRITES_TIMEOUT_MS": "300",
    }


@pytest.fixture
def live(env: dict[str, str]) -> Settings:
    return load_settings(env)  # the topics and ACLs: the ``topic_prefix`` fixture


def expenditure(s: Streams, code: str, recorded_at: str, **fields: Any) -> dict[str, Any]:
    expenditure_id = str(uuid.uuid4())
    payload = {
        "expenditure_id": expenditure_id,
        "municipality_code": code,
        "grant_year": 2024,
        "category": "library_funding",
        "amount_cents": 1,
        "booked_on": "2024-03-01",
        "counterparty": {"id": LIBRARY, "name": "OBA (illustrative)"},
        "description": "illustrative",
        "reference": "R-1",
    }
    payload.update(fields)
    return s.event("ExpenditureRecorded", f"expenditure-{expenditure_id}", code, recorded_at, **payload)


def scenario(s: Streams) -> None:
    """An illustrative year (amounts invented for the test)."""
    s.event(
        "GrantFrameSet",
        "scheme-2024",
        "scheme-2024",
        at("2023-12-01"),
        year=2024,
        frame_cents=17_130_000 * M,
        decided_on="2023-12-01",
    )
    s.event(
        "GrantFrameAmended",
        "scheme-2024",
        "scheme-2024",
        at("2024-02-01"),
        year=2024,
        frame_cents=17_000_000 * M,
        previous_frame_cents=17_130_000 * M,
        decided_on="2024-02-01",
        reason="illustrative amendment",
    )
    for code, name, amount in ((AMSTERDAM, "Amsterdam", 500_000 * M), (UTRECHT, "Utrecht", 200_000 * M)):
        grant = f"grant-2024-{code}"
        s.event(
            "GrantAwarded",
            grant,
            code,
            at("2024-01-10"),
            grant_id=grant,
            year=2024,
            municipality_code=code,
            municipality_name=name,
            amount_cents=amount,
            awarded_on="2024-01-10",
            basis="annex",
        )
        s.event(
            "AdvancePaid",
            grant,
            code,
            at("2024-01-20"),
            grant_id=grant,
            year=2024,
            municipality_code=code,
            amount_cents=amount,
            paid_on="2024-01-20",
        )
    expenditure(s, AMSTERDAM, at("2024-03-05"), amount_cents=300_000 * M, booked_on="2024-03-01")
    promo = expenditure(
        s,
        AMSTERDAM,
        at("2024-06-02"),
        category="promotion",
        amount_cents=10_000 * M,
        booked_on="2024-06-01",
        counterparty={"id": "NL-KVK-99", "name": "Drukkerij"},
    )
    p = promo["payload"]
    s.event(
        "ExpenditureReversed",
        promo["stream_id"],
        AMSTERDAM,
        at("2024-07-01"),
        expenditure_id=p["expenditure_id"],
        municipality_code=AMSTERDAM,
        grant_year=2024,
        reverses_event_id=promo["event_id"],
        amount_cents=p["amount_cents"],
        category="promotion",
        booked_on="2024-07-01",
        reason="wrong invoice",
    )
    expenditure(
        s,
        AMSTERDAM,
        at("2024-08-01"),
        category="network_orchestration",
        amount_cents=4_000 * M,
        booked_on="2024-08-01",
        counterparty={"id": "buurtteam", "name": "Buurtteam"},
    )
    expenditure(s, UTRECHT, at("2025-01-10"), amount_cents=150_000 * M, booked_on="2024-12-30")
    expenditure(s, AMSTERDAM, at("2025-02-02"), grant_year=2025, amount_cents=5_000 * M, booked_on="2025-02-01")
    s.event(
        "YearClosed",
        f"books-{AMSTERDAM}-2024",
        AMSTERDAM,
        at("2025-05-01"),
        municipality_code=AMSTERDAM,
        grant_year=2024,
        closed_on="2025-05-01",
        closed_by="auditor",
        final_account=True,
    )
    # The eindverantwoording is the municipality's own declaration (issue 15), not the year close's.
    s.event(
        "SisaLineDeclared",
        f"sisa-{AMSTERDAM}-2024-2024",
        AMSTERDAM,
        at("2025-05-01"),
        municipality_code=AMSTERDAM,
        accounts_year=2024,
        grant_year=2024,
        final_account=True,
        declared_on="2025-05-01",
        declared_by="municipality",
        reason=None,
    )
    grant = f"grant-2024-{AMSTERDAM}"
    first = s.event(
        "GrantSettled",
        grant,
        AMSTERDAM,
        at("2025-06-01"),
        grant_id=grant,
        year=2024,
        municipality_code=AMSTERDAM,
        reported_spending_cents=300_000 * M,
        settled_cents=300_000 * M,
        settled_on="2025-06-01",
        corrects_event_id=None,
        reason=None,
    )
    s.event(
        "GrantSettled",
        grant,
        AMSTERDAM,
        at("2025-07-01"),
        grant_id=grant,
        year=2024,
        municipality_code=AMSTERDAM,
        reported_spending_cents=304_000 * M,
        settled_cents=304_000 * M,
        settled_on="2025-07-01",
        corrects_event_id=first["event_id"],
        reason="network costs were missed",
    )
    s.event(
        "ReclaimIssued",
        grant,
        AMSTERDAM,
        at("2025-07-02"),
        grant_id=grant,
        year=2024,
        municipality_code=AMSTERDAM,
        amount_cents=196_000 * M,
        issued_on="2025-07-02",
    )
    s.event(
        "ReclaimReceived",
        grant,
        AMSTERDAM,
        at("2025-08-01"),
        grant_id=grant,
        year=2024,
        municipality_code=AMSTERDAM,
        amount_cents=196_000 * M,
        received_on="2025-08-01",
    )
    s.event(
        "BridgeFrameSet",
        "bridge-frame",
        "bridge-frame",
        at("2022-12-01"),
        frame_cents=2_700_000 * M,
        rate_cents_per_inhabitant="15",
        account_period_start="2019-01-01",
        spending_deadline="2023-05-01",
        account_deadline="2023-09-01",
    )
    library = f"library-{LIBRARY}"
    s.event(
        "LibraryRegistered",
        library,
        LIBRARY,
        at("2022-12-01"),
        library_id=LIBRARY,
        name="OBA (illustrative)",
        service_area=[{"municipality_code": AMSTERDAM, "inhabitants": 900_000}],
    )
    s.event(
        "BridgeGrantSet",
        library,
        LIBRARY,
        at("2022-12-02"),
        library_id=LIBRARY,
        amount_cents=135_000 * M,
        inhabitants=900_000,
        basis="computed",
        batch_id="b1",
        rate_cents_per_inhabitant="15",
        corrects_event_id=None,
    )
    s.event(
        "BridgePaymentMade",
        library,
        LIBRARY,
        at("2022-12-10"),
        library_id=LIBRARY,
        amount_cents=135_000 * M,
        paid_on="2022-12-10",
        payment_batch_id=None,
    )
    account = s.event(
        "BridgeAccountSubmitted",
        library,
        LIBRARY,
        at("2023-08-01"),
        library_id=LIBRARY,
        grant_cents=135_000 * M,
        paid_cents=135_000 * M,
        spent_cents=120_000 * M,
        unspent_cents=15_000 * M,
        period_start="2019-01-01",
        period_end="2023-05-01",
        submitted_on="2023-08-01",
        account_deadline="2023-09-01",
        late=False,
    )
    s.event(
        "BridgeReclaimIssued",
        library,
        LIBRARY,
        at("2023-08-15"),
        library_id=LIBRARY,
        amount_cents=15_000 * M,
        issued_on="2023-08-15",
        account_event_id=account["event_id"],
    )


def run_until(runner: ProjectionRunner, engine: Any, expected: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runner.run_once(timeout_ms=300)
        with engine.connect() as connection:
            if connection.execute(select(func.count()).select_from(applied_events)).scalar_one() >= expected:
                return
    raise AssertionError(f"the projection did not apply {expected} events in {timeout_s} s")


def get(client: FlaskClient, tokens: TokenFactory, url: str, role: str = "auditor") -> Any:
    response = client.get(url, headers=tokens.headers(role))
    assert response.status_code == 200, response.json
    return response.json


def test_balances_points_in_time_and_sisa_are_exact(live: Settings, kafka: KafkaInfo, tokens: TokenFactory) -> None:
    s = Streams(live.topic_prefix)
    scenario(s)
    s.send(live)
    s.send(live, s.sent[:5])  # re-sent duplicates count once
    runner = build_runner(live)
    try:
        run_until(runner, create_sql_engine(live.view_db_url), len(s.sent))
        runner.run_once(timeout_ms=1000)
    finally:
        runner.close()
    assert runner.stats.applied == len(s.sent) and runner.stats.dead_lettered == 0

    client = create_app(live).test_client()
    base = f"/v1/municipalities/{AMSTERDAM}"
    now = get(client, tokens, f"{base}/balances/2024")
    assert {k: v for k, v in now.items() if k != "offsets"} == {
        "municipality_code": AMSTERDAM,
        "year": 2024,
        "awarded_cents": 500_000 * M,
        "advance_paid_cents": 500_000 * M,
        "spent_by_category": {"library_funding": 300_000 * M, "promotion": 0, "network_orchestration": 4_000 * M},
        "spent_cents": 304_000 * M,
        "unspent_cents": 196_000 * M,
        "spent_beyond_award_cents": 0,
        "settled_cents": 304_000 * M,
        "reclaim_issued_cents": 196_000 * M,
        "reclaim_received_cents": 196_000 * M,
        "recorded_after_close_count": 0,
        "recorded_after_close_event_ids": [],
        "as_of": None,
        "known_at": None,
    }
    assert sum(o["next_offset"] for o in now["offsets"]) == len(s.sent) + 5

    mid_year = get(client, tokens, f"{base}/balances/2024?as_of=2024-06-30")
    assert mid_year["spent_by_category"] == {
        "library_funding": 300_000 * M,
        "promotion": 10_000 * M,
        "network_orchestration": 0,
    }
    assert mid_year["settled_cents"] == 0 and mid_year["advance_paid_cents"] == 500_000 * M
    known = get(client, tokens, f"{base}/balances/2024?known_at=2024-06-01T23:59:59Z")
    assert known["spent_cents"] == 300_000 * M
    settled_first = get(client, tokens, f"{base}/balances/2024?as_of=2025-06-15")
    assert settled_first["settled_cents"] == 300_000 * M

    utrecht = f"/v1/municipalities/{UTRECHT}/balances/2024"
    assert get(client, tokens, f"{utrecht}?as_of=2024-12-31")["spent_cents"] == 150_000 * M
    assert get(client, tokens, f"{utrecht}?as_of=2024-12-31&known_at=2024-12-31T23:59:59Z")["spent_cents"] == 0

    national = get(client, tokens, "/v1/balances/2024", role="ministry")
    assert national["frame_cents"] == 17_000_000 * M
    assert national["frame_unawarded_cents"] == (17_000_000 - 700_000) * M
    assert national["totals"]["spent_cents"] == 454_000 * M
    # one row per municipality, by CBS code (GM0344 before GM0363), each with its own figures
    assert [(m["municipality_code"], m["spent_cents"], m["awarded_cents"]) for m in national["municipalities"]] == [
        (UTRECHT, 150_000 * M, 200_000 * M), (AMSTERDAM, 304_000 * M, 500_000 * M),
    ]
    assert national["bridge"]["frame_cents"] == 2_700_000 * M
    assert national["bridge"]["libraries"] == [
        {
            "library_id": LIBRARY,
            "name": "OBA (illustrative)",
            "granted_cents": 135_000 * M,
            "paid_cents": 135_000 * M,
            "settled_cents": 120_000 * M,
            "reclaim_issued_cents": 15_000 * M,
            "account_status": "on_time",
            "account_submitted_on": "2023-08-01",
            "account_deadline": "2023-09-01",
        }
    ]
    assert national["library_funding_received"] == [
        {"library_id": LIBRARY, "name": "OBA (illustrative)", "received_cents": 450_000 * M}
    ]
    before_amendment = get(client, tokens, "/v1/balances/2024?as_of=2024-01-31", role="finance")
    assert before_amendment["frame_cents"] == 17_130_000 * M

    sisa = get(client, tokens, f"{base}/sisa/2024")
    assert (sisa["besteding_jaar_t_cents"], sisa["cumulatieve_bestedingen_cents"], sisa["eindverantwoording"]) == (
        304_000 * M,
        304_000 * M,
        "Ja",
    )
    assert sisa["sisa_municipality_code"] == "060363"
    sisa_2025 = get(client, tokens, f"{base}/sisa/2025")
    # Per grant decision (issue 15): the 2025 grant's cumulative holds only spending on the 2025 grant
    # (it was 2024's + 2025's before, 309 000); the 2024 grant, declared final in the 2024 accounts,
    # has no line in the 2025 accounts.
    assert (sisa_2025["besteding_jaar_t_cents"], sisa_2025["cumulatieve_bestedingen_cents"]) == (5_000 * M, 5_000 * M)
    assert [
        (line["grant_year"], line["besteding_jaar_t_cents"], line["cumulatieve_bestedingen_cents"])
        for line in sisa_2025["lines"]
    ] == [(2025, 5_000 * M, 5_000 * M)]
    assert sisa_2025["eindverantwoording"] == "Nee"
    assert get(client, tokens, f"{base}/sisa/2024?as_of=2025-04-30")["eindverantwoording"] == "Nee"

    journal = client.get(f"{base}/journal.csv?year=2024", headers=tokens.headers("municipality", AMSTERDAM))
    assert journal.status_code == 200 and journal.mimetype == "text/csv"
    lines = journal.get_data(as_text=True).strip().split("\n")
    assert len(lines) == 1 + 4 and ",-1000000," in lines[3]
    balances_csv = client.get(f"{base}/balances/2024.csv", headers=tokens.headers("auditor"))
    assert balances_csv.status_code == 200 and balances_csv.mimetype == "text/csv"
    header = [
        "municipality_code", "year", "awarded_cents", "advance_paid_cents", "spent_library_funding_cents",
        "spent_promotion_cents", "spent_network_orchestration_cents", "spent_cents", "unspent_cents",
        "spent_beyond_award_cents", "settled_cents", "reclaim_issued_cents", "reclaim_received_cents", "as_of",
        "known_at",
    ]
    assert list(csv.reader(io.StringIO(balances_csv.get_data(as_text=True)))) == [header, [
        AMSTERDAM, "2024", str(500_000 * M), str(500_000 * M), str(300_000 * M), "0", str(4_000 * M),
        str(304_000 * M), str(196_000 * M), "0", str(304_000 * M), str(196_000 * M), str(196_000 * M), "", "",
    ]]
    national_csv = client.get("/v1/balances/2024.csv", headers=tokens.headers("ministry"))
    assert national_csv.status_code == 200 and national_csv.mimetype == "text/csv"
    national_rows = list(csv.reader(io.StringIO(national_csv.get_data(as_text=True))))
    assert national_rows[0] == [
        *header, "settlement_reported_spending_cents", "settlement_differs_from_books", "sisa_late",
    ]
    # a row per municipality, in the JSON answer's order, each cell its figure in the JSON answer
    money = [column for column in header if column.endswith("_cents") and not column.startswith("spent_")]
    shown = ("municipality_code", "year", "spent_cents", *money)
    assert [[row[header.index(c)] for c in shown] for row in national_rows[1:]] == [
        [m["municipality_code"], "2024", str(m["spent_cents"]), *(str(m[c]) for c in money)]
        for m in national["municipalities"]
    ]

    # read-your-writes: a projected event answers at once, an unknown one 503 with Retry-After
    projected = s.sent[0][2]["event_id"]
    assert get(client, tokens, f"{base}/balances/2024?includes_event_id={projected}")["year"] == 2024
    waiting = client.get(f"{base}/balances/2024?includes_event_id={uuid.uuid4()}", headers=tokens.headers("auditor"))
    assert waiting.status_code == 503 and waiting.headers["Retry-After"] == "1"
