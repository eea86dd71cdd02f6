"""Mergers and grant years end to end (issue 15): the ministry records awards and mergers through the
payments API, municipalities post through the ledger's API, the relays publish on the real broker, the
projector applies, and the ledger's figures (and the audit replay's) follow the grant to its successor.

Codes and dates of Voorne aan Zee are real (GM0501 Brielle, GM0530 Hellevoetsluis, GM0614 Westvoorne
→ GM1992, 1 January 2023); every amount is illustrative.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.application import Application
from flask.testing import FlaskClient

from contracts.topics import EXPENDITURES, GRANTS
from services.audit.replay import replay_topics
from services.common.config import Settings, load_settings
from services.common.eventstore import build_application
from services.ledger.application.app import LedgerApplication
from services.ledger.entrypoints.definition import create_app as create_ledger_app
from services.ledger.entrypoints.projector import build_runner
from services.payments.application.app import PaymentsApplication
from services.payments.entrypoints.definition import create_app as create_payments_app
from tests.support.dashboard import sign_in_form
from tests.support.infra import KafkaInfo
from tests.support.kafka_topics import publish_all
from tests.support.read_your_writes import get_once_projected
from tests.support.tokens import TokenFactory

BRIELLE, HELLEVOETSLUIS, WESTVOORNE, VOORNE_AAN_ZEE = "GM0501", "GM0530", "GM0614", "GM1992"
GRONINGEN, UTRECHT, ROTTERDAM = "GM0014", "GM0344", "GM0599"
CSV_HEADER = "grant_year,category,amount_cents,booked_on,counterparty_id,counterparty_name,description,reference\n"


@dataclass
class Stack:
    settings: Settings
    tokens: TokenFactory
    payments_app: PaymentsApplication
    ledger_app: LedgerApplication
    payments: FlaskClient
    ledger: FlaskClient

    def ministry(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.payments.open(path, method=method, json=body, headers=self.tokens.headers("ministry"))
        assert answer.status_code in (200, 201), answer.json
        return answer.json

    def award(self, year: int, code: str, name: str, cents: int, on: str) -> None:
        body = {"municipality_code": code, "municipality_name": name, "amount_cents": cents, "awarded_on": on}
        self.ministry("POST", f"/v1/years/{year}/grants", body)
        self.ministry("POST", f"/v1/years/{year}/grants/{code}/advances", {"amount_cents": cents, "paid_on": on})

    def merge(self, code: str, successor: str, on: str) -> None:
        self.ministry("POST", f"/v1/municipalities/{code}/merger", {"successor_code": successor, "effective_on": on})

    def post(self, code: str, year: int, cents: int, on: str, category: str = "promotion") -> Any:
        body = {
            "grant_year": year, "category": category, "amount_cents": cents, "booked_on": on,
            "counterparty": {"id": "PRINT-1", "name": "Drukkerij (illustrative)"},
            "description": "illustrative", "reference": f"R-{code}-{on}-{cents}",
        }
        return self.ledger.post(
            f"/v1/municipalities/{code}/expenditures", json=body,
            headers=self.tokens.headers("municipality", code),
        )

    def sync(self) -> None:
        """Publishes both stores and waits until the projector applied every event of them (each
        partition on its own: the last event stored may be applied before another partition's)."""
        for application, topic in ((self.payments_app, GRANTS), (self.ledger_app, EXPENDITURES)):
            publish_all(self.settings, application, topic)
            for event_id in event_ids(application):
                waited = get_once_projected(  # the payments events: 503 until projected, so retried
                    self.ledger, f"/v1/balances/2024?includes_event_id={event_id}", self.tokens.headers("auditor")
                )
                assert waited.status_code == 200, waited.json

    def read(self, path: str, token: tuple[str, ...] = ("auditor",), **point: str) -> Any:
        answer = self.ledger.get(path, query_string=point, headers=self.tokens.headers(*token))
        assert answer.status_code == 200, answer.json
        return answer.json if answer.is_json else answer.get_data(as_text=True)

    def balance(self, code: str, year: int, **point: str) -> dict[str, Any]:
        found: dict[str, Any] = self.read(f"/v1/municipalities/{code}/balances/{year}", **point)
        return found


def event_ids(application: Application) -> list[str]:
    notifications = application.recorder.select_notifications(start=1, limit=10_000)
    return [application.mapper.to_domain_event(n).event_id for n in notifications]  # type: ignore[attr-defined]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def stack(store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str) -> Iterator[Stack]:
    settings = load_settings(
        {**store_env, **kafka.settings_env(), "IDO_TOPIC_PREFIX": topic_prefix,
         "IDO_READ_YOUR_WRITES_TIMEOUT_MS": "20000",
         # the tests post right after a merger is projected and expect its refusal at once
         "IDO_MERGERS_REREAD_MS": "0"}
    )
    payments_app = build_application(PaymentsApplication, settings.eventsourcing_env("payments"))
    ledger_app = build_application(LedgerApplication, settings.eventsourcing_env("ledger"))
    runner = build_runner(settings)
    stop = threading.Event()
    projector = threading.Thread(target=runner.run_forever, args=(stop,), daemon=True)
    projector.start()
    try:
        yield Stack(
            settings, TokenFactory(settings), payments_app, ledger_app,
            create_payments_app(settings, payments_app).test_client(),
            create_ledger_app(settings, ledger_app).test_client(),
        )
    finally:
        stop.set()
        projector.join(timeout=10)
        runner.close()
        payments_app.close()
        ledger_app.close()


def without_offsets(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "offsets"}


def assert_replay_equals_live(stack: Stack, codes: list[str], years: list[int], points: list[dict[str, str]]) -> None:
    for point in points:
        as_of = date.fromisoformat(point["as_of"]) if "as_of" in point else None
        known_at = datetime.fromisoformat(point["known_at"].replace("Z", "+00:00")) if "known_at" in point else None
        replay = replay_topics(stack.settings, as_of=as_of, known_at=known_at)
        assert not replay.stats.problems, replay.stats.problems
        for year in years:
            national = stack.read(f"/v1/balances/{year}", **point)
            assert replay.national(year) == without_offsets(national), (point, year)
            for code in codes:
                assert replay.balances(code, year) == without_offsets(stack.balance(code, year, **point)), (point, code)
                sisa = stack.read(f"/v1/municipalities/{code}/sisa/{year}", **point)
                assert replay.sisa(code, year) == without_offsets(sisa), (point, code)


def test_voorne_aan_zee(stack: Stack) -> None:
    """Three municipalities merge into GM1992 on 1 January 2023; their 2023 grants and spending follow."""
    stack.ministry("PUT", "/v1/years/2023/frame", {"frame_cents": 1_713_000_000, "decided_on": "2022-11-01"})
    awards = {BRIELLE: 60_000_00, HELLEVOETSLUIS: 90_000_00, WESTVOORNE: 50_000_00}
    names = {BRIELLE: "Brielle", HELLEVOETSLUIS: "Hellevoetsluis", WESTVOORNE: "Westvoorne"}
    for code, cents in awards.items():
        stack.award(2023, code, names[code], cents, "2022-12-15")
    stack.sync()
    # Brielle's administration still posts in January, before the ministry recorded the merger: the
    # ledger cannot know yet (eventual consistency) and takes it; the projection moves it on.
    early = stack.post(BRIELLE, 2023, 1_000_00, "2023-01-10")
    assert early.status_code == 201, early.json
    stack.sync()
    before_merger = now()
    for code in awards:
        stack.merge(code, VOORNE_AAN_ZEE, "2023-01-01")
    stack.sync()
    after_merger = now()

    refused = stack.post(BRIELLE, 2023, 2_000_00, "2023-02-01")
    assert refused.status_code == 422, refused.json
    assert VOORNE_AAN_ZEE in refused.json["message"] and "2023-01-01" in refused.json["message"]
    assert refused.json["errors"] == {"municipality_code": [refused.json["message"]]}
    posted = stack.post(VOORNE_AAN_ZEE, 2023, 25_000_00, "2023-03-01", category="library_funding")
    assert posted.status_code == 422  # library funding needs the library's id: a reminder the rules still run
    posted = stack.post(VOORNE_AAN_ZEE, 2023, 25_000_00, "2023-03-01")
    assert posted.status_code == 201, posted.json  # it holds the three awards, passed to it
    stack.sync()

    total = sum(awards.values())
    successor = stack.balance(VOORNE_AAN_ZEE, 2023)
    assert successor["awarded_cents"] == successor["advance_paid_cents"] == total
    assert successor["spent_cents"] == 1_000_00 + 25_000_00
    assert successor["unspent_cents"] == total - 26_000_00 and successor["spent_beyond_award_cents"] == 0
    for code, cents in awards.items():
        now_ = stack.balance(code, 2023)
        assert (now_["awarded_cents"], now_["advance_paid_cents"], now_["spent_cents"]) == (0, 0, 0), code
        assert now_["spent_beyond_award_cents"] == 0
        old_year = stack.balance(code, 2023, as_of="2022-12-31")
        assert old_year["awarded_cents"] == old_year["advance_paid_cents"] == cents
        known_before = stack.balance(code, 2023, known_at=before_merger)
        assert known_before["awarded_cents"] == cents
    assert stack.balance(VOORNE_AAN_ZEE, 2023, as_of="2022-12-31")["awarded_cents"] == 0
    assert stack.balance(VOORNE_AAN_ZEE, 2023, known_at=before_merger)["awarded_cents"] == 0
    assert stack.balance(BRIELLE, 2023, known_at=before_merger)["spent_cents"] == 1_000_00
    assert stack.balance(BRIELLE, 2023, known_at=after_merger)["spent_cents"] == 0
    assert stack.balance(BRIELLE, 2023, known_at=before_merger)["spent_beyond_award_cents"] == 0

    national = stack.read("/v1/balances/2023")
    assert national["totals"]["awarded_cents"] == total and national["totals"]["spent_cents"] == 26_000_00
    assert stack.read("/v1/balances/2023", as_of="2022-12-31")["totals"]["awarded_cents"] == total
    assert stack.read(f"/v1/municipalities/{VOORNE_AAN_ZEE}/sisa/2023")["besteding_jaar_t_cents"] == 26_000_00
    assert stack.read(f"/v1/municipalities/{BRIELLE}/sisa/2023")["besteding_jaar_t_cents"] == 0
    assert stack.read(f"/v1/municipalities/{BRIELLE}/sisa/2023", known_at=before_merger)[
        "besteding_jaar_t_cents"] == 1_000_00

    # The successor's token reads the predecessors' books, journal and SiSa; nobody else's.
    successor_token = ("municipality", VOORNE_AAN_ZEE)
    for code in awards:
        for path in ("balances/2023", "balances/2023.csv", "sisa/2023", "journal.csv"):
            stack.read(f"/v1/municipalities/{code}/{path}", token=successor_token)
    journal = stack.read(f"/v1/municipalities/{BRIELLE}/journal.csv", token=successor_token)
    assert f"merger: the grant of 2023 passed from {BRIELLE} to {VOORNE_AAN_ZEE}" in journal
    expenditure = stack.ledger.get(
        f"/v1/municipalities/{BRIELLE}/expenditures/{early.json['expenditure_id']}",
        headers=stack.tokens.headers(*successor_token),
    )
    assert expenditure.status_code == 200, expenditure.json
    for token, code in ((("municipality", ROTTERDAM), BRIELLE), ((("municipality", BRIELLE)), VOORNE_AAN_ZEE)):
        for path in ("balances/2023", "sisa/2023", "journal.csv"):
            answer = stack.ledger.get(f"/v1/municipalities/{code}/{path}", headers=stack.tokens.headers(*token))
            assert answer.status_code == 403, (token, code, path)

    # The dashboard follows the same rule as the API.
    for code, status in ((VOORNE_AAN_ZEE, 200), (ROTTERDAM, 403)):
        browser = stack.ledger.application.test_client()
        token = stack.tokens.headers("municipality", code)["Authorization"].removeprefix("Bearer ")
        assert browser.post("/dashboard/login", data=sign_in_form(browser, token)).status_code == 303
        assert browser.get(f"/dashboard/municipalities/{BRIELLE}/2023").status_code == status, code

    assert_replay_equals_live(
        stack, [*awards, VOORNE_AAN_ZEE], [2023],
        [{}, {"as_of": "2022-12-31"}, {"as_of": "2023-01-01"}, {"known_at": before_merger},
         {"known_at": after_merger}, {"as_of": "2023-01-31", "known_at": before_merger}],
    )


def test_a_mid_year_merger_with_spending_before_and_after(stack: Stack) -> None:
    """GM0014 merges into GM0344 on 1 July 2024 (the case of the issue): its spending goes with its grant."""
    stack.ministry("PUT", "/v1/years/2024/frame", {"frame_cents": 1_713_000_000, "decided_on": "2023-12-01"})
    stack.award(2024, GRONINGEN, "Groningen", 300_000_00, "2024-01-15")
    stack.award(2024, UTRECHT, "Utrecht", 400_000_00, "2024-01-15")
    stack.sync()
    assert stack.post(GRONINGEN, 2024, 100_000_00, "2024-03-10").status_code == 201
    assert stack.post(UTRECHT, 2024, 50_000_00, "2024-04-01").status_code == 201
    stack.sync()
    before_merger = now()
    stack.merge(GRONINGEN, UTRECHT, "2024-07-01")
    stack.sync()
    after_merger = now()

    # Late spending of the predecessor, booked before the effective date: its own books, then moved.
    late = stack.post(GRONINGEN, 2024, 20_000_00, "2024-06-20")
    assert late.status_code == 201, late.json
    refused = stack.post(GRONINGEN, 2024, 5_000_00, "2024-07-01")
    assert refused.status_code == 422 and UTRECHT in refused.json["message"], refused.json
    imported = stack.ledger.post(
        f"/v1/municipalities/{GRONINGEN}/expenditures:import",
        headers={**stack.tokens.headers("municipality", GRONINGEN), "Content-Type": "text/csv"},
        data=CSV_HEADER + "2024,promotion,1000,2024-06-01,P,Printer,flyers,I-1\n"
        "2024,promotion,2000,2024-08-01,P,Printer,posters,I-2\n",
    )
    assert imported.status_code == 422, imported.json
    assert list(imported.json["errors"]) == ["line 3.municipality_code"]
    assert UTRECHT in imported.json["errors"]["line 3.municipality_code"][0]
    assert stack.post(UTRECHT, 2024, 30_000_00, "2024-08-01").status_code == 201
    stack.sync()

    june = stack.balance(GRONINGEN, 2024, as_of="2024-06-30")
    assert (june["awarded_cents"], june["spent_cents"]) == (300_000_00, 120_000_00)
    assert stack.balance(UTRECHT, 2024, as_of="2024-06-30")["spent_cents"] == 50_000_00
    for point in ({}, {"as_of": "2024-07-01"}, {"as_of": "2024-12-31"}):
        groningen = stack.balance(GRONINGEN, 2024, **point)
        assert (groningen["awarded_cents"], groningen["spent_cents"], groningen["unspent_cents"]) == (0, 0, 0)
        assert groningen["spent_beyond_award_cents"] == 0
    utrecht = stack.balance(UTRECHT, 2024)
    assert utrecht["awarded_cents"] == utrecht["advance_paid_cents"] == 700_000_00
    assert utrecht["spent_cents"] == 100_000_00 + 20_000_00 + 50_000_00 + 30_000_00
    assert utrecht["spent_by_category"]["promotion"] == utrecht["spent_cents"]
    known = stack.balance(GRONINGEN, 2024, known_at=before_merger)
    assert (known["awarded_cents"], known["spent_cents"], known["spent_beyond_award_cents"]) == (
        300_000_00, 100_000_00, 0)
    assert stack.balance(UTRECHT, 2024, known_at=after_merger)["spent_cents"] == 150_000_00
    assert stack.read(f"/v1/municipalities/{UTRECHT}/sisa/2024")["besteding_jaar_t_cents"] == 200_000_00
    assert stack.read(f"/v1/municipalities/{GRONINGEN}/sisa/2024", as_of="2024-06-30")[
        "besteding_jaar_t_cents"] == 120_000_00
    stack.read(f"/v1/municipalities/{GRONINGEN}/sisa/2024", token=("municipality", UTRECHT))
    assert stack.ledger.get(
        f"/v1/municipalities/{GRONINGEN}/sisa/2024", headers=stack.tokens.headers("municipality", ROTTERDAM)
    ).status_code == 403

    day_before = (date(2024, 7, 1) - timedelta(days=1)).isoformat()
    assert_replay_equals_live(
        stack, [GRONINGEN, UTRECHT], [2024],
        [{}, {"as_of": day_before}, {"as_of": "2024-07-01"}, {"known_at": before_merger},
         {"known_at": after_merger}, {"as_of": day_before, "known_at": after_merger}],
    )


def test_a_grant_year_without_an_award_is_refused_unless_opened(
    stack: Stack, store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str
) -> None:
    stack.ministry("PUT", "/v1/years/2024/frame", {"frame_cents": 1_713_000_000, "decided_on": "2023-12-01"})
    stack.award(2024, UTRECHT, "Utrecht", 400_000_00, "2024-01-15")
    refused = stack.post(UTRECHT, 2024, 1_000_00, "2024-02-01")  # awarded, but not projected yet
    assert refused.status_code == 422 and "retry once it is projected" in refused.json["message"], refused.json
    stack.sync()
    assert stack.post(UTRECHT, 2024, 1_000_00, "2024-02-01").status_code == 201
    for year in (2019, 2022, 2025):
        refused = stack.post(UTRECHT, year, 1_000_00, f"{year}-02-01")
        assert refused.status_code == 422, refused.json
        assert list(refused.json["errors"]) == ["grant_year"]
        assert f"grant year {year}" in refused.json["message"] and UTRECHT in refused.json["message"]
    imported = stack.ledger.post(
        f"/v1/municipalities/{UTRECHT}/expenditures:import",
        headers={**stack.tokens.headers("municipality", UTRECHT), "Content-Type": "text/csv"},
        data=CSV_HEADER + "2024,promotion,1000,2024-03-01,P,Printer,flyers,I-1\n"
        "2021,promotion,2000,2021-03-01,P,Printer,posters,I-2\n"
        "2022,promotion,3000,2022-03-01,P,Printer,posters,I-3\n",
    )
    assert imported.status_code == 422, imported.json
    assert sorted(imported.json["errors"]) == ["line 3.grant_year", "line 4.grant_year"]
    assert "grant year 2021" in imported.json["errors"]["line 3.grant_year"][0]
    assert "grant year 2022" in imported.json["errors"]["line 4.grant_year"][0]

    # The same ledger with 2022 opened for posting before its award.
    opened = load_settings(
        {**store_env, **kafka.settings_env(), "IDO_TOPIC_PREFIX": topic_prefix, "IDO_YEARS_OPEN_BEFORE_AWARD": "2022"}
    )
    ledger_app = build_application(LedgerApplication, opened.eventsourcing_env("ledger"))
    try:
        client = create_ledger_app(opened, ledger_app).test_client()
        body = {
            "grant_year": 2022, "category": "promotion", "amount_cents": 1_000_00, "booked_on": "2022-02-01",
            "counterparty": {"id": "P", "name": "Printer"}, "description": "illustrative", "reference": "O-1",
        }
        headers = stack.tokens.headers("municipality", UTRECHT)
        assert client.post(f"/v1/municipalities/{UTRECHT}/expenditures", json=body, headers=headers).status_code == 201
        body["grant_year"], body["booked_on"] = 2021, "2021-02-01"
        still = client.post(f"/v1/municipalities/{UTRECHT}/expenditures", json=body, headers=headers)
        assert still.status_code == 422 and "grant year 2021" in still.json["message"]
    finally:
        ledger_app.close()
