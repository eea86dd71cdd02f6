"""SiSa per grant decision and settlement from the books (issue 15), through HTTP and the real broker.

Two grant years (2024, 2025) spent across two accounts years; the municipality declares its own
eindverantwoording, the ministry only on its behalf with a reason; late after 15 July of T+1 in the
SiSa view, its CSV, the national view and the dashboard; the indicator codes and the settlement rules
come from settings; the ministry settles on the ledger's own figure (the proposal with its offsets),
a differing settlement needs a reason and is flagged; the audit replay gives the same SiSa figures.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from flask.testing import FlaskClient

from contracts.topics import EXPENDITURES, GRANTS
from services.audit.replay import Replay
from services.audit.sources import TopicReader, audit_kafka_config, audited_topics
from services.common.config import Settings, load_settings
from services.common.domain.chained import recorded_envelope
from services.common.signing import build_provenance_check
from services.ledger.entrypoints.definition import create_app as create_ledger_app
from services.ledger.entrypoints.projector import build_runner
from services.ledger.read_side import PointInTime
from services.payments.entrypoints.definition import create_app as create_payments_app
from tests.support.infra import KafkaInfo
from tests.support.kafka_topics import publish_all
from tests.support.tokens import TokenFactory

A, B = "GM0363", "GM0599"
M = 100
TODAY = date(2026, 7, 16)
"""The day the views judge lateness on: one day past the 2025 account's deadline (15 July 2026)."""
INDICATORS = "2024:C8/01,C8/02,C8/03;2025:C9/01,C9/02,C9/03"
RULES = "2024:cap=award,reclaim=paid-minus-settled;2025:cap=award,reclaim=none"


@dataclass
class World:
    settings: Settings
    tokens: TokenFactory
    payments: FlaskClient
    ledger: FlaskClient
    ledger_app: Any
    payments_app: Any

    @property
    def queries(self) -> Any:
        return self.ledger.application.extensions["ledger"].queries

    def publish(self) -> None:
        """Both relays publish all their services stored; returns once the projector applied all of it."""
        for application, topic in ((self.payments_app, GRANTS), (self.ledger_app, EXPENDITURES)):
            publish_all(self.settings, application, topic)
            for stored in application.recorder.select_notifications(start=1, limit=10_000):
                _key, envelope = recorded_envelope(application.mapper, stored)
                self.queries.wait_for_event(envelope["event_id"], 30_000)

    def get(self, url: str, role: str = "auditor", code: str | None = None) -> Any:
        response = self.ledger.get(url, headers=self.tokens.headers(role, code))
        assert response.status_code == 200, response.json
        return response.json if response.mimetype == "application/json" else response.get_data(as_text=True)


@pytest.fixture
def world(store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str) -> Iterator[World]:
    settings = load_settings(
        {
            **store_env, **kafka.settings_env(), "IDO_TOPIC_PREFIX": topic_prefix,
            "IDO_SISA_INDICATORS": INDICATORS, "IDO_SETTLEMENT_RULES": RULES,
            "IDO_READ_YOUR_WRITES_TIMEOUT_MS": "30000",
        }
    )
    tokens = TokenFactory(settings)
    payments = create_payments_app(settings)
    ledger = create_ledger_app(settings)
    service = ledger.extensions["ledger"]
    service.queries.today = lambda: TODAY
    runner = build_runner(settings)
    stop = threading.Event()
    projector = threading.Thread(target=runner.run_forever, args=(stop,), daemon=True)
    projector.start()
    try:
        yield World(
            settings, tokens, payments.test_client(), ledger.test_client(), service.application,
            payments.extensions["payments.application"],
        )
    finally:
        stop.set()
        projector.join(timeout=10)
        runner.close()


def ministry_post(world: World, url: str, body: dict[str, Any]) -> Any:
    response = world.payments.post(url, json=body, headers=world.tokens.headers("ministry"))
    assert response.status_code in (200, 201), response.json
    return response.json



def grants_and_spending(world: World) -> None:
    """Awards and full advances of 2024 (A, B) and 2025 (A); A spends on both grants, B on 2024's."""
    for year, awards in ((2024, ((A, 500_000), (B, 200_000))), (2025, ((A, 400_000),))):
        world.payments.put(
            f"/v1/years/{year}/frame", json={"frame_cents": 17_130_000 * M, "decided_on": f"{year - 1}-12-01"},
            headers=world.tokens.headers("ministry"),
        )
        for code, euros in awards:
            ministry_post(world, f"/v1/years/{year}/grants", {
                "municipality_code": code, "municipality_name": code, "amount_cents": euros * M,
                "awarded_on": f"{year}-01-10",
            })
            ministry_post(world, f"/v1/years/{year}/grants/{code}/advances",
                          {"amount_cents": euros * M, "paid_on": f"{year}-01-20"})
    # the ledger books only into a year it knows the award of (issue 15): the awards are projected first
    world.publish()
    for code, year, euros, day in ((A, 2024, 300_000, "2024-03-01"), (A, 2024, 20_000, "2024-11-01"),
                                   (B, 2024, 150_000, "2024-06-01"), (A, 2025, 90_000, "2025-04-01")):
        posted = world.ledger.post(
            f"/v1/municipalities/{code}/expenditures", headers=world.tokens.headers("municipality", code),
            json={
                "grant_year": year, "category": "library_funding", "amount_cents": euros * M, "booked_on": day,
                "counterparty": {"id": "NL-KVK-41215098", "name": "OBA"}, "description": "IDO", "reference": day,
            },
        )
        assert posted.status_code == 201, posted.json


def declare(world: World, code: str, year: int, body: dict[str, Any], role: str = "municipality",
            token_code: str | None = None) -> Any:
    return world.ledger.post(
        f"/v1/municipalities/{code}/sisa/{year}/declarations", json=body,
        headers=world.tokens.headers(role, token_code or (code if role == "municipality" else None)),
    )


def lines_of(answer: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (line["grant_year"], line["besteding_jaar_t_cents"], line["cumulatieve_bestedingen_cents"],
         line["eindverantwoording"], line["declared_by"], line["late"])
        for line in answer["lines"]
    ]


def test_sisa_lines_per_grant_decision_declarations_and_lateness(world: World) -> None:
    grants_and_spending(world)
    # A declares its 2024 account on time, with its own token (dated the day it is recorded); not final yet
    world.ledger_app.today = lambda: date(2025, 6, 1)
    own = declare(world, A, 2024, {"grant_year": 2024, "final_account": False})
    assert own.status_code == 201, own.json
    assert (own.json["declared_by"], own.json["declared_on"]) == ("municipality", "2025-06-01")
    # another municipality, an auditor, finance: 403; a municipality may not date its declaration
    assert declare(world, A, 2024, {"grant_year": 2024, "final_account": True}, token_code=B).status_code == 403
    for role in ("auditor", "finance", "kb"):
        assert declare(world, A, 2025, {"grant_year": 2024, "final_account": True}, role=role).status_code == 403
    dated = declare(world, A, 2025, {"grant_year": 2025, "final_account": False, "declared_on": "2026-01-05"})
    assert dated.status_code == 422 and "declared_on" in dated.json["errors"]
    # the ministry on A's behalf: only with a reason, and after the deadline it is late
    world.ledger_app.today = lambda: date(2026, 7, 20)
    no_reason = declare(world, A, 2025, {"grant_year": 2024, "final_account": True}, role="ministry")
    assert no_reason.status_code == 422 and "reason" in no_reason.json["errors"], no_reason.json
    behalf = declare(world, A, 2025, {"grant_year": 2024, "final_account": True, "reason": "from A's SiSa annex",
                                      "declared_on": "2026-07-18"}, role="ministry")
    assert behalf.status_code == 201, behalf.json
    assert (behalf.json["declared_by"], behalf.json["declared_on"]) == ("ministry", "2026-07-18")
    later = declare(world, A, 2024, {"grant_year": 2025, "final_account": False})
    assert later.status_code == 422 and "grant_year" in later.json["errors"]
    assert declare(world, A, 2024, {"grant_year": 2024, "final_account": True}).status_code == 409
    future = declare(world, A, 2025, {"grant_year": 2025, "final_account": True, "reason": "r",
                                      "declared_on": "2026-07-21"}, role="ministry")
    assert future.status_code == 422 and "declared_on" in future.json["errors"]

    world.publish()
    base = f"/v1/municipalities/{A}"
    sisa_2024 = world.get(f"{base}/sisa/2024", role="municipality", code=A)
    assert lines_of(sisa_2024) == [(2024, 320_000 * M, 320_000 * M, "Nee", "municipality", False)]
    assert (sisa_2024["late"], sisa_2024["declared"], sisa_2024["deadline"]) == (False, True, "2025-07-15")
    assert sisa_2024["lines"][0]["indicator_codes"] == {
        "besteding": "C8/01", "cumulatief": "C8/02", "eindverantwoording": "C8/03"
    }
    assert sisa_2024["indicator_code"] == "C8/01" and sisa_2024["indicator_setting"] == "IDO_SISA_INDICATORS"
    # accounts year 2025: the 2024 grant keeps its own line (nothing booked on it in 2025, its cumulative),
    # the 2025 grant's cumulative holds only its own spending
    sisa_2025 = world.get(f"{base}/sisa/2025")
    assert lines_of(sisa_2025) == [
        (2024, 0, 320_000 * M, "Ja", "ministry", True),  # declared on 18 July 2026: after the deadline
        (2025, 90_000 * M, 90_000 * M, "Nee", None, True),  # not declared by 15 July 2026
    ]
    assert sisa_2025["lines"][0]["declaration_reason"] == "from A's SiSa annex"
    assert sisa_2025["lines"][1]["indicator_codes"]["besteding"] == "C9/01"
    assert (sisa_2025["besteding_jaar_t_cents"], sisa_2025["cumulatieve_bestedingen_cents"]) == (90_000 * M,) * 2
    assert sisa_2025["late"] is True
    # on the deadline itself nothing is late yet (the ministry's declaration of 18 July is not there yet)
    on_time = world.get(f"{base}/sisa/2025?as_of=2026-07-15")
    assert [(line["grant_year"], line["declared"], line["late"]) for line in on_time["lines"]] == [
        (2024, False, False), (2025, False, False)
    ]
    # the 2024 grant was declared final in the 2025 accounts: the 2026 accounts no longer report it
    assert [line["grant_year"] for line in world.get(f"{base}/sisa/2026")["lines"]] == [2025]
    # B never declared its 2024 account
    assert lines_of(world.get(f"/v1/municipalities/{B}/sisa/2024")) == [
        (2024, 150_000 * M, 150_000 * M, "Nee", None, True)
    ]

    # the CSV follows the same lines
    rows = list(csv.DictReader(io.StringIO(world.get(f"{base}/sisa/2025.csv"))))
    assert [(r["grant_year"], r["besteding_jaar_t_cents"], r["cumulatieve_bestedingen_cents"],
             r["eindverantwoording"], r["late"], r["indicator_besteding"]) for r in rows] == [
        ("2024", "0", str(320_000 * M), "Ja", "True", "C8/01"),
        ("2025", str(90_000 * M), str(90_000 * M), "Nee", "True", "C9/01"),
    ]
    assert {r["sisa_municipality_code"] for r in rows} == {"060363"} and {r["deadline"] for r in rows} == {
        "2026-07-15"
    }

    # the national view and the dashboard
    national = world.get("/v1/balances/2024", role="ministry")
    status = {m["municipality_code"]: m["sisa"] for m in national["municipalities"]}
    assert (status[A]["late"], status[A]["declared"], status[B]["late"]) == (False, True, True)
    assert national["sisa_late"] == 1
    # 2025: A's account is late (its 2025 line undeclared), and so is B's, which books nothing in 2025 but
    # still lists its 2024 grant, never declared: B is listed with it (issue 20; it was left out and uncounted)
    national_2025 = world.get("/v1/balances/2025", role="finance")
    rows_2025 = national_2025["municipalities"]
    assert [(m["municipality_code"], m["awarded_cents"], m["sisa"]["late"]) for m in rows_2025] == [
        (A, 400_000 * M, True), (B, 0, True)
    ]
    assert national_2025["sisa_late"] == 2
    assert f'<li data-code="{B}" data-sisa="late">' in world.get("/dashboard/national/2025", role="ministry")
    page = world.get("/dashboard/national/2024", role="ministry")
    assert f'data-code="{B}"' in page and 'data-sisa="late"' in page and 'data-sisa="declared"' in page
    assert 'id="sisa-late"' in page
    own_page = world.get(f"/dashboard/municipalities/{A}/2025", role="municipality", code=A)
    assert 'id="sisa-late"' in own_page and 'data-grant-year="2024" data-late="true"' in own_page
    assert 'id="sisa-late"' not in world.get(f"/dashboard/municipalities/{A}/2024", role="municipality", code=A)

    # the audit replay gives the same SiSa figures and national view, through the same code path
    reader = TopicReader(audit_kafka_config(world.settings), audited_topics(world.settings))
    try:
        replay = Replay(
            provenance=build_provenance_check(world.settings), sisa_indicators=world.settings.sisa_indicators,
            today=TODAY,
        ).read(reader)
    finally:
        reader.close()
    queries = world.queries
    for code, year in ((A, 2024), (A, 2025), (B, 2024), (B, 2025)):
        live = {k: v for k, v in queries.sisa(code, year, PointInTime()).items() if k != "offsets"}
        assert replay.sisa(code, year) == live, (code, year)
    for year in (2024, 2025):
        live_national = {k: v for k, v in queries.national(year, PointInTime()).items() if k != "offsets"}
        assert replay.national(year) == live_national


def test_settlement_from_the_books_with_rules_per_year(world: World) -> None:
    grants_and_spending(world)
    world.publish()
    base = f"/v1/municipalities/{A}"
    proposal = world.get(f"{base}/years/2024/settlement-proposal", role="ministry")
    balances = world.get(f"{base}/balances/2024")
    assert proposal["spent_cents"] == balances["spent_cents"] == 320_000 * M
    assert proposal["books"] == {"spent_cents": 320_000 * M, "offsets": proposal["offsets"]}
    assert proposal["offsets"] == world.queries.offsets()
    assert sum(o["next_offset"] for o in proposal["offsets"]) > 0
    assert world.get(f"{base}/years/2024/settlement-proposal", role="municipality", code=A)["spent_cents"] == (
        320_000 * M
    )

    settle = f"/v1/years/2024/grants/{A}/settlements"
    ministry = world.tokens.headers("ministry")
    differing = {"books": proposal["books"], "reported_spending_cents": 310_000 * M, "settled_on": "2025-09-01"}
    refused: Any = world.payments.post(settle, json=differing, headers=ministry)
    assert refused.status_code == 422 and list(refused.json["errors"]) == ["reason"], refused.json
    accepted: Any = world.payments.post(settle, json={**differing, "reason": "an invoice of 10 000 was not eligible"},
                                   headers=ministry)
    assert accepted.status_code == 201, accepted.json
    # 2024's rules: at most the award, reclaim paid - settled
    assert (accepted.json["settled_cents"], accepted.json["reclaim_due_cents"]) == (310_000 * M, 190_000 * M)
    assert accepted.json["settlement_rules"] == {"cap": "award", "reclaim": "paid-minus-settled"}
    assert accepted.json["books_spent_cents"] == 320_000 * M
    # B settled from the books: the reported spending defaults to the ledger's figure
    b_books = world.get(f"/v1/municipalities/{B}/years/2024/settlement-proposal", role="ministry")["books"]
    from_books = ministry_post(world, f"/v1/years/2024/grants/{B}/settlements",
                               {"books": b_books, "settled_on": "2025-09-01"})
    assert (from_books["reported_spending_cents"], from_books["settled_cents"]) == (150_000 * M, 150_000 * M)
    # 2025's rules from the setting: nothing is reclaimed although 400 000 was paid and 90 000 settled
    a_2025 = world.get(f"{base}/years/2025/settlement-proposal", role="ministry")["books"]
    rules_2025 = ministry_post(world, f"/v1/years/2025/grants/{A}/settlements",
                               {"books": a_2025, "settled_on": "2026-09-01"})
    assert (rules_2025["settled_cents"], rules_2025["reclaim_due_cents"]) == (90_000 * M, 0)
    assert rules_2025["settlement_rules"] == {"cap": "award", "reclaim": "none"}
    history: Any = world.payments.get(f"/v1/years/2024/grants/{A}", headers=ministry)
    events = history.json["events"]
    settled = [e for e in events if e["event_type"] == "GrantSettled"][-1]["payload"]
    assert (settled["books_spent_cents"], settled["books_offsets"], settled["rules"]) == (
        320_000 * M, proposal["offsets"], {"cap": "award", "reclaim": "paid-minus-settled"}
    )

    world.publish()
    national = world.get("/v1/balances/2024", role="ministry")
    flags = {m["municipality_code"]: (m["settlement_reported_spending_cents"], m["settlement_differs_from_books"])
             for m in national["municipalities"]}
    assert flags == {A: (310_000 * M, True), B: (150_000 * M, False)}
    assert national["settlements_differing_from_books"] == 1
    national_csv = {r["municipality_code"]: r for r in csv.DictReader(io.StringIO(
        world.get("/v1/balances/2024.csv", role="ministry")))}
    assert (national_csv[A]["settlement_differs_from_books"], national_csv[B]["settlement_differs_from_books"]) == (
        "True", "False"
    )
    assert national_csv[B]["sisa_late"] == "True"  # B never declared its 2024 account
    assert 'data-settlement="differs"' in world.get("/dashboard/national/2024", role="ministry")
    row_2025 = world.get("/v1/balances/2025", role="ministry")["municipalities"][0]
    assert row_2025["settlement_differs_from_books"] is False


def test_settlement_rules_missing_for_a_year_name_the_setting(world: World) -> None:
    grants_and_spending(world)
    world.payments_app.settlement_rules = {2024: {"cap": "award", "reclaim": "paid-minus-settled"}}
    refused: Any = world.payments.post(f"/v1/years/2025/grants/{A}/settlements",
                                  json={"reported_spending_cents": 1, "settled_on": "2026-09-01"},
                                  headers=world.tokens.headers("ministry"))
    assert refused.status_code == 422 and "IDO_SETTLEMENT_RULES" in refused.json["message"], refused.json


def test_spending_a_merger_moved_counts_in_the_year_it_was_spent(world: World) -> None:
    """A predecessor spent on its 2024 grant in 2024; the merger into the successor takes effect on
    1 January 2025. In the successor's SiSa the spending is 2024's besteding (the year it was spent),
    not 2025's (the year of the effective date); before the effective date the predecessor shows it,
    from it the predecessor's lines are nothing. The live view and the audit replay agree."""
    old, new = "GM0501", "GM1992"
    world.payments.put("/v1/years/2024/frame", json={"frame_cents": 17_130_000 * M, "decided_on": "2023-12-01"},
                       headers=world.tokens.headers("ministry"))
    ministry_post(world, "/v1/years/2024/grants", {
        "municipality_code": old, "municipality_name": "Brielle", "amount_cents": 100_000 * M,
        "awarded_on": "2024-01-10",
    })
    world.publish()  # the ledger books only into a year it knows the award of
    for cents, day in ((30_000 * M, "2024-05-01"), (5_000 * M, "2024-12-15")):
        posted = world.ledger.post(
            f"/v1/municipalities/{old}/expenditures", headers=world.tokens.headers("municipality", old),
            json={"grant_year": 2024, "category": "promotion", "amount_cents": cents, "booked_on": day,
                  "counterparty": {"id": "PRINT-1", "name": "Drukkerij"}, "description": "IDO", "reference": day},
        )
        assert posted.status_code == 201, posted.json
        if day == "2024-05-01":
            world.publish()
            ministry_post(world, f"/v1/municipalities/{old}/merger",
                          {"successor_code": new, "effective_on": "2025-01-01"})
            world.publish()  # the second posting, booked before the effective date, comes after the merger
    world.publish()

    def figures(code: str, year: int, as_of: str) -> list[tuple[int, int, int]]:
        answer = world.get(f"/v1/municipalities/{code}/sisa/{year}?as_of={as_of}")
        return [(line["grant_year"], line["besteding_jaar_t_cents"], line["cumulatieve_bestedingen_cents"])
                for line in answer["lines"]]

    spent = 35_000 * M
    # from the effective date the successor answers: 2024's spending in its 2024 account, not in 2025's
    assert figures(new, 2024, "2025-06-30") == [(2024, spent, spent)]
    assert figures(new, 2025, "2025-06-30") == [(2024, 0, spent)]
    successor_2024 = world.get(f"/v1/municipalities/{new}/sisa/2024?as_of=2025-06-30")
    assert successor_2024["besteding_jaar_t_cents"] == spent
    # the predecessor's lines show nothing after the effective date
    for year in (2024, 2025):
        assert all(b == c == 0 for _g, b, c in figures(old, year, "2025-06-30")), year
        assert world.get(f"/v1/municipalities/{old}/sisa/{year}?as_of=2025-06-30")["besteding_jaar_t_cents"] == 0
    # before it the predecessor shows its own spending, the successor nothing
    assert figures(old, 2024, "2024-12-31") == [(2024, spent, spent)]
    assert figures(new, 2024, "2024-12-31") == []
    # the successor's token reads its predecessor's SiSa (main's _require_readable)
    assert world.get(f"/v1/municipalities/{old}/sisa/2024?as_of=2024-12-31", role="municipality", code=new)

    # the audit replay at the same points gives the same SiSa answers
    for as_of in (date(2024, 12, 31), date(2025, 6, 30)):
        reader = TopicReader(audit_kafka_config(world.settings), audited_topics(world.settings))
        try:
            replay = Replay(
                as_of=as_of, provenance=build_provenance_check(world.settings),
                sisa_indicators=world.settings.sisa_indicators, today=TODAY,
            ).read(reader)
        finally:
            reader.close()
        assert not replay.stats.problems, replay.stats.problems
        for code in (old, new):
            for year in (2024, 2025):
                live = world.queries.sisa(code, year, PointInTime(as_of=as_of))
                assert replay.sisa(code, year) == {k: v for k, v in live.items() if k != "offsets"}, (as_of, code, year)
