"""The ledger service: its definition for the runner and its HTTP app."""

from __future__ import annotations

from flask import Flask

from contracts.topics import BRIDGE, DEAD_LETTER, EXPENDITURES, GRANTS
from services.common.adapters.sql import create_read_engine, create_sql_engine
from services.common.auth import verifier_for
from services.common.config import Settings
from services.common.definition import ServiceDefinition
from services.common.eventstore import build_application
from services.common.http import create_service_app, enable_operations
from services.common.idempotency import enable_request_keys
from services.common.observability import sql_check
from services.common.secret_files import ensure_secret
from services.ledger.adapters.http import dashboard_csrf
from services.ledger.adapters.http.balance_fast_path import install_balance_fast_path
from services.ledger.adapters.http.dashboard import dashboard
from services.ledger.adapters.http.posting_fast_path import install_posting_fast_path
from services.ledger.adapters.http.routes import BLUEPRINTS
from services.ledger.application.app import LedgerApplication
from services.ledger.application.service import LedgerService
from services.ledger.entrypoints.demo import load_demo_data
from services.ledger.entrypoints.projector import run as run_projector
from services.ledger.entrypoints.view_rebuild import rebuild_view
from services.ledger.read_side import open_queries


def create_app(settings: Settings, application: LedgerApplication | None = None) -> Flask:
    application = application or build_application(LedgerApplication, settings.eventsourcing_env("ledger"))
    app = create_service_app(
        service="ledger",
        title="IDO ledger: expenditures and balances",
        description=(
            "Municipalities post what they spent of the SPUK IDO grant; balances, SiSa figures and the "
            "bridging subsidy are projected from Kafka (ido.grants.v1, ido.bridge.v1, ido.expenditures.v1). "
            "Amounts are integer euro cents."
        ),
        verifier=verifier_for(settings, "ledger"),
        blueprints=BLUEPRINTS,
        max_body_bytes=settings.max_body_bytes,
        write_rate_limit_per_minute=settings.write_rate_limit_per_minute,
        trusted_proxies=settings.trusted_proxies,
    )
    queries = open_queries(
        create_read_engine(settings.view_db_url), settings.sisa_indicators, settings.read_your_writes_max_waiters
    )
    app.extensions["ledger"] = LedgerService(
        # No checkpoint here: the signing key belongs to the checkpoint process alone
        # (`ido audit checkpoint --every`), whose next head covers a closing.
        application=application,
        queries=queries,
        read_your_writes_timeout_ms=settings.read_your_writes_timeout_ms,
        unanswered_per_minute=settings.read_your_writes_unanswered_per_minute,
    )
    enable_request_keys(app, create_sql_engine(settings.service_db_url("ledger")), "ledger")
    # Its table is made here, under `ido serve`'s start-up lock, not by the first request of each worker
    # (two workers' CREATE TABLE at once: one fails).
    assert application.recorded_events is not None
    operations = enable_operations(
        app,
        settings,
        application=application,
        topic=EXPENDITURES.name,
        projection_topics=[spec.name for spec in (GRANTS, BRIDGE, EXPENDITURES)],
        dead_letter_topic=DEAD_LETTER.name,
        stored_offsets=queries.offsets,
    )
    operations.add_check("view_store", lambda: sql_check(queries.engine))
    app.register_blueprint(dashboard)  # read-only pages for people, on the same queries as the API
    # The key of the dashboard forms' CSRF tokens, one file every worker shares (the service's own keys).
    app.extensions[dashboard_csrf.KEY] = ensure_secret(settings.signing_dir("ledger") / "dashboard_csrf.key")
    if not settings.answer_after_published_ms:  # a write waiting for its publication is the app's to hold
        install_posting_fast_path(app)
        install_balance_fast_path(app)  # (install would refuse the publication's after-request hook anyway)
    return app


DEFINITION = ServiceDefinition(
    name="ledger",
    topic=EXPENDITURES,
    application_class=LedgerApplication,
    create_http_app=create_app,
    http_port=8003,
    run_projector=run_projector,
    rebuild_view=rebuild_view,
    # A recovered store needs its read-your-writes rows too: a read may wait only for an id noted there.
    recorded_side_rows=lambda application, owners: application.recorded_events.rows(owners),
    load_demo_data=load_demo_data,
)
