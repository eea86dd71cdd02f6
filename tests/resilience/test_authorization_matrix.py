"""Every endpoint × every caller: the exact 2xx/401/403 of each cell.

Callers: municipality A (GM0363, whose books the paths name) and B (GM0599), ministry, kb,
auditor, finance, and four that must get 401: no token, an expired one, a forged signature and a
revoked one. A cell that should succeed runs against a fresh store prepared so that the request
is valid; the others are refused before the body is looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient

from services.common.auth import RevocationList, init_token_files, issue_token
from services.common.config import Settings, load_settings
from services.common.definition import SERVICE_NAMES, service_definition
from services.common.eventstore import build_application
from services.payments.demo import ANNEX_DEMO_FILE

A, B = "GM0363", "GM0599"
CALLERS = ("A", "B", "ministry", "kb", "auditor", "finance", "none", "expired", "forged", "revoked")
UNAUTHENTICATED = ("none", "expired", "forged", "revoked")
LIBRARY = "NL-KVK-10000001"
CSV = "text/csv"


def headers_for(settings: Settings, caller: str) -> dict[str, str]:
    private = settings.jwt_private_key_file.read_bytes()
    if caller == "none":
        return {}
    if caller == "forged":
        other = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        token, _ = issue_token(other, audience=SERVICE_NAMES, role="ministry")
    elif caller == "expired":
        token, _ = issue_token(private, audience=SERVICE_NAMES, role="ministry", ttl=timedelta(seconds=-5))
    elif caller == "revoked":
        token, token_id = issue_token(private, audience=SERVICE_NAMES, role="ministry")
        RevocationList(settings.revoked_tokens_file).revoke(token_id)
    elif caller in ("A", "B"):
        token, _ = issue_token(
            private, audience=SERVICE_NAMES, role="municipality", municipality_code=A if caller == "A" else B
        )
    else:
        token, _ = issue_token(private, audience=SERVICE_NAMES, role=caller)
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Cell:
    service: str
    method: str
    path: str
    allowed: tuple[str, ...]
    body: Any = None
    content_type: str | None = None
    world: str = "base"
    public: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def expected(self, caller: str) -> str:
        if self.public:
            return "2xx"
        if caller in UNAUTHENTICATED:
            return "401"
        return "2xx" if caller in self.allowed else "403"


READERS = ("ministry", "auditor", "finance")
EXP = {
    "grant_year": 2024, "category": "promotion", "amount_cents": 1000, "booked_on": "2024-03-01",
    "counterparty": {"id": "PRINT-1", "name": "Printer"}, "description": "flyers", "reference": "R1",
}
EXP_CSV = (
    "grant_year,category,amount_cents,booked_on,counterparty_id,counterparty_name,description,reference\n"
    "2024,promotion,3000,2024-05-01,PRINT-1,Printer,posters,R2\n"
)
EXPENDITURE_ID = "@expenditure"

CELLS = [
    # payments: the ministry writes; ministry, auditor and finance read; a municipality reads its own grant.
    Cell("payments", "GET", "/healthz", (), public=True),
    Cell("payments", "GET", "/openapi.json", (), public=True),
    Cell("payments", "GET", "/.well-known/ido-keyset.json", (), public=True),
    Cell("payments", "GET", "/docs", (), public=True),
    Cell("payments", "GET", "/v1/years/2024/frame", READERS),
    Cell("payments", "PUT", "/v1/years/2025/frame", ("ministry",),
         {"frame_cents": 1_713_000_000, "decided_on": "2024-12-01"}),
    Cell("payments", "POST", "/v1/years/2024/frame/amendments", ("ministry",),
         {"frame_cents": 1_800_000_000, "decided_on": "2024-06-01", "reason": "raised"}),
    Cell("payments", "POST", "/v1/years/2024/grants", ("ministry",),
         {"municipality_code": "GM1948", "municipality_name": "Meierijstad", "amount_cents": 100_00,
          "awarded_on": "2024-02-01"}),
    Cell("payments", "POST", "/v1/years/2024/annex?awarded_on=2024-01-15", ("ministry",),
         ANNEX_DEMO_FILE.read_bytes(), CSV),
    Cell("payments", "GET", "/v1/years/2024/grants", (*READERS, "A", "B")),
    Cell("payments", "GET", f"/v1/years/2024/grants/{A}", (*READERS, "A")),
    Cell("payments", "POST", f"/v1/years/2024/grants/{A}/advances", ("ministry",),
         {"amount_cents": 100, "paid_on": "2024-01-31"}),
    Cell("payments", "POST", f"/v1/years/2024/grants/{A}/settlements", ("ministry",),
         {"reported_spending_cents": 100, "settled_on": "2025-10-01"}, world="paid"),
    Cell("payments", "POST", f"/v1/years/2024/grants/{A}/reclaims", ("ministry",), "@reclaim", world="settled"),
    Cell("payments", "POST", f"/v1/years/2024/grants/{A}/reclaims/receipts", ("ministry",), "@receipt",
         world="reclaimed"),
    Cell("payments", "POST", f"/v1/municipalities/{A}/merger", ("ministry",),
         {"successor_code": "GM1948", "effective_on": "2024-06-01"}),
    # bridge: the kb writes; kb, ministry, auditor and finance read; municipalities do not.
    Cell("bridge", "GET", "/healthz", (), public=True),
    Cell("bridge", "GET", "/openapi.json", (), public=True),
    Cell("bridge", "GET", "/.well-known/ido-keyset.json", (), public=True),
    Cell("bridge", "GET", "/docs", (), public=True),
    Cell("bridge", "GET", "/bridge/frame", ("kb", *READERS)),
    Cell("bridge", "POST", "/bridge/frame", ("kb",), {}, world="empty"),
    Cell("bridge", "POST", "/bridge/frame/amendments", ("kb",), {"frame_cents": 280_000_000, "reason": "raised"}),
    Cell("bridge", "GET", "/bridge/frame/events", ("kb", *READERS)),
    Cell("bridge", "GET", "/bridge/overview", ("kb", *READERS)),
    Cell("bridge", "GET", "/bridge/libraries", ("kb", *READERS)),
    Cell("bridge", "POST", "/bridge/libraries", ("kb",),
         {"library_id": "NL-KVK-10000002", "name": "Bieb",
          "service_area": [{"municipality_code": B, "inhabitants": 10}]}),
    Cell("bridge", "GET", f"/bridge/libraries/{LIBRARY}", ("kb", *READERS)),
    Cell("bridge", "GET", f"/bridge/libraries/{LIBRARY}/events", ("kb", *READERS)),
    Cell("bridge", "PUT", f"/bridge/libraries/{LIBRARY}/service-area", ("kb",),
         {"service_area": [{"municipality_code": A, "inhabitants": 2000}], "reason": "grew"}),
    Cell("bridge", "POST", "/bridge/grant-batches", ("kb",), None),
    Cell("bridge", "PUT", f"/bridge/libraries/{LIBRARY}/grant", ("kb",), "@grant", world="granted"),
    Cell("bridge", "POST", f"/bridge/libraries/{LIBRARY}/payments", ("kb",),
         {"amount_cents": 100, "paid_on": "2022-12-01"}, world="granted"),
    Cell("bridge", "POST", "/bridge/payment-batches", ("kb",), {"paid_on": "2022-12-01"}, world="granted"),
    Cell("bridge", "POST", f"/bridge/libraries/{LIBRARY}/account", ("kb",),
         {"spent_cents": 100, "submitted_on": "2023-08-01"}, world="paid"),
    # ledger: a municipality writes and reads only its own books; readers read; the ministry closes
    # (auditors read only, issue 16).
    Cell("ledger", "GET", "/healthz", (), public=True),
    Cell("ledger", "GET", "/openapi.json", (), public=True),
    Cell("ledger", "GET", "/.well-known/ido-keyset.json", (), public=True),
    Cell("ledger", "GET", "/docs", (), public=True),
    Cell("ledger", "POST", f"/v1/municipalities/{A}/expenditures", ("A",), EXP),
    Cell("ledger", "GET", f"/v1/municipalities/{A}/expenditures/{EXPENDITURE_ID}", ("A", *READERS)),
    Cell("ledger", "POST", f"/v1/municipalities/{A}/expenditures/{EXPENDITURE_ID}/reversal", ("A",),
         {"reason": "wrong", "booked_on": "2024-03-02"}),
    Cell("ledger", "POST", f"/v1/municipalities/{A}/expenditures:import", ("A",), EXP_CSV.encode(), CSV),
    Cell("ledger", "POST", f"/v1/municipalities/{A}/years/2024/close", ("ministry",),
         {"final_account": True}),
    Cell("ledger", "GET", f"/v1/municipalities/{A}/balances/2024", ("A", *READERS)),
    Cell("ledger", "GET", f"/v1/municipalities/{A}/balances/2024.csv", ("A", *READERS)),
    Cell("ledger", "GET", f"/v1/municipalities/{A}/sisa/2024", ("A", *READERS)),
    Cell("ledger", "GET", f"/v1/municipalities/{A}/sisa/2024.csv", ("A", *READERS)),
    # the eindverantwoording: the municipality itself, or the ministry on its behalf (with a reason)
    Cell("ledger", "POST", f"/v1/municipalities/{A}/sisa/2024/declarations", ("A", "ministry"),
         {"grant_year": 2024, "final_account": True, "reason": "declared in the annex to CBS"}),
    Cell("ledger", "GET", f"/v1/municipalities/{A}/years/2024/settlement-proposal", ("A", *READERS)),
    Cell("ledger", "GET", f"/v1/municipalities/{A}/journal.csv", ("A", *READERS)),
    Cell("ledger", "GET", "/v1/balances/2024", READERS),
    Cell("ledger", "GET", "/v1/balances/2024.csv", READERS),
    Cell("ledger", "GET", "/v1/bridge", (*READERS, "kb")),
    # the ledger's dashboard: the same readers as the API (without a valid token: 401 with the login form).
    Cell("ledger", "GET", "/dashboard/login", (), public=True),
    Cell("ledger", "GET", "/dashboard/", ("A", "B", *READERS, "kb")),
    Cell("ledger", "GET", "/dashboard/bridge", (*READERS, "kb")),
    Cell("ledger", "GET", "/dashboard/national/2024", READERS),
    Cell("ledger", "GET", f"/dashboard/municipalities/{A}/2024", ("A", *READERS)),
    # its downloads with the session (issue 18): the API's readers again
    Cell("ledger", "GET", f"/dashboard/municipalities/{A}/2024/journal.xlsx", ("A", *READERS)),
    Cell("ledger", "GET", "/dashboard/national/2024/balances.csv", READERS),
    Cell("ledger", "GET", f"/dashboard/municipalities/{A}/2024/journal", ("A", *READERS)),
    # the reversal form: only the municipality itself, as the API's reversal
    Cell("ledger", "GET", f"/dashboard/municipalities/{A}/expenditures/{EXPENDITURE_ID}/reversal", ("A",)),
    Cell("ledger", "GET", f"/dashboard/municipalities/{A}/upload", ("A",)),
]
NOT_IN_MATRIX = {
    # Public by design, but their answer depends on the broker and stores (200 or 503), and the
    # dashboard's session mechanics and static files: tests/operators covers each of them.
    "operations.readyz", "operations.metrics", "_swagger_ui_asset",
    "dashboard.static", "dashboard.login_post", "dashboard.logout",
    # a form post needs the page's CSRF field: tests/operators/test_dashboard_journal.py runs it per role
    "dashboard.reversal_post", "dashboard.upload_post", "dashboard.sisa_declaration_post",
}


class World:
    """A fresh store for one service, prepared up to a stage, with its test client."""

    def __init__(self, tmp: Path, service: str, stage: str):
        # no grants topic here: the ledger's year is opened before its award (issue 15)
        self.settings = load_settings({"IDO_DATA_DIR": str(tmp / "data"), "IDO_KEYS_DIR": str(tmp / "keys"),
                                       "IDO_YEARS_OPEN_BEFORE_AWARD": "2024"})
        init_token_files(self.settings)
        definition = service_definition(service)
        self.app = build_application(definition.application_class, self.settings.eventsourcing_env(service))
        self.values: dict[str, str] = {}
        getattr(self, f"_prepare_{service}")(stage)
        self.client: FlaskClient = definition.create_http_app(self.settings, self.app).test_client()
        if service == "ledger":
            ministry = headers_for(self.settings, "A")
            posted = self.client.post(f"/v1/municipalities/{A}/expenditures", json=EXP, headers=ministry)
            assert posted.status_code == 201, posted.json
            self.values[EXPENDITURE_ID] = posted.json["expenditure_id"]

    def _prepare_payments(self, stage: str) -> None:
        app = self.app
        app.set_frame(2024, 1_713_000_000, date(2023, 12, 1))
        app.import_annex(2024, ANNEX_DEMO_FILE.read_bytes(), date(2024, 1, 15))
        grant = app.grant(2024, A)
        if stage in ("paid", "settled", "reclaimed"):
            app.pay_advance(2024, A, grant.amount_cents, date(2024, 1, 31))
        if stage in ("settled", "reclaimed"):
            app.settle(2024, A, reported_spending_cents=grant.amount_cents - 500, settled_on=date(2025, 10, 1))
            self.values["@reclaim"] = {"amount_cents": 500, "issued_on": "2025-10-02"}  # type: ignore[assignment]
        if stage == "reclaimed":
            app.issue_reclaim(2024, A, 500, date(2025, 10, 2))
            self.values["@receipt"] = {"amount_cents": 500, "received_on": "2025-11-01"}  # type: ignore[assignment]

    def _prepare_bridge(self, stage: str) -> None:
        if stage == "empty":
            return
        app = self.app
        app.set_frame()
        app.register_libraries([{"library_id": LIBRARY, "name": "OBA", "service_area": [
            {"municipality_code": A, "inhabitants": 1000}]}])
        if stage in ("granted", "paid"):
            app.compute_grants()
            library = app.library(LIBRARY)
            self.values["@grant"] = {  # type: ignore[assignment]
                "amount_cents": 14_000, "reason": "corrected", "corrects_event_id": library["grant"]["event_id"],
            }
        if stage == "paid":
            app.pay_batch(paid_on=date(2022, 12, 1))

    def _prepare_ledger(self, stage: str) -> None:
        pass

    def request(self, cell: Cell, caller: str) -> int:
        path = cell.path
        for placeholder, value in self.values.items():
            if isinstance(value, str):
                path = path.replace(placeholder, value)
        body = self.values.get(cell.body, cell.body) if isinstance(cell.body, str) else cell.body
        headers = headers_for(self.settings, caller)
        kwargs: dict[str, Any] = {"headers": headers}
        if cell.content_type:
            kwargs["data"] = body
            kwargs["content_type"] = cell.content_type
        elif body is not None:
            kwargs["json"] = body
        response = self.client.open(path, method=cell.method, **kwargs)
        return response.status_code


_worlds: dict[tuple[str, str], World] = {}


@pytest.fixture
def world_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Cell, str], World]:
    def make(cell: Cell, caller: str) -> World:
        # A cell that may change state gets a store of its own; refusals and reads share one per stage.
        if cell.expected(caller) == "2xx" and cell.method != "GET":
            return World(tmp_path_factory.mktemp("cell"), cell.service, cell.world)
        key = (cell.service, cell.world)
        if key not in _worlds:
            _worlds[key] = World(tmp_path_factory.mktemp(f"{cell.service}-{cell.world}"), cell.service, cell.world)
        return _worlds[key]

    return make


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: f"{c.service} {c.method} {c.path}")
def test_each_caller_gets_exactly_the_answer_its_role_allows(
    cell: Cell, world_factory: Callable[[Cell, str], World]
) -> None:
    wrong = {}
    for caller in CALLERS:
        status = world_factory(cell, caller).request(cell, caller)
        expected = cell.expected(caller)
        got = "2xx" if 200 <= status < 300 else str(status)
        if got != expected:
            wrong[caller] = f"expected {expected}, got {status}"
    assert not wrong, wrong


def test_the_matrix_covers_every_route_of_every_service(tmp_path: Path) -> None:
    settings = load_settings({"IDO_DATA_DIR": str(tmp_path / "d"), "IDO_KEYS_DIR": str(tmp_path / "k")})
    init_token_files(settings)
    covered = {(c.service, c.method, _shape(c.path)) for c in CELLS}
    missing = []
    for service in ("payments", "bridge", "ledger"):
        app = service_definition(service).create_http_app(settings)
        for rule in app.url_map.iter_rules():
            if rule.endpoint == "static" or rule.endpoint in NOT_IN_MATRIX:
                continue
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):  # type: ignore[operator]
                if (service, method, _shape(rule.rule)) not in covered:
                    missing.append(f"{service} {method} {rule.rule}")
    assert not missing, missing


def _shape(path: str) -> str:
    """A path with every variable part folded, so a route and a concrete URL compare equal."""
    import re

    path = path.split("?")[0]
    path = re.sub(r"<[^>]+>", "*", path)
    path = re.sub(r"GM\d{4}|NL-KVK-\d+|@expenditure|\b\d{4}\b", "*", path)
    # a download's table and file format are route variables on the dashboard, literals in the API
    return re.sub(r"/(balances|journal|sisa|\*)\.(csv|xlsx|\*)$", "/*.*", path)




def test_the_auditor_reads_only() -> None:
    """Issue 16: no write of any service is the auditor's (closing a year is the ministry's, the
    final declaration the municipality's own); each such cell above then checks the 403."""
    writes = [c for c in CELLS if c.method not in ("GET", "HEAD") and not c.public]
    assert writes and not [f"{c.service} {c.method} {c.path}" for c in writes if "auditor" in c.allowed]
