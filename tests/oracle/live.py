"""The three real services on fresh stores and topics, driven through their HTTP APIs with the oracle's
commands (issue 20, Must show 2).

``LiveStack`` starts payments, bridge and ledger as Flask test clients of their real app factories on
SQLite stores of their own, a topic prefix of their own on the test broker and the real projection runner
in a thread. ``send`` turns one oracle command into its HTTP request; ``sync`` relays every service's
outbox to Kafka and waits (on a condition, with a deadline) until the projector applied all of it, so the
ledger's write checks, which read the view, see everything before the next command. ``HttpFigures``
answers the figures ``tests.oracle.compare.differences`` compares, read through the ledger's HTTP API.
"""

from __future__ import annotations

import threading
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from flask.testing import FlaskClient
from kafka import KafkaAdminClient
from werkzeug.test import TestResponse

from contracts.topics import BRIDGE, EXPENDITURES, GRANTS, TopicSpec
from services.bridge.adapters.http.routes import APPLICATION_KEY as BRIDGE_APPLICATION
from services.bridge.entrypoints.definition import create_app as create_bridge_app
from services.common.config import Settings, load_settings
from services.common.kafka_provisioning import provision_prefix
from services.common.relay import OutboxRelay
from services.ledger.entrypoints.definition import create_app as create_ledger_app
from services.ledger.entrypoints.projector import build_runner
from services.ledger.read_side import PointInTime
from services.payments.entrypoints.definition import create_app as create_payments_app
from tests.oracle import commands as c
from tests.support.infra import KafkaInfo
from tests.support.kafka_topics import service_relay
from tests.support.tokens import TokenFactory

TODAY = date(2026, 8, 1)
"""The ledger's today (reversals without a day, municipal SiSa declarations, the day lateness is judged
on when a read names none), pinned as the oracle's, so that a run never depends on the calendar."""

SYNC_TIMEOUT_MS = 30_000
EXPENDITURE_CSV_HEADER = (
    "grant_year,category,amount_cents,booked_on,counterparty_id,counterparty_name,description,reference\n"
)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Request:
    """One HTTP request of a command: replayed byte for byte by a retry with the same Idempotency-Key."""

    service: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    json: Any = None
    csv: str | None = None
    query: tuple[tuple[str, str], ...] = ()


@dataclass
class Answer:
    status: int
    body: Any

    @property
    def accepted(self) -> bool:
        return self.status in (200, 201)


@dataclass
class LiveStack:
    settings: Settings
    tokens: TokenFactory
    clients: dict[str, FlaskClient]
    applications: dict[str, Application]
    topics: dict[str, TopicSpec]
    runner: Any
    stop: threading.Event
    projector: threading.Thread
    relays: dict[str, OutboxRelay] = field(default_factory=dict)
    relays_opened: ExitStack = field(default_factory=ExitStack)
    """Closes the relays' producers."""
    synced: dict[str, int] = field(default_factory=dict)
    # ids the services gave: to correct a settlement or a bridge grant, to reverse a posting
    settlement_ids: dict[tuple[int, str], str] = field(default_factory=dict)
    bridge_grant_ids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, kafka: KafkaInfo, admin: KafkaAdminClient, folder: Path) -> LiveStack:
        prefix = f"o{uuid.uuid4().hex[:10]}."
        provision_prefix(kafka.settings(prefix), admin=admin)
        settings = load_settings({
            "IDO_DATA_DIR": str(folder / "data"), "IDO_KEYS_DIR": str(folder / "keys"), "IDO_EVENT_STORE": "sqlite",
            **kafka.settings_env(), "IDO_TOPIC_PREFIX": prefix, "IDO_READ_YOUR_WRITES_TIMEOUT_MS": "20000",
            # a merger projected is known to the ledger's write side at once (no re-read interval)
            "IDO_MERGERS_REREAD_MS": "0",
        })
        tokens = TokenFactory(settings)  # first: it makes the keys the services verify tokens with
        apps = {"payments": None, "bridge": None, "ledger": None}
        flask_apps = {"payments": create_payments_app(settings), "bridge": create_bridge_app(settings),
                      "ledger": create_ledger_app(settings)}
        apps["payments"] = flask_apps["payments"].extensions["payments.application"]
        apps["bridge"] = flask_apps["bridge"].extensions[BRIDGE_APPLICATION]
        flask_apps["bridge"].extensions[BRIDGE_APPLICATION].today = lambda: TODAY  # its reclaims' day: the oracle's
        service = flask_apps["ledger"].extensions["ledger"]
        apps["ledger"] = service.application
        service.application.today = lambda: TODAY
        service.queries.today = lambda: TODAY
        runner = build_runner(settings)
        stop = threading.Event()
        projector = threading.Thread(target=runner.run_forever, args=(stop,), daemon=True)
        projector.start()
        topics = {"payments": GRANTS, "bridge": BRIDGE, "ledger": EXPENDITURES}
        # one relay per service for the whole history, as production runs them (a login per step costs)
        opened = ExitStack()
        relays = {
            name: opened.enter_context(service_relay(settings, application, topics[name]))
            for name, application in apps.items()
        }
        return cls(
            settings, tokens, {k: a.test_client() for k, a in flask_apps.items()},
            apps,  # type: ignore[arg-type]
            topics, runner, stop, projector, relays, opened, synced=dict.fromkeys(apps, 0),
        )

    def close(self) -> None:
        self.stop.set()
        self.projector.join(timeout=10)
        self.runner.close()
        self.relays_opened.close()
        for application in self.applications.values():
            application.close()

    # -- the stores and the broker -----------------------------------------------------------------

    def stored(self) -> dict[str, int]:
        """How many events each service stored."""
        return {name: app.recorder.max_notification_id() or 0 for name, app in self.applications.items()}

    def sync(self) -> None:
        """Relays every store's new events to Kafka and returns once the projector applied each of them."""
        queries = self.clients["ledger"].application.extensions["ledger"].queries
        for name, application in self.applications.items():
            last = application.recorder.max_notification_id() or 0
            if last == self.synced[name]:
                continue
            for _page in range(last - self.synced[name] + 1):  # a page has at least one event
                if not self.relays[name].run_once():
                    break
            assert self.relays[name].position() == last, f"{name}: relayed {self.relays[name].position()} of {last}"
            notifications = application.recorder.select_notifications(
                start=self.synced[name] + 1, limit=last - self.synced[name]
            )
            for notification in notifications:
                event_id = application.mapper.to_domain_event(notification).event_id  # type: ignore[attr-defined]
                queries.wait_for_event(event_id, SYNC_TIMEOUT_MS)  # raises Unavailable at the deadline
            self.synced[name] = last

    # -- HTTP ----------------------------------------------------------------------------------------

    def call(self, request: Request, idempotency_key: str | None = None) -> Answer:
        headers = dict(request.headers)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        client = self.clients[request.service]
        response: TestResponse
        if request.csv is not None:
            response = client.open(request.path, method=request.method, data=request.csv.encode(),
                                   headers={**headers, "Content-Type": "text/csv"}, query_string=dict(request.query))
        else:
            response = client.open(request.path, method=request.method, json=request.json, headers=headers,
                                   query_string=dict(request.query))
        return Answer(response.status_code, response.json if response.is_json else response.get_data(as_text=True))

    def read(self, path: str, at: PointInTime | None = None) -> Any:
        query = {}
        if at is not None and at.as_of is not None:
            query["as_of"] = at.as_of.isoformat()
        if at is not None and at.known_at is not None:
            query["known_at"] = stamp(at.known_at)
        response = self.clients["ledger"].get(path, query_string=query, headers=self.tokens.headers("auditor"))
        assert response.status_code == 200, (path, query, response.status_code, response.get_data(as_text=True))
        return response.json if response.is_json else response.get_data(as_text=True)

    def headers(self, role: str, code: str | None = None) -> tuple[tuple[str, str], ...]:
        return tuple(self.tokens.headers(role, code).items())

    def request(self, command: c.Command, *, expenditure_code: str | None = None) -> Request:  # noqa: C901
        """The HTTP request of ``command`` (``expenditure_code``: who recorded the expenditure reversed)."""
        ministry, kb = self.headers("ministry"), self.headers("kb")
        if isinstance(command, c.SetFrame):
            return Request("payments", "PUT", f"/v1/years/{command.year}/frame", ministry, {
                "frame_cents": command.frame_cents, "decided_on": command.decided_on.isoformat()})
        if isinstance(command, c.AmendFrame):
            return Request("payments", "POST", f"/v1/years/{command.year}/frame/amendments", ministry, {
                "frame_cents": command.frame_cents, "decided_on": command.decided_on.isoformat(),
                "reason": command.reason})
        if isinstance(command, c.Award):
            return Request("payments", "POST", f"/v1/years/{command.year}/grants", ministry, {
                "municipality_code": command.code, "municipality_name": command.name,
                "amount_cents": command.amount_cents, "awarded_on": command.awarded_on.isoformat()})
        if isinstance(command, c.ImportAnnex):
            lines = "".join(f"{r.code},{r.name},{euros(r.amount_cents)}\n" for r in command.rows)
            return Request("payments", "POST", f"/v1/years/{command.year}/annex", ministry,
                           csv="cbs_code,name,amount\n" + lines,
                           query=(("awarded_on", command.awarded_on.isoformat()),))
        grant = f"/v1/years/{getattr(command, 'year', 0)}/grants/{getattr(command, 'grant_code', '')}"
        if isinstance(command, c.PayAdvance):
            return Request("payments", "POST", f"{grant}/advances", ministry, {
                "amount_cents": command.amount_cents, "paid_on": command.paid_on.isoformat()})
        if isinstance(command, c.Settle):
            body: dict[str, Any] = {"reported_spending_cents": command.reported_spending_cents,
                                    "settled_on": command.settled_on.isoformat()}
            if command.settled_cents is not None:
                body["settled_cents"] = command.settled_cents
            if command.reason is not None:
                body["reason"] = command.reason
            if command.corrects_latest:
                # the latest settlement's id, or one that names none (the service must refuse it)
                body["corrects_event_id"] = self.settlement_ids.get(
                    (command.year, command.grant_code), "00000000-0000-4000-8000-000000000000")
            return Request("payments", "POST", f"{grant}/settlements", ministry, body)
        if isinstance(command, c.IssueReclaim):
            return Request("payments", "POST", f"{grant}/reclaims", ministry, {
                "amount_cents": command.amount_cents, "issued_on": command.issued_on.isoformat()})
        if isinstance(command, c.ReceiveReclaim):
            return Request("payments", "POST", f"{grant}/reclaims/receipts", ministry, {
                "amount_cents": command.amount_cents, "received_on": command.received_on.isoformat()})
        if isinstance(command, c.Merge):
            return Request("payments", "POST", f"/v1/municipalities/{command.code}/merger", ministry, {
                "successor_code": command.successor, "effective_on": command.effective_on.isoformat()})
        return self._ledger_or_bridge(command, ministry, kb, expenditure_code)

    def _ledger_or_bridge(self, command: c.Command, ministry: tuple[tuple[str, str], ...],  # noqa: C901
                          kb: tuple[tuple[str, str], ...], expenditure_code: str | None) -> Request:
        if isinstance(command, c.Spend):
            return Request("ledger", "POST", f"/v1/municipalities/{command.code}/expenditures",
                           self.headers("municipality", command.code), {
                               "grant_year": command.grant_year, "category": command.category,
                               "amount_cents": command.amount_cents, "booked_on": command.booked_on.isoformat(),
                               "counterparty": {"id": command.library_id, "name": "Bibliotheek"},
                               "description": "IDO", "reference": command.expenditure_id[-6:]})
        if isinstance(command, c.ImportExpenditures):
            lines = "".join(
                f"{r.grant_year},{r.category},{r.amount_cents},{r.booked_on.isoformat()},{r.library_id},"
                f"Bibliotheek,IDO,{r.expenditure_id[-6:]}\n" for r in command.rows
            )
            return Request("ledger", "POST", f"/v1/municipalities/{command.code}/expenditures:import",
                           self.headers("municipality", command.code), csv=EXPENDITURE_CSV_HEADER + lines)
        if isinstance(command, c.Reverse):
            code = expenditure_code or "GM0363"
            body: dict[str, Any] = {"reason": command.reason}
            if command.booked_on is not None:
                body["booked_on"] = command.booked_on.isoformat()
            path = f"/v1/municipalities/{code}/expenditures/{command.expenditure_id}/reversal"
            return Request("ledger", "POST", path, self.headers("municipality", code), body)
        if isinstance(command, c.CloseYear):
            return Request("ledger", "POST", f"/v1/municipalities/{command.code}/years/{command.year}/close", ministry,
                           {"closed_on": command.closed_on.isoformat(), "final_account": False})
        if isinstance(command, c.DeclareSisa):
            body = {"grant_year": command.grant_year, "final_account": command.final_account}
            return Request("ledger", "POST",
                           f"/v1/municipalities/{command.code}/sisa/{command.accounts_year}/declarations",
                           self.headers("municipality", command.code), body)
        if isinstance(command, c.SetBridgeFrame):
            return Request("bridge", "POST", "/bridge/frame", kb, {
                "frame_cents": command.frame_cents, "account_deadline": command.account_deadline.isoformat()})
        if isinstance(command, c.RegisterLibrary):
            return Request("bridge", "POST", "/bridge/libraries", kb, {
                "library_id": command.library_id, "name": command.name,
                "service_area": [{"municipality_code": "GM0363", "inhabitants": 1000}]})
        if isinstance(command, c.SetBridgeGrant):
            body = {"amount_cents": command.amount_cents, "reason": "entered"}
            if command.library_id in self.bridge_grant_ids:
                body["corrects_event_id"] = self.bridge_grant_ids[command.library_id]
            return Request("bridge", "PUT", f"/bridge/libraries/{command.library_id}/grant", kb, body)
        if isinstance(command, c.PayBridge):
            return Request("bridge", "POST", f"/bridge/libraries/{command.library_id}/payments", kb, {
                "amount_cents": command.amount_cents, "paid_on": command.paid_on.isoformat()})
        if isinstance(command, c.SubmitBridgeAccount):
            return Request("bridge", "POST", f"/bridge/libraries/{command.library_id}/account", kb, {
                "spent_cents": command.spent_cents, "submitted_on": command.submitted_on.isoformat()})
        raise AssertionError(f"no request for {command!r}")

    def remember(self, command: c.Command, answer: Answer) -> None:
        """Keeps the ids an accepted answer gave that a later command names."""
        if isinstance(command, c.Settle):
            self.settlement_ids[(command.year, command.grant_code)] = answer.body["settlement_event_id"]
        elif isinstance(command, c.SetBridgeGrant):
            self.bridge_grant_ids[command.library_id] = answer.body["grant"]["event_id"]


def euros(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


@dataclass
class HttpFigures:
    """The figures ``compare.differences`` reads, answered by the ledger's HTTP API."""

    stack: LiveStack

    def national(self, year: int, at: PointInTime) -> Any:
        return self.stack.read(f"/v1/balances/{year}", at)

    def balances(self, code: str, year: int, at: PointInTime) -> Any:
        return self.stack.read(f"/v1/municipalities/{code}/balances/{year}", at)

    def sisa(self, code: str, year: int, at: PointInTime) -> Any:
        return self.stack.read(f"/v1/municipalities/{code}/sisa/{year}", at)

    def bridge(self, at: PointInTime) -> Any:
        return self.stack.read("/v1/bridge", at)
