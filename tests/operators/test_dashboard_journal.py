"""A municipality's work on the dashboard without scripts (issue 18, Must show 2): its journal, paged and
filtered, each line with its event id; reversing a posting with a reason through a CSRF-protected form that
runs the API's own command and rules, answering with the event id and the balance after it."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from contracts.topics import EXPENDITURES
from services.ledger.adapters.http import dashboard
from services.ledger.entrypoints.projector import build_runner
from services.ledger.read_side import PointInTime
from tests.operators.conftest import World, build_world, project_until
from tests.operators.test_dashboard_access import sign_in
from tests.support.infra import KafkaInfo
from tests.support.kafka_topics import publish_all

CODE = "GM0363"
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

    # the projector runs beside the request, so the page can show the balance after the reversal
    stop, ready = threading.Event(), threading.Event()

    def pump() -> None:
        runner = build_runner(world.settings)
        try:
            while not stop.is_set():
                publish_all(world.settings, application, EXPENDITURES)
                runner.run_once(timeout_ms=200)
                ready.set()  # joined its group and caught up: from here it projects within a round
        finally:
            runner.close()

    projector = threading.Thread(target=pump, daemon=True)
    projector.start()
    try:
        assert ready.wait(timeout=60), "the projector did not start"
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


@pytest.mark.parametrize(("role", "code"), [("auditor", None), ("ministry", None), ("municipality", "GM0599")])
def test_only_the_municipality_itself_reverses(world: World, role: str, code: str | None) -> None:
    own = _client(world)
    link = REVERSE_LINK.findall(own.get(JOURNAL).get_data(as_text=True))[0]
    other = _client(world, role, code)
    journal = other.get(JOURNAL)
    assert journal.status_code == (403 if role == "municipality" else 200)
    assert REVERSE_LINK.findall(journal.get_data(as_text=True)) == []
    assert other.get(link).status_code == 403
    fields = dict(FORM_FIELD.findall(other.get("/dashboard/login").get_data(as_text=True)))
    fields["idempotency_key"] = "5d1f0c4e-2b1a-4c3d-8e9f-0a1b2c3d4e5f"
    stored = world.ledger.extensions["ledger"].application.recorder.max_notification_id()
    assert other.post(link, data={**fields, "reason": "not mine"}).status_code == 403
    assert world.ledger.extensions["ledger"].application.recorder.max_notification_id() == stored
