"""Bad input is refused with a field-level message, and nothing is stored.

Bodies over 1 MiB (413); amounts as floats, strings, booleans, null, negative, zero or above
10^12 cents; unknown categories; dates outside the grant year (or the grant's years); unknown or
malformed municipality codes; malformed CSV imports (ledger expenditures, payments annex). Each
case checks the status, that ``errors`` names the field at fault, and that the service's event
store did not change. The three services run in-process on SQLite stores prepared once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from services.common.definition import service_definition
from services.common.eventstore import build_application
from services.payments.demo import ANNEX_DEMO_FILE
from tests.resilience.figures import Figures
from tests.resilience.support import StackEnv

A = "GM0363"
LIBRARY = "NL-KVK-10000001"
MIB = 1024 * 1024
EXP = {
    "grant_year": 2024, "category": "promotion", "amount_cents": 1000, "booked_on": "2024-03-01",
    "counterparty": {"id": "PRINT-1", "name": "Printer"}, "description": "flyers", "reference": "R1",
}
CSV_HEADER = "grant_year,category,amount_cents,booked_on,counterparty_id,counterparty_name,description,reference\n"
CSV_GOOD_ROW = "2024,promotion,3000,2024-05-01,PRINT-1,Printer,posters,R2\n"


class Worlds:
    """The three services on SQLite stores: payments with the 2024 frame and annex, the bridge with
    its frame and one granted library, the ledger empty."""

    def __init__(self, tmp: Path):
        self.stack = StackEnv(tmp, None, None)
        settings = self.stack.settings()
        self.apps: dict[str, Any] = {}
        self.clients: dict[str, FlaskClient] = {}
        for service in ("payments", "bridge", "ledger"):
            definition = service_definition(service)
            self.apps[service] = build_application(definition.application_class, settings.eventsourcing_env(service))
            self.clients[service] = definition.create_http_app(settings, self.apps[service]).test_client()
        payments = self.apps["payments"]
        payments.set_frame(2024, 1_713_000_000, date(2023, 12, 1))
        payments.import_annex(2024, ANNEX_DEMO_FILE.read_bytes(), date(2024, 1, 15))
        bridge = self.apps["bridge"]
        bridge.set_frame()
        bridge.register_libraries(
            [{"library_id": LIBRARY, "name": "OBA", "service_area": [{"municipality_code": A, "inhabitants": 1000}]}]
        )
        bridge.compute_grants()
        self.headers = {
            "payments": self.stack.headers("ministry"),
            "bridge": self.stack.headers("kb"),
            "ledger": self.stack.headers("municipality", A),
        }

    def head(self, service: str) -> int:
        return int(self.apps[service].recorder.max_notification_id() or 0)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Worlds:
    return Worlds(tmp_path_factory.mktemp("bad-input"))


@dataclass(frozen=True)
class Bad:
    kind: str
    service: str
    method: str
    path: str
    field: str
    """The key ``errors`` must hold (a prefix for ``line n`` keys)."""
    json: Any = None
    raw: bytes | None = None
    content_type: str | None = None
    status: int = 422

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.service} {self.method} {self.path} {self.field}"


def _amounts() -> list[tuple[str, Any]]:
    return [
        ("float", 10.5), ("float-whole", 10.0), ("string", "1000"), ("string-euros", "10,50"), ("negative", -1),
        ("zero", 0), ("above 10^12", 10**12 + 1), ("boolean", True), ("null", None), ("huge", 10**30),
    ]


def _cases() -> list[Bad]:
    cases: list[Bad] = []
    for name, value in _amounts():
        kind = f"amount {name}"
        cases += [
            Bad(kind, "ledger", "POST", f"/v1/municipalities/{A}/expenditures", "amount_cents",
                {**EXP, "amount_cents": value}),
            Bad(kind, "payments", "POST", "/v1/years/2024/grants", "amount_cents",
                {"municipality_code": "GM1948", "municipality_name": "Meierijstad", "amount_cents": value,
                 "awarded_on": "2024-02-01"}),
            Bad(kind, "payments", "POST", f"/v1/years/2024/grants/{A}/advances", "amount_cents",
                {"amount_cents": value, "paid_on": "2024-01-31"}),
            Bad(kind, "bridge", "POST", f"/bridge/libraries/{LIBRARY}/payments", "amount_cents",
                {"amount_cents": value, "paid_on": "2022-12-01"}),
        ]
    for category in ("travel", "", "Promotion", None, 5, "library_funding; DROP TABLE x"):
        cases.append(Bad("unknown category", "ledger", "POST", f"/v1/municipalities/{A}/expenditures", "category",
                         {**EXP, "category": category}))
    for booked_on in ("2023-12-31", "2025-01-01", "2024-02-30", "01-03-2024", "", "2024-03-01T10:00:00"):
        cases.append(Bad("date outside the grant year", "ledger", "POST", f"/v1/municipalities/{A}/expenditures",
                         "booked_on", {**EXP, "booked_on": booked_on}))
    for year in (2018, 2101, "2024", 2024.0):
        cases.append(Bad("date outside the grant year", "ledger", "POST", f"/v1/municipalities/{A}/expenditures",
                         "grant_year", {**EXP, "grant_year": year}))
    for year in (2019, 2022, 2101):
        cases.append(Bad("date outside the grant year", "payments", "POST", f"/v1/years/{year}/grants/{A}/advances",
                         "year", {"amount_cents": 5, "paid_on": "2024-01-31"}))
    cases += [
        Bad("date outside the grant year", "payments", "POST", "/v1/years/2024/grants", "awarded_on",
            {"municipality_code": "GM1948", "municipality_name": "M", "amount_cents": 5, "awarded_on": "2024-13-01"}),
        Bad("date outside the grant year", "bridge", "POST", f"/bridge/libraries/{LIBRARY}/payments", "paid_on",
            {"amount_cents": 5, "paid_on": "2999-01-01"}),
        Bad("date outside the grant year", "ledger", "POST",
            f"/v1/municipalities/{A}/expenditures/00000000-0000-0000-0000-000000000000/reversal", "booked_on",
            {"reason": "x", "booked_on": "2024-02-31"}),
    ]
    for code in ("XX0363", "GM03630", "gm0363", "GM036", "GM0363%00"):
        cases.append(Bad("unknown municipality", "ledger", "POST", f"/v1/municipalities/{code}/expenditures",
                         "municipality_code", EXP))
    cases += [
        Bad("unknown municipality", "payments", "POST", "/v1/years/2024/grants/GM9999/advances", "municipality_code",
            {"amount_cents": 5, "paid_on": "2024-01-31"}, status=404),
        Bad("unknown municipality", "payments", "POST", "/v1/years/2024/grants/GM99/advances", "municipality_code",
            {"amount_cents": 5, "paid_on": "2024-01-31"}),
        Bad("unknown municipality", "payments", "POST", "/v1/years/2024/grants", "municipality_code",
            {"municipality_code": "GM19480", "municipality_name": "M", "amount_cents": 5, "awarded_on": "2024-02-01"}),
        Bad("unknown municipality", "payments", "POST", "/v1/municipalities/GM9999/merger", "predecessor_code",
            {"successor_code": "GM1948", "effective_on": "2024-06-01"}, status=404),
        Bad("unknown municipality", "bridge", "POST", "/bridge/libraries", "service_area.0.municipality_code",
            {"library_id": "NL-KVK-10000009", "name": "B", "service_area": [{"municipality_code": "GM1",
                                                                             "inhabitants": 5}]}),
        Bad("unknown municipality", "bridge", "POST", "/bridge/libraries/NL-KVK-99999999/payments", "library_id",
            {"amount_cents": 5, "paid_on": "2022-12-01"}, status=404),
    ]
    ledger_csv = [
        ("not UTF-8", b"\xff\xfe" + CSV_HEADER.encode("utf-16-le"), "_body"),
        ("missing columns", b"grant_year,category\n2024,promotion\n", "line 1"),
        ("unknown column", (CSV_HEADER.strip() + ",iban\n" + CSV_GOOD_ROW.strip() + ",NL00\n").encode(), "line 1"),
        ("too few cells", (CSV_HEADER + "2024,promotion,3000\n").encode(), "line 2"),
        ("too many cells", (CSV_HEADER + CSV_GOOD_ROW.strip() + ",extra\n").encode(), "line 2"),
        ("float amount", (CSV_HEADER + "2024,promotion,12.50,2024-05-01,P,P,d,R\n").encode(), "line 2.amount_cents"),
        ("ambiguous euros", (CSV_HEADER.replace(",", ";").replace("amount_cents", "amount")
                             + "2024;promotion;1.250;2024-05-01;P;P;d;R\n").encode(), "line 2.amount"),
        ("negative amount", (CSV_HEADER + "2024,promotion,-5,2024-05-01,P,P,d,R\n").encode(), "line 2.amount_cents"),
        ("zero amount", (CSV_HEADER + "2024,promotion,0,2024-05-01,P,P,d,R\n").encode(), "line 2.amount_cents"),
        ("amount above 10^12", (CSV_HEADER + f"2024,promotion,{10**12 + 1},2024-05-01,P,P,d,R\n").encode(),
         "line 2.amount_cents"),
        ("unknown category", (CSV_HEADER + "2024,travel,5,2024-05-01,P,P,d,R\n").encode(), "line 2.category"),
        ("date outside year", (CSV_HEADER + "2024,promotion,5,2025-05-01,P,P,d,R\n").encode(), "line 2.booked_on"),
        ("bad date", (CSV_HEADER + "2024,promotion,5,1-5-2024,P,P,d,R\n").encode(), "line 2.booked_on"),
        ("unclosed quote", (CSV_HEADER + '2024,promotion,5,2024-05-01,P,"P,d,R\n').encode(), "line"),
        ("empty body", b"", "line 1"),
        ("header only", CSV_HEADER.encode(), "_body"),
        ("good row then bad row", (CSV_HEADER + CSV_GOOD_ROW + "2024,promotion,x,2024-05-01,P,P,d,R\n").encode(),
         "line 3.amount_cents"),
        ("empty description", (CSV_HEADER + "2024,promotion,5,2024-05-01,P,P,,R\n").encode(), "line 2.description"),
    ]
    for name, data, field in ledger_csv:
        cases.append(Bad(f"malformed CSV ({name})", "ledger", "POST", f"/v1/municipalities/{A}/expenditures:import",
                         field, raw=data, content_type="text/csv"))
    cases += [
        Bad("control character", "ledger", "POST", f"/v1/municipalities/{A}/expenditures", "description",
            {**EXP, "description": "flyers\x00"}),
        Bad("control character", "ledger", "POST", f"/v1/municipalities/{A}/expenditures", "counterparty.name",
            {**EXP, "counterparty": {"id": "P-1", "name": "Printer\x1b[31m"}}),
        Bad("control character", "ledger", "POST", f"/v1/municipalities/{A}/expenditures:import",
            "line 2.counterparty_name", raw=(CSV_HEADER + "2024,promotion,5,2024-05-01,P,P\x00,d,R\n").encode(),
            content_type="text/csv"),
        Bad("control character", "payments", "POST", "/v1/years/2024/grants", "municipality_name",
            {"municipality_code": "GM1948", "municipality_name": "Meierijstad\x00", "amount_cents": 5,
             "awarded_on": "2024-02-01"}),
        Bad("control character", "payments", "POST", "/v1/years/2024/frame/amendments", "reason",
            {"frame_cents": 1_800_000_000, "decided_on": "2024-06-01", "reason": "raised\x00"}),
        Bad("control character", "payments", "POST", "/v1/years/2024/annex?awarded_on=2024-01-16", "line 1.name",
            raw=b"GM1948,Meierij\x00stad,5.00\n", content_type="text/csv"),
        Bad("control character", "bridge", "POST", "/bridge/libraries", "name",
            {"library_id": "NL-KVK-10000009", "name": "Bieb\x00", "service_area": [{"municipality_code": A,
                                                                                  "inhabitants": 5}]}),
        Bad("control character", "bridge", "PUT", f"/bridge/libraries/{LIBRARY}/service-area", "reason",
            {"service_area": [{"municipality_code": A, "inhabitants": 5}], "reason": "grew\x07"}),
    ]
    annex = "/v1/years/2024/annex?awarded_on=2024-01-16"
    annex_csv = [
        ("not UTF-8", b"GM1948,Meierijstad,5.00\nGM1949,\xff\xfe,5.00\n", "line 2._row"),
        # "5,00" is a Dutch amount since issue 15; one comma before three digits is ambiguous
        ("ambiguous amount", b'GM1948,Meierijstad,"5,000"\n', "line 1.amount"),
        ("ambiguous amount, ; file", b"GM1948;Meierijstad;5.000\n", "line 1.amount"),
        ("misplaced thousands", b"GM1948;Meierijstad;5.00.000,00\n", "line 1.amount"),
        ("amount text", b"GM1948,Meierijstad,five\n", "line 1.amount"),
        ("negative amount", b"GM1948,Meierijstad,-5.00\n", "line 1.amount"),
        ("zero amount", b"GM1948,Meierijstad,0.00\n", "line 1.amount"),
        ("three decimals", b"GM1948,Meierijstad,5.001\n", "line 1.amount"),
        ("amount above 10^12 cents", b"GM1948,Meierijstad,10000000000.01\n", "line 1.amount"),
        ("bad code", b"GM19,Meierijstad,5.00\n", "line 1.cbs_code"),
        ("two cells", b"GM1948,5.00\n", "line 1._row"),
        ("code twice", b"GM1948,Meierijstad,5.00\nGM1948,Meierijstad,5.00\n", "line 2.cbs_code"),
        ("empty file", b"", "_file"),
        ("changes an award", b"GM0363,Amsterdam,1.00\n", "line 1.amount"),
        ("good row then bad row", b"GM1948,Meierijstad,5.00\nGM1949,X,abc\n", "line 2.amount"),
    ]
    for name, data, field in annex_csv:
        cases.append(Bad(f"malformed CSV ({name})", "payments", "POST", annex, field, raw=data,
                         content_type="text/csv"))
    big_json = {**EXP, "description": "x" * (MIB + 10)}
    cases += [
        Bad("body over 1 MiB", "ledger", "POST", f"/v1/municipalities/{A}/expenditures", "", big_json, status=413),
        Bad("body over 1 MiB", "ledger", "POST", f"/v1/municipalities/{A}/expenditures:import", "",
            raw=(CSV_HEADER + CSV_GOOD_ROW * (MIB // len(CSV_GOOD_ROW) + 1)).encode(), content_type="text/csv",
            status=413),
        Bad("body over 1 MiB", "payments", "POST", annex, "", raw=b"GM1948,M,5.00\n" * (MIB // 14 + 1),
            content_type="text/csv", status=413),
        Bad("body over 1 MiB", "payments", "POST", "/v1/years/2024/grants", "",
            {"municipality_code": "GM1948", "municipality_name": "M" * (MIB + 1), "amount_cents": 5,
             "awarded_on": "2024-02-01"}, status=413),
        Bad("body over 1 MiB", "bridge", "POST", "/bridge/libraries", "",
            {"library_id": "NL-KVK-10000009", "name": "B",
             "service_area": [{"municipality_code": A, "inhabitants": 5}] * 30000}, status=413),
    ]
    return cases


CASES = [pytest.param(case, id=case.id) for case in _cases()]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_with_the_field_named_and_nothing_stored(
    worlds: Worlds, case: Bad, figures: Figures
) -> None:
    client = worlds.clients[case.service]
    before = worlds.head(case.service)
    kwargs: dict[str, Any] = {"headers": worlds.headers[case.service]}
    if case.raw is not None:
        kwargs.update(data=case.raw, content_type=case.content_type)
    else:
        kwargs["json"] = case.json
    response = client.open(case.path, method=case.method, **kwargs)
    figures.add_inputs(case.kind.split(" (")[0], 1)
    body = response.get_json(silent=True)
    assert response.status_code == case.status, (response.status_code, body)
    assert isinstance(body, dict) and set(body) >= {"code", "status", "message", "errors"}, body
    assert body["code"] == case.status
    if case.field:
        assert any(key == case.field or key.startswith(case.field) for key in body["errors"]), body
        assert all(isinstance(reason, str) and reason for reasons in body["errors"].values() for reason in reasons)
    assert worlds.head(case.service) == before, "a refused request stored an event"


def test_a_body_over_the_limit_names_the_body_and_the_limit(worlds: Worlds) -> None:
    response = worlds.clients["ledger"].post(
        f"/v1/municipalities/{A}/expenditures", json={**EXP, "description": "x" * (MIB + 10)},
        headers=worlds.headers["ledger"],
    )
    assert response.status_code == 413
    assert "_body" in response.json["errors"], response.json
    assert str(MIB) in response.json["errors"]["_body"][0]


def test_the_good_requests_beside_the_bad_ones_still_pass(worlds: Worlds) -> None:
    """The refusals above are not an artefact of a broken world: the same requests, valid, are stored."""
    before = worlds.head("ledger")
    posted = worlds.clients["ledger"].post(
        f"/v1/municipalities/{A}/expenditures", json=EXP, headers=worlds.headers["ledger"]
    )
    assert posted.status_code == 201, posted.json
    imported = worlds.clients["ledger"].post(
        f"/v1/municipalities/{A}/expenditures:import", data=CSV_HEADER + CSV_GOOD_ROW, content_type="text/csv",
        headers=worlds.headers["ledger"],
    )
    assert imported.status_code == 201, imported.json
    assert worlds.head("ledger") == before + 2
    advance = worlds.clients["payments"].post(
        f"/v1/years/2024/grants/{A}/advances", json={"amount_cents": 5, "paid_on": "2024-01-31"},
        headers=worlds.headers["payments"],
    )
    assert advance.status_code == 201, advance.json
    paid = worlds.clients["bridge"].post(
        f"/bridge/libraries/{LIBRARY}/payments", json={"amount_cents": 5, "paid_on": "2022-12-01"},
        headers=worlds.headers["bridge"],
    )
    assert paid.status_code == 201, paid.json
