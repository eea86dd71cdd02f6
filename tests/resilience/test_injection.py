"""SQL-injection and script strings in every text field are stored and returned as plain text.

On PostgreSQL (event stores and the ledger's view) and the real broker: each text field of each
service gets hostile strings. They must be refused by no parser, stored exactly, returned exactly
(JSON from the event store; the ledger's journal CSV and balances from the view after projection; in
the CSV a text that would start a spreadsheet formula is escaped with apostrophes, issue 16),
never executed (the tables they try to drop are still there, the queries still answer), and the
dashboard's HTML must show them escaped.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import inspect

from contracts.topics import BRIDGE, EXPENDITURES, GRANTS
from services.common.adapters.sql import create_sql_engine
from services.common.config import load_settings
from services.common.csv_output import unescape_cell
from services.common.definition import service_definition
from services.common.eventstore import build_application
from services.ledger.entrypoints.projector import build_runner
from services.payments.demo import ANNEX_DEMO_FILE
from tests.resilience.figures import Figures
from tests.resilience.support import StackEnv
from tests.support.infra import KafkaInfo, PostgresInfo
from tests.support.kafka_topics import publish_all
from tests.support.spreadsheet import formula_cells

HOSTILE = [
    "'; DROP TABLE ledger_journal; --",
    "Robert'); DROP TABLE stored_events;--",
    '" OR "1"="1',
    "1' OR '1'='1' /*",
    "x'; SELECT pg_sleep(10); --",
    "<script>alert('ido')</script>",
    "<img src=x onerror=alert(1)>",
    "{{7*7}} ${7*7} %s %(name)s {0}",
    "=1+1",
    "\\'; \\\\ \\x27 --",
    "Ünïcödé — ‘quotes’ “double” € ✓ 🙂",
]
A = "GM0363"


def _expenditure(n: int, text: str) -> dict[str, Any]:
    return {
        "grant_year": 2024, "category": "promotion", "amount_cents": 100 + n, "booked_on": "2024-03-01",
        "counterparty": {"id": text[:100], "name": text}, "description": text, "reference": text[:100],
    }


def test_hostile_text_is_stored_and_returned_as_plain_text(
    database: PostgresInfo, kafka: KafkaInfo, topic_prefix: str, tmp_path: Path, figures: Figures
) -> None:
    stack = StackEnv(tmp_path, kafka, database, topic_prefix=topic_prefix)
    settings = stack.settings()
    apps = {s: build_application(service_definition(s).application_class, settings.eventsourcing_env(s))
            for s in ("payments", "bridge", "ledger")}
    clients = {s: service_definition(s).create_http_app(settings, apps[s]).test_client() for s in apps}
    ministry, kb, town = stack.headers("ministry"), stack.headers("kb"), stack.headers("municipality", A)
    tried = 0

    # payments: municipality names of awards, the reason of a frame amendment and of a settlement correction
    payments = apps["payments"]
    payments.set_frame(2024, 1_713_000_000, date(2023, 12, 1))
    payments.import_annex(2024, ANNEX_DEMO_FILE.read_bytes(), date(2024, 1, 15))
    awarded: dict[str, str] = {}
    for n, text in enumerate(HOSTILE):
        code = f"GM{1900 + n:04d}"
        answer = clients["payments"].post("/v1/years/2024/grants", headers=ministry, json={
            "municipality_code": code, "municipality_name": text, "amount_cents": 100, "awarded_on": "2024-02-01"})
        assert answer.status_code == 201, answer.json
        awarded[code] = text
        amended = clients["payments"].post("/v1/years/2024/frame/amendments", headers=ministry, json={
            "frame_cents": 1_713_000_000 + n + 1, "decided_on": "2024-06-01", "reason": text})
        assert amended.status_code == 201, amended.json
        tried += 2
    for code, text in awarded.items():
        grant = clients["payments"].get(f"/v1/years/2024/grants/{code}", headers=ministry)
        assert grant.status_code == 200 and grant.mimetype == "application/json"
        assert grant.json["municipality_name"] == text
        assert grant.json["events"][0]["payload"]["municipality_name"] == text
    frame = clients["payments"].get("/v1/years/2024/frame", headers=ministry).json
    assert [e["payload"]["reason"] for e in frame["events"] if e["event_type"] == "GrantFrameAmended"] == HOSTILE

    # bridge: library names and the reasons of service-area changes
    bridge = apps["bridge"]
    bridge.set_frame()
    for n, text in enumerate(HOSTILE):
        library_id = f"NL-KVK-2000{n:04d}"
        registered = clients["bridge"].post("/bridge/libraries", headers=kb, json={
            "library_id": library_id, "name": text, "service_area": [{"municipality_code": A, "inhabitants": 10}]})
        assert registered.status_code == 201, registered.json
        changed = clients["bridge"].put(f"/bridge/libraries/{library_id}/service-area", headers=kb, json={
            "service_area": [{"municipality_code": A, "inhabitants": 20}], "reason": text})
        assert changed.status_code == 200, changed.json
        tried += 2
        library = clients["bridge"].get(f"/bridge/libraries/{library_id}", headers=kb).json
        assert library["name"] == text
        events = clients["bridge"].get(f"/bridge/libraries/{library_id}/events", headers=kb).json
        assert events[-1]["payload"]["reason"] == text
    assert clients["bridge"].post("/bridge/grant-batches", headers=kb).status_code == 201

    # ledger: description, reference, counterparty id and name; the reason of a reversal
    posted: dict[str, str] = {}
    for n, text in enumerate(HOSTILE):
        answer = clients["ledger"].post(
            f"/v1/municipalities/{A}/expenditures", headers=town, json=_expenditure(n, text)
        )
        assert answer.status_code == 201, answer.json
        posted[answer.json["expenditure_id"]] = text
        tried += 4
    reversed_id, reversal_reason = next(iter(posted)), HOSTILE[5]
    reversal = clients["ledger"].post(f"/v1/municipalities/{A}/expenditures/{reversed_id}/reversal", headers=town,
                                      json={"reason": reversal_reason, "booked_on": "2024-03-02"})
    assert reversal.status_code == 201, reversal.json
    tried += 1
    for expenditure_id, text in posted.items():
        got = clients["ledger"].get(f"/v1/municipalities/{A}/expenditures/{expenditure_id}", headers=town)
        assert got.status_code == 200 and got.mimetype == "application/json"
        assert (got.json["description"], got.json["counterparty"]["name"]) == (text, text)
        assert (got.json["reference"], got.json["counterparty"]["id"]) == (text[:100], text[:100])
    figures.add_inputs("injection and script strings", tried)

    # through Kafka into the view: the journal CSV and the names in the national balances, exactly
    for application, topic in ((payments, GRANTS), (bridge, BRIDGE), (apps["ledger"], EXPENDITURES)):
        publish_all(settings, application, topic)
    runner = build_runner(settings)
    stop = threading.Event()
    projector = threading.Thread(target=runner.run_forever, args=(stop,), daemon=True)
    projector.start()
    try:
        deadline = time.monotonic() + 60
        rows: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            journal = clients["ledger"].get(f"/v1/municipalities/{A}/journal.csv", headers=town)
            assert journal.status_code == 200 and journal.mimetype == "text/csv"
            rows = list(csv.DictReader(io.StringIO(journal.get_data(as_text=True))))
            if len(rows) == len(HOSTILE) + 1:
                break
            time.sleep(0.3)
        assert len(rows) == len(HOSTILE) + 1, rows
        assert formula_cells(journal.get_data(as_text=True)) == []  # "=1+1" among them (issue 16)
        recorded = {r["expenditure_id"]: r for r in rows if r["event_type"] == "ExpenditureRecorded"}
        for expenditure_id, text in posted.items():
            row = recorded[expenditure_id]
            cells = (row["description"], row["counterparty_name"], row["reference"])
            assert tuple(map(unescape_cell, cells)) == (text, text, text[:100])
        national = None
        while time.monotonic() < deadline:
            national = clients["ledger"].get("/v1/balances/2024", headers=ministry).json
            names = {m["municipality_code"]: m["name"] for m in national["municipalities"]}
            libraries = {x["library_id"]: x["name"] for x in national["bridge"]["libraries"]}
            if all(code in names for code in awarded) and len(libraries) >= len(HOSTILE):
                break
            time.sleep(0.3)
        assert national is not None
        assert {code: names[code] for code in awarded} == awarded
        assert sorted(libraries[f"NL-KVK-2000{n:04d}"] for n in range(len(HOSTILE))) == sorted(HOSTILE)
        page = clients["ledger"].get("/dashboard/national/2024", headers=ministry)
        assert page.status_code == 200, page.status_code
        html = page.get_data(as_text=True)
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(" in html
    finally:
        stop.set()
        projector.join(timeout=10)
        runner.close()

    # nothing was executed: every table is still there and answers
    view_tables = set(inspect(create_sql_engine(settings.view_db_url)).get_table_names())
    assert {"ledger_journal", "applied_events", "consumer_offsets"} <= view_tables
    with psycopg.connect(database.dsn(), connect_timeout=10) as connection:
        tables = {row[0] for row in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    assert {"payments_events", "bridge_events", "ledger_events"} <= tables, tables
    assert load_settings(stack.env()).event_store == "postgres"
