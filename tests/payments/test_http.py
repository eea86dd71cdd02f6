"""The payments API through Flask's test client, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from contracts import validate_envelope
from services.common.config import Settings
from services.common.definition import service_definition
from services.common.eventstore import build_application
from services.common.idempotency import EXTENSION_KEY, Claim, request_fingerprint, request_keys
from services.payments.application.app import PaymentsApplication
from services.payments.demo import ANNEX_DEMO_FILE, DEMO_FRAME_CENTS
from services.payments.entrypoints.definition import DEFINITION, create_app
from tests.support.tokens import TokenFactory

FRAME = 1_713_000_000
ANNEX = (
    b"# illustrative amounts, not the real annex\n"
    b"GM0363,Amsterdam,725000.00\n"
    b"GM0599,Rotterdam,540000.00\n"
    b"GM0518,'s-Gravenhage,460000.00\n"
)


class Api:
    def __init__(self, client: FlaskClient, tokens: TokenFactory):
        self.client = client
        self.tokens = tokens
        self.ministry = tokens.headers("ministry")

    def get(self, url: str, role: str = "ministry", code: str | None = None) -> Any:
        return self.client.get(url, headers=self.tokens.headers(role, code))

    def post(self, url: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(url, json=body, headers=headers if headers is not None else self.ministry)

    def put(self, url: str, body: Any) -> Any:
        return self.client.put(url, json=body, headers=self.ministry)

    def annex(self, year: int, data: bytes, awarded_on: str = "2024-01-15", content_type: str = "text/csv") -> Any:
        return self.client.post(
            f"/v1/years/{year}/annex?awarded_on={awarded_on}", data=data, headers=self.ministry,
            content_type=content_type,
        )

    def frame(self, year: int = 2024, cents: int = FRAME) -> Any:
        return self.put(f"/v1/years/{year}/frame", {"frame_cents": cents, "decided_on": f"{year - 1}-12-01"})

    def count_events(self) -> int:
        app: PaymentsApplication = self.client.application.extensions["payments.application"]
        return app.recorder.max_notification_id() or 0


@pytest.fixture
def payments(settings: Settings) -> Iterator[PaymentsApplication]:
    app = build_application(PaymentsApplication, settings.eventsourcing_env("payments"))
    yield app
    app.close()


@pytest.fixture
def api(settings: Settings, tokens: TokenFactory, payments: PaymentsApplication) -> Api:
    return Api(create_app(settings, payments).test_client(), tokens)


def assert_error(response: Any, status: int, field: str | None = None, words: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    body: dict[str, Any] = response.get_json()
    assert body["code"] == status and body["message"]
    if field is not None:
        assert field in body["errors"], body
    if words is not None:
        assert words in body["message"] + " ".join(r for rs in body["errors"].values() for r in rs), body
    return body


# --- frame and awards -----------------------------------------------------------------------------


def test_frame_is_set_once_and_amended_explicitly(api: Api) -> None:
    assert api.frame().status_code == 201
    assert api.frame().status_code == 200  # the same decision again
    assert_error(api.frame(cents=FRAME + 1), 409, "frame_cents", "amendment")
    amended = api.post("/v1/years/2024/frame/amendments",
                       {"frame_cents": FRAME - 100, "decided_on": "2024-02-01", "reason": "cut"})
    assert amended.status_code == 201 and amended.get_json()["frame_cents"] == FRAME - 100
    body = api.get("/v1/years/2024/frame", "auditor").get_json()
    assert [e["event_type"] for e in body["events"]] == ["GrantFrameSet", "GrantFrameAmended"]
    assert_error(api.post("/v1/years/2024/frame/amendments", {"frame_cents": 5, "decided_on": "2024-02-01"}),
                 422, "reason")


def test_award_one_grant_within_the_frame(api: Api) -> None:
    assert_error(api.post("/v1/years/2024/grants", {"municipality_code": "GM0363", "municipality_name": "Amsterdam",
                                                     "amount_cents": 100, "awarded_on": "2024-01-15"}), 404)
    api.frame(cents=1000)
    award = {"municipality_code": "GM0363", "municipality_name": "Amsterdam", "amount_cents": 700,
             "awarded_on": "2024-01-15"}
    created = api.post("/v1/years/2024/grants", award)
    assert created.status_code == 201
    assert created.get_json()["grant_id"] == "grant-2024-GM0363" and created.get_json()["status"] == "awarded"
    assert api.post("/v1/years/2024/grants", award).status_code == 200
    assert_error(api.post("/v1/years/2024/grants", {**award, "amount_cents": 701}), 409, "municipality_code")
    before = api.count_events()
    assert_error(api.post("/v1/years/2024/grants", {**award, "municipality_code": "GM0599", "amount_cents": 301}),
                 422, "amount_cents", "over the frame")
    assert api.count_events() == before
    assert_error(api.get("/v1/years/2024/grants/GM0599"), 404)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount_cents": 12.5}, "amount_cents"),
        ({"amount_cents": "700"}, "amount_cents"),
        ({"amount_cents": 0}, "amount_cents"),
        ({"municipality_code": "AMS"}, "municipality_code"),
        ({"awarded_on": "15-01-2024"}, "awarded_on"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_award_input_names_the_field(api: Api, change: dict[str, Any], field: str) -> None:
    api.frame()
    award = {"municipality_code": "GM0363", "municipality_name": "Amsterdam", "amount_cents": 700,
             "awarded_on": "2024-01-15", **change}
    assert_error(api.post("/v1/years/2024/grants", award), 422, field)
    assert api.count_events() == 1


def test_year_outside_the_grant_is_refused(api: Api) -> None:
    assert_error(api.frame(year=2022), 422, "year", "2023")


# --- the annex ------------------------------------------------------------------------------------


def test_annex_import_is_atomic_and_idempotent(api: Api) -> None:
    api.frame()
    first = api.annex(2024, ANNEX)
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["awarded"] == ["grant-2024-GM0363", "grant-2024-GM0599", "grant-2024-GM0518"]
    assert first.get_json()["allocated_cents"] == 172_500_000
    events = api.count_events()
    again = api.annex(2024, ANNEX)
    assert again.status_code == 200 and again.get_json()["awarded"] == [] and len(again.get_json()["unchanged"]) == 3
    assert api.count_events() == events
    listed = api.get("/v1/years/2024/grants").get_json()
    assert listed["count"] == 3
    assert {g["municipality_code"]: g["amount_cents"] for g in listed["grants"]} == {
        "GM0363": 72_500_000, "GM0599": 54_000_000, "GM0518": 46_000_000}
    assert api.get("/v1/years/2024/frame").get_json()["awarded_cents"] == 172_500_000


def test_annex_with_bad_rows_is_refused_whole_with_every_row_named(api: Api) -> None:
    api.frame()
    bad = ANNEX + b"GM0344,Utrecht,310000.001\nGM14,Groningen,1.00\nGM0772,,1.00\nGM0363,Amsterdam,1.00\n"
    events = api.count_events()
    body = assert_error(api.annex(2024, bad), 422)
    assert [(r["line"], r["field"]) for r in body["rows"]] == [(5, "amount"), (6, "cbs_code"), (7, "name"),
                                                               (8, "cbs_code")]
    assert "two decimals" in body["rows"][0]["reason"]
    assert "line 5.amount" in body["errors"]
    assert api.count_events() == events
    assert api.get("/v1/years/2024/grants").get_json()["count"] == 0


def test_a_dutch_annex_with_semicolons_and_euro_amounts_is_awarded_to_the_cent(api: Api) -> None:
    api.frame()
    dutch = (
        "\ufeffgemeentecode;gemeente;bedrag\n"  # Excel's UTF-8 export: a byte order mark, `;` between cells
        "GM0363;Amsterdam;€ 725.000,00\n"
        "GM0599;Rotterdam, stad;540.000,5\n"
        "GM0518;'s-Gravenhage;460000\n"
    ).encode()
    first = api.annex(2024, dutch)
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["allocated_cents"] == 172_500_050
    listed = api.get("/v1/years/2024/grants").get_json()
    assert {g["municipality_code"]: g["amount_cents"] for g in listed["grants"]} == {
        "GM0363": 72_500_000, "GM0599": 54_000_050, "GM0518": 46_000_000}
    assert {g["municipality_name"] for g in listed["grants"]} >= {"Rotterdam, stad"}


def test_an_ambiguous_annex_amount_refuses_the_file_naming_the_line(api: Api) -> None:
    api.frame()
    events = api.count_events()
    bad = b"GM0363;Amsterdam;725.000,00\nGM0599;Rotterdam;540.000\nGM0518;Den Haag;4.60.000,00\n"
    body = assert_error(api.annex(2024, bad), 422, "line 2.amount", "ambiguous")
    assert [(r["line"], r["field"]) for r in body["rows"]] == [(2, "amount"), (3, "amount")]
    assert "'540.000'" in body["rows"][0]["reason"] and "misplaced" in body["rows"][1]["reason"]
    assert api.count_events() == events
    assert api.get("/v1/years/2024/grants").get_json()["count"] == 0


def test_annex_that_breaks_the_frame_is_refused_whole(api: Api) -> None:
    api.frame(cents=172_499_999)
    body = assert_error(api.annex(2024, ANNEX), 422, "_file", "over the frame")
    assert body["rows"] == []
    assert api.get("/v1/years/2024/grants").get_json()["count"] == 0


def test_annex_must_be_csv(api: Api) -> None:
    api.frame()
    assert_error(api.annex(2024, ANNEX, content_type="application/json"), 415, "Content-Type")
    assert_error(api.annex(2024, b"# only a comment\n"), 422, "_file")
    assert_error(api.client.post("/v1/years/2024/annex", data=ANNEX, headers=api.ministry,
                                 content_type="text/csv"), 422, "awarded_on")


# --- the life of a grant --------------------------------------------------------------------------


def test_grant_from_award_to_reclaim_received(api: Api) -> None:
    api.frame()
    api.annex(2024, ANNEX)
    base = "/v1/years/2024/grants/GM0363"
    assert api.post(f"{base}/advances", {"amount_cents": 72_500_000, "paid_on": "2024-01-31"}).status_code == 201
    assert_error(api.post(f"{base}/advances", {"amount_cents": 1, "paid_on": "2024-02-01"}), 422, "amount_cents",
                 "exceed the award")
    assert_error(api.post(f"{base}/reclaims", {"amount_cents": 1, "issued_on": "2025-09-02"}), 409, None,
                 "not settled")
    settled = api.post(f"{base}/settlements", {"reported_spending_cents": 70_000_000, "settled_on": "2025-09-01"})
    assert settled.status_code == 201
    settlement_id = settled.get_json()["settlement_event_id"]
    assert settled.get_json()["reclaim_due_cents"] == 2_500_000
    assert_error(api.post(f"{base}/settlements", {"reported_spending_cents": 1, "settled_on": "2025-09-02"}),
                 409, "corrects_event_id")
    corrected = api.post(f"{base}/settlements", {"reported_spending_cents": 69_000_000, "settled_on": "2025-09-03",
                                                "corrects_event_id": settlement_id, "reason": "SiSa corrected"})
    assert corrected.status_code == 201 and corrected.get_json()["reclaim_due_cents"] == 3_500_000
    assert_error(api.post(f"{base}/settlements", {"reported_spending_cents": 1, "settled_on": "2025-09-04",
                                                 "corrects_event_id": settlement_id, "reason": "stale"}),
                 409, "corrects_event_id", "latest")
    assert_error(api.post(f"{base}/reclaims", {"amount_cents": 2_500_000, "issued_on": "2025-09-05"}),
                 422, "amount_cents", "€ 35000.00")
    assert api.post(f"{base}/reclaims", {"amount_cents": 3_500_000, "issued_on": "2025-09-05"}).status_code == 201
    assert_error(api.post(f"{base}/reclaims/receipts", {"amount_cents": 3_500_001, "received_on": "2025-10-01"}),
                 422, "amount_cents")
    done = api.post(f"{base}/reclaims/receipts", {"amount_cents": 3_500_000, "received_on": "2025-10-01"})
    assert done.status_code == 201 and done.get_json()["status"] == "closed"

    detail = api.get(base, "auditor").get_json()
    assert [e["event_type"] for e in detail["events"]] == [
        "GrantAwarded", "AdvancePaid", "GrantSettled", "GrantSettled", "ReclaimIssued", "ReclaimReceived"]
    assert detail["events"][3]["payload"]["corrects_event_id"] == settlement_id == detail["events"][2]["event_id"]
    for envelope in detail["events"]:
        validate_envelope(envelope)
    assert detail["paid_cents"] == 72_500_000 and detail["reclaim_received_cents"] == 3_500_000


def test_unknown_grant_is_404_and_bad_code_is_422(api: Api) -> None:
    api.frame()
    assert_error(api.get("/v1/years/2024/grants/GM0001"), 404)
    assert_error(api.post("/v1/years/2024/grants/GM0001/advances", {"amount_cents": 1, "paid_on": "2024-01-31"}),
                 404)
    assert_error(api.get("/v1/years/2024/grants/AMSTERDAM"), 422, "municipality_code")
    assert_error(api.get("/v1/years/2031/grants"), 404)


def test_merger_keeps_the_grant_readable_under_both_codes(api: Api) -> None:
    api.frame()
    api.post("/v1/years/2024/grants", {"municipality_code": "GM0457", "municipality_name": "Weesp",
                                       "amount_cents": 1000, "awarded_on": "2024-01-15"})
    merged = api.post("/v1/municipalities/GM0457/merger", {"successor_code": "GM0363", "effective_on": "2024-03-24"})
    assert merged.status_code == 200 and merged.get_json()["transferred"] == ["grant-2024-GM0457"]
    by_old = api.get("/v1/years/2024/grants/GM0457").get_json()
    by_new = api.get("/v1/years/2024/grants/GM0363").get_json()
    assert by_old["grant_id"] == by_new["grant_id"] == "grant-2024-GM0457"
    assert by_new["municipality_codes"] == ["GM0457", "GM0363"]
    assert by_new["events"][-1]["event_type"] == "GrantTransferred"
    listed = api.get("/v1/years/2024/grants?municipality_code=GM0457").get_json()
    assert [g["grant_id"] for g in listed["grants"]] == ["grant-2024-GM0457"]
    # the successor's token reads it, and so does the predecessor's (its own history)
    assert api.get("/v1/years/2024/grants/GM0457", "municipality", "GM0363").status_code == 200
    assert api.get("/v1/years/2024/grants/GM0457", "municipality", "GM0457").status_code == 200
    assert_error(api.get("/v1/years/2024/grants/GM0457", "municipality", "GM0599"), 403)
    assert_error(api.post("/v1/municipalities/GM0457/merger", {"successor_code": "GM0457",
                                                               "effective_on": "2024-03-24"}), 422, "successor_code")


def test_a_municipality_that_merged_is_not_awarded_a_grant(api: Api) -> None:
    """A merged code no longer receives money: an award to it would sit with a municipality that is gone
    (no merger passes it on). Refused by the single route and by the annex, naming the successor; nothing stored."""
    api.frame(2023)
    api.frame(2024)
    api.post("/v1/years/2023/grants", {"municipality_code": "GM0457", "municipality_name": "Weesp",
                                       "amount_cents": 1000, "awarded_on": "2023-01-15"})
    assert api.post("/v1/municipalities/GM0457/merger",
                    {"successor_code": "GM0363", "effective_on": "2025-01-01"}).status_code == 200
    before = api.count_events()
    award = {"municipality_code": "GM0457", "municipality_name": "Weesp", "amount_cents": 1000,
             "awarded_on": "2024-02-01"}
    single = assert_error(api.post("/v1/years/2024/grants", award), 409, "municipality_code", "GM0363")
    assert "2025-01-01" in single["errors"]["municipality_code"][0]
    annex = api.annex(2024, b"GM0363,Amsterdam,725000.00\nGM0457,Weesp,1000.00\n", awarded_on="2024-02-01")
    assert annex.status_code == 422, annex.get_json()
    assert [(r["line"], r["field"]) for r in annex.get_json()["rows"]] == [(2, "cbs_code")]
    assert "GM0363" in annex.get_json()["rows"][0]["reason"]
    assert api.count_events() == before
    assert_error(api.get("/v1/years/2024/grants/GM0457"), 404)


def test_a_merger_of_a_municipality_whose_grants_are_all_closed_is_409_and_stores_nothing(api: Api) -> None:
    """Its grants would all stay with it, so nothing would record the merger: refused, naming the closed grant."""
    api.frame()
    api.post("/v1/years/2024/grants", {"municipality_code": "GM0457", "municipality_name": "Weesp",
                                       "amount_cents": 1000, "awarded_on": "2024-01-15"})
    paid = api.post("/v1/years/2024/grants/GM0457/advances", {"amount_cents": 1000, "paid_on": "2024-01-31"},
                    headers={**api.ministry, "Idempotency-Key": "advance-1"})
    assert paid.status_code == 201, paid.get_json()
    settled = api.post("/v1/years/2024/grants/GM0457/settlements",
                       {"reported_spending_cents": 1000, "settled_on": "2025-06-01"})
    assert settled.status_code == 201 and settled.get_json()["status"] == "closed", settled.get_json()
    before = api.count_events()
    body = assert_error(api.post("/v1/municipalities/GM0457/merger",
                                 {"successor_code": "GM0363", "effective_on": "2025-01-01"}),
                        409, "predecessor_code", "grant-2024-GM0457")
    assert "closed" in body["errors"]["predecessor_code"][0]
    assert api.count_events() == before


# --- authentication and roles ---------------------------------------------------------------------


def test_reads_need_a_token_and_the_right_role(api: Api) -> None:
    api.frame()
    api.annex(2024, ANNEX)
    assert_error(api.client.get("/v1/years/2024/grants"), 401, "Authorization")
    assert_error(api.client.get("/v1/years/2024/grants", headers={"Authorization": "Bearer nonsense"}), 401)
    for role in ("ministry", "auditor", "finance"):
        assert api.get("/v1/years/2024/grants", role).get_json()["count"] == 3
    assert_error(api.get("/v1/years/2024/grants", "kb"), 403)
    assert_error(api.get("/v1/years/2024/grants/GM0363", "kb"), 403)
    own = api.get("/v1/years/2024/grants", "municipality", "GM0599").get_json()
    assert [g["municipality_code"] for g in own["grants"]] == ["GM0599"]
    assert api.get("/v1/years/2024/grants/GM0599", "municipality", "GM0599").status_code == 200
    assert_error(api.get("/v1/years/2024/grants/GM0363", "municipality", "GM0599"), 403)
    assert_error(api.get("/v1/years/2024/frame", "municipality", "GM0599"), 403)


@pytest.mark.parametrize("role", ["auditor", "finance", "kb", "municipality"])
def test_writes_are_for_the_ministry_only(api: Api, role: str) -> None:
    api.frame()
    api.annex(2024, ANNEX)
    headers = api.tokens.headers(role, "GM0363" if role == "municipality" else None)
    events = api.count_events()
    assert_error(api.post("/v1/years/2024/grants/GM0363/advances", {"amount_cents": 1, "paid_on": "2024-01-31"},
                          headers), 403)
    # the role is checked before the body: even an invalid body is 403, not 422
    assert_error(api.post("/v1/years/2024/grants", {"nonsense": True}, headers), 403)
    assert_error(api.client.post("/v1/years/2024/annex?awarded_on=2024-01-15", data=ANNEX, headers=headers,
                                 content_type="text/csv"), 403)
    assert_error(api.post("/v1/years/2024/grants/GM0363/advances", {"amount_cents": 1, "paid_on": "2024-01-31"},
                          {}), 401)
    assert api.count_events() == events


# --- OpenAPI, definition, demo data ---------------------------------------------------------------


def test_openapi_documents_every_endpoint_with_its_errors(api: Api) -> None:
    spec = api.client.get("/openapi.json").get_json()
    paths = spec["paths"]
    expected = {
        ("/v1/years/{year}/frame", "put"), ("/v1/years/{year}/frame", "get"),
        ("/v1/years/{year}/frame/amendments", "post"), ("/v1/years/{year}/grants", "post"),
        ("/v1/years/{year}/grants", "get"), ("/v1/years/{year}/annex", "post"),
        ("/v1/years/{year}/grants/{code}", "get"), ("/v1/years/{year}/grants/{code}/advances", "post"),
        ("/v1/years/{year}/grants/{code}/settlements", "post"), ("/v1/years/{year}/grants/{code}/reclaims", "post"),
        ("/v1/years/{year}/grants/{code}/reclaims/receipts", "post"), ("/v1/municipalities/{code}/merger", "post"),
    }
    documented = {(path, method) for path, ops in paths.items() for method in ops if method != "parameters"}
    assert expected <= documented
    for path, method in expected:
        responses = paths[path][method]["responses"]
        assert {"401", "403"} <= set(responses), (path, method)
    assert "text/csv" in paths["/v1/years/{year}/annex"]["post"]["requestBody"]["content"]
    settlement = paths["/v1/years/{year}/grants/{code}/settlements"]["post"]
    assert "requestBody" in settlement and {"404", "409", "422"} <= set(settlement["responses"])


def test_definition_and_demo_data(settings: Settings, tokens: TokenFactory, payments: PaymentsApplication) -> None:
    assert service_definition("payments") is DEFINITION
    assert DEFINITION.topic.name == "ido.grants.v1" and DEFINITION.application_class is PaymentsApplication
    assert ANNEX_DEMO_FILE.read_text().startswith("# illustrative amounts")
    assert DEFINITION.load_demo_data is not None
    DEFINITION.load_demo_data(settings, payments)
    events = payments.recorder.max_notification_id()
    DEFINITION.load_demo_data(settings, payments)  # a second start changes nothing
    assert payments.recorder.max_notification_id() == events
    client = DEFINITION.create_http_app(settings, payments).test_client()
    for year in (2024, 2025):
        frame = client.get(f"/v1/years/{year}/frame", headers=tokens.headers("finance")).get_json()
        assert frame["frame_cents"] == DEMO_FRAME_CENTS
        grants = client.get(f"/v1/years/{year}/grants", headers=tokens.headers("finance")).get_json()["grants"]
        assert {g["municipality_code"] for g in grants} == {
            "GM0363", "GM0599", "GM0518", "GM0344", "GM0014", "GM0772"}
        assert all(g["paid_cents"] == g["amount_cents"] and g["status"] == "advanced" for g in grants)
        assert frame["awarded_cents"] == sum(g["amount_cents"] for g in grants) <= DEMO_FRAME_CENTS


def test_events_survive_a_restart(settings: Settings, tokens: TokenFactory) -> None:
    """A fresh application on the same store sees the same grant (nothing lives only in memory)."""
    first = build_application(PaymentsApplication, settings.eventsourcing_env("payments"))
    first.set_frame(2024, FRAME, date(2023, 12, 1))
    first.import_annex(2024, ANNEX, date(2024, 1, 15))
    first.close()
    second = build_application(PaymentsApplication, settings.eventsourcing_env("payments"))
    try:
        client = create_app(settings, second).test_client()
        body = client.get("/v1/years/2024/grants/GM0518", headers=tokens.headers("ministry")).get_json()
        assert body["municipality_name"] == "'s-Gravenhage" and body["amount_cents"] == 46_000_000
    finally:
        second.close()


# --- Idempotency-Key on the payments that have no natural key -------------------------------------


def test_a_retried_advance_with_its_key_pays_once(api: Api) -> None:
    api.frame()
    api.annex(2024, ANNEX)
    url = "/v1/years/2024/grants/GM0363/advances"
    body = {"amount_cents": 10_000_000, "paid_on": "2024-01-31"}
    keyed = {**api.ministry, "Idempotency-Key": "advance-2024-01"}
    first = api.post(url, body, keyed)
    assert first.status_code == 201, first.get_json()
    events = api.count_events()
    again = api.post(url, body, keyed)
    assert (again.status_code, again.get_json()) == (201, first.get_json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert api.count_events() == events
    assert api.get("/v1/years/2024/grants/GM0363").get_json()["paid_cents"] == 10_000_000

    assert_error(api.post(url, {**body, "amount_cents": 1}, keyed), 409, "Idempotency-Key", "another request")
    assert_error(api.post(url, {**body, "amount_cents": 99_000_000_000}, {**keyed, "Idempotency-Key": "k2"}),
                 422, "amount_cents")  # refused: the key is free again
    assert api.post(url, {**body, "amount_cents": 1}, {**keyed, "Idempotency-Key": "k2"}).status_code == 201
    assert_error(api.post(url, body, {**keyed, "Idempotency-Key": "k" * 201}), 422, "Idempotency-Key")
    assert_error(api.post(url, body, {**keyed, "Idempotency-Key": "bad\x01key"}), 422, "Idempotency-Key")
    assert api.get("/v1/years/2024/grants/GM0363").get_json()["paid_cents"] == 10_000_001
    # a key names one request: the same key on another endpoint is refused too
    receipts = "/v1/years/2024/grants/GM0363/reclaims/receipts"
    assert_error(api.post(receipts, {"amount_cents": 1, "received_on": "2025-10-01"}, keyed), 409, "Idempotency-Key")


def test_a_key_whose_outcome_is_unknown_is_never_run_again(api: Api, settings: Settings) -> None:
    api.frame()
    api.annex(2024, ANNEX)
    url = "/v1/years/2024/grants/GM0363/advances"
    body = {"amount_cents": 1, "paid_on": "2024-01-31"}
    keys = api.client.application.extensions[EXTENSION_KEY]
    with api.client.application.test_request_context(url, method="POST", json=body):
        fingerprint = request_fingerprint()
    assert isinstance(keys.claim("ministry:ministry", "lost", fingerprint), Claim)
    with keys.engine.begin() as connection:  # as a crash leaves it: claimed long ago, no answer
        connection.execute(request_keys.update().values(created_at=datetime.now(UTC) - timedelta(minutes=5)))
    response = api.post(url, body, {**api.ministry, "Idempotency-Key": "lost"})
    assert_error(response, 409, "Idempotency-Key", "outcome")
    assert api.get("/v1/years/2024/grants/GM0363").get_json()["paid_cents"] == 0
