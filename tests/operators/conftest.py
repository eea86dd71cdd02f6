"""Fixtures of the operators' tests: a real HTTP server for a Flask app, headless Chromium, a Kafka
broker of the test's own (to stop it), and a small world of grants, bridge and expenditures.

Nothing here skips: no Chromium, or a broker that will not start, fails the test saying why.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from contracts.topics import BRIDGE, EXPENDITURES, GRANTS
from services.bridge.entrypoints.demo import load_demo_data as load_bridge_demo
from services.common.config import Settings, load_settings
from services.common.definition import service_definition
from services.common.eventstore import build_application
from services.common.kafka_provisioning import provision
from services.ledger.entrypoints.definition import create_app as create_ledger_app
from services.ledger.entrypoints.projector import build_runner
from services.payments.application.app import PaymentsApplication
from services.payments.demo import ANNEX_DEMO_FILE
from tests.support.infra import KafkaInfo
from tests.support.kafka_topics import publish_all
from tests.support.tokens import TokenFactory

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serves the app on a free loopback port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def chromium_executable() -> str:
    """Debian's chromium (no browser download); `make test` installs it when missing, as root."""
    found = os.environ.get("IDO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail(
            "Chromium not found: the dashboard test drives Debian's `chromium` headless. "
            "Install it with `apt-get install chromium` (make test does so when run as root), "
            "or set IDO_CHROMIUM to its path."
        )
    return found


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium_executable()
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        except Exception as error:  # noqa: BLE001 - fail, naming the browser and the reason
            pytest.fail(f"Chromium at {executable} did not start headless: {error}")
        yield launched
        launched.close()


@dataclass
class OwnBroker:
    info: KafkaInfo
    env: dict[str, str]
    running: bool = True

    def stop(self) -> None:
        if self.running:
            subprocess.run(["bash", str(REPO / "scripts/kafka.sh"), "stop"], env=self.env, check=True,
                           capture_output=True, timeout=90)
            self.running = False


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    """A Kafka broker of this test's own on free ports, so the test may stop it."""
    port, controller = free_port(), free_port()
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller),
        "KAFKA_STATE_DIR": str(tmp_path / "kafka"),
        "KAFKA_CREDENTIALS_DIR": str(tmp_path / "kafka" / "credentials"),
        "KAFKA_HEAP_OPTS": "-Xms128m -Xmx384m",
    }
    started = subprocess.run(
        ["bash", str(REPO / "scripts/kafka.sh"), "start"], env=env, capture_output=True, text=True, timeout=300
    )
    if started.returncode != 0:
        pytest.fail(f"the test's own Kafka broker did not start: {started.stderr[-2000:]}")
    info = KafkaInfo(f"127.0.0.1:{port}", env["KAFKA_CREDENTIALS_DIR"])
    provision(info.settings())  # users, the unprefixed topics and their ACLs, as `make run` does
    broker = OwnBroker(info, env)
    try:
        yield broker
    finally:
        broker.stop()


@dataclass
class World:
    """Grants (frame, annex, advances), the bridge demo and a few expenditures, projected."""

    settings: Settings
    tokens: TokenFactory
    ledger: Flask
    last_event_ids: list[str]

    def close(self) -> None:
        self.ledger.extensions["ido.operations"].close()
        self.ledger.extensions["ledger"].application.close()


def expenditure(category: str, cents: int, booked_on: str, counterparty: tuple[str, str], ref: str) -> dict[str, Any]:
    return {
        "grant_year": 2024, "category": category, "amount_cents": cents, "booked_on": booked_on,
        "counterparty": {"id": counterparty[0], "name": counterparty[1]},
        "description": f"illustrative {category}", "reference": ref,
    }


AMSTERDAM_LIBRARY = ("NL-KVK-90000001", "Demobibliotheek Amsterdam (illustrative)")
ROTTERDAM_LIBRARY = ("NL-KVK-90000002", "Demobibliotheek Rotterdam (illustrative)")


def build_world(store_env: dict[str, str], kafka: KafkaInfo, topic_prefix: str) -> World:
    settings = load_settings(  # the world posts before it projects the awards: 2024 opened (issue 15)
        {**store_env, **kafka.settings_env(), "IDO_TOPIC_PREFIX": topic_prefix, "IDO_YEARS_OPEN_BEFORE_AWARD": "2024"}
    )
    tokens = TokenFactory(settings)
    payments = build_application(PaymentsApplication, settings.eventsourcing_env("payments"))
    payments.set_frame(2024, 1_713_000_000, date(2023, 12, 1))
    payments.import_annex(2024, ANNEX_DEMO_FILE.read_bytes(), date(2024, 1, 15))
    for code in ("GM0363", "GM0599"):
        grant = payments.grant(2024, code)
        payments.pay_advance(2024, code, grant.amount_cents, date(2024, 1, 31))
    bridge = build_application(service_definition("bridge").application_class, settings.eventsourcing_env("bridge"))
    load_bridge_demo(settings, bridge)
    # Two of the demo libraries' final accounts (the deadline is 2023-09-01): one on time, one late, spent in
    # full; the others never submitted theirs (missing).
    for library_id, submitted_on in (("NL-KVK-90000001", date(2023, 8, 20)), ("NL-KVK-90000002", date(2023, 9, 20))):
        bridge.submit_account(
            library_id, spent_cents=bridge.library(library_id)["paid_cents"], submitted_on=submitted_on
        )

    ledger_app = build_application(service_definition("ledger").application_class, settings.eventsourcing_env("ledger"))
    ledger = create_ledger_app(settings, ledger_app)
    client = ledger.test_client()
    last: list[str] = []
    postings = {
        "GM0363": [
            expenditure("library_funding", 400_000_00, "2024-02-01", AMSTERDAM_LIBRARY, "AMS-1"),
            expenditure("promotion", 5_000_00, "2024-03-01", ("PRINT-1", "Printer"), "AMS-2"),
            expenditure("network_orchestration", 12_345_67, "2024-04-15", ("WIJK-1", "Wijkteam"), "AMS-3"),
            expenditure("library_funding", 150_000_00, "2024-07-01", AMSTERDAM_LIBRARY, "AMS-4"),
        ],
        "GM0599": [
            expenditure("library_funding", 300_000_00, "2024-03-01", ROTTERDAM_LIBRARY, "RTM-1"),
            expenditure("promotion", 2_500_00, "2024-05-20", ("PRINT-2", "Drukker"), "RTM-2"),
        ],
    }
    for code, bodies in postings.items():
        headers = tokens.headers("municipality", code)
        for body in bodies:
            posted = client.post(f"/v1/municipalities/{code}/expenditures", json=body, headers=headers)
            assert posted.status_code == 201, posted.json
            last.append(posted.json["event_id"])
    # One posting reversed: the promotion was booked twice.
    promotion = client.post(
        "/v1/municipalities/GM0363/expenditures",
        json=expenditure("promotion", 1_000_00, "2024-03-02", ("PRINT-1", "Printer"), "AMS-5"),
        headers=tokens.headers("municipality", "GM0363"),
    )
    assert promotion.status_code == 201, promotion.json
    reversal = client.post(
        f"/v1/municipalities/GM0363/expenditures/{promotion.json['expenditure_id']}/reversal",
        json={"reason": "booked twice", "booked_on": "2024-03-10"},
        headers=tokens.headers("municipality", "GM0363"),
    )
    assert reversal.status_code == 201, reversal.json
    last.append(reversal.json["event_id"])

    for application, topic in ((payments, GRANTS), (bridge, BRIDGE), (ledger_app, EXPENDITURES)):
        publish_all(settings, application, topic)
    payments.close()
    bridge.close()
    project_until(settings, ledger, last)
    return World(settings, tokens, ledger, last)


def project_until(settings: Settings, ledger: Flask, event_ids: list[str], timeout_s: float = 60) -> None:
    """Runs the projector in this process until every given event is in the view."""
    runner = build_runner(settings)
    queries = ledger.extensions["ledger"].queries
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            runner.run_once(timeout_ms=300)
            try:
                for event_id in event_ids:
                    queries.wait_for_event(event_id, 0)
                return
            except Exception:  # noqa: BLE001 - not projected yet
                if time.monotonic() > deadline:
                    raise
    finally:
        runner.close()


@pytest.fixture
def dashboard_app(settings: Settings, tokens: TokenFactory) -> Iterator[Flask]:
    """The ledger's app for the dashboard's tests without a browser (the signing keys made by ``tokens``)."""
    application = create_ledger_app(settings)
    yield application
    application.extensions["ido.operations"].close()
    application.extensions["ledger"].application.close()


@pytest.fixture
def client(dashboard_app: Flask) -> FlaskClient:
    return dashboard_app.test_client()
