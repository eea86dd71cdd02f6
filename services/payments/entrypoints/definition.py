"""The payments service as the runner sees it: its HTTP app, event store, topic and demo data."""

from __future__ import annotations

from typing import Any

from flask import Flask

from contracts.topics import GRANTS
from services.common.adapters.sql import create_sql_engine
from services.common.auth import verifier_for
from services.common.config import Settings
from services.common.definition import ServiceDefinition
from services.common.eventstore import build_application
from services.common.http import create_service_app, enable_operations, error_response
from services.common.idempotency import enable_request_keys
from services.payments.adapters.http.routes import blp
from services.payments.application.app import PaymentsApplication
from services.payments.demo import load_demo_data
from services.payments.domain.errors import AnnexRefused

DESCRIPTION = (
    "Records what the Ministry of BZK decides and pays under the Regeling specifieke uitkering Informatiepunten "
    "Digitale Overheid (Stcrt. 2022, 33992) as immutable events on ido.grants.v1: the yearly frame, the awards "
    "(the annex), the 100 % advance, the settlement (vaststelling) after the SiSa account, and the reclaim "
    "(terugvordering) of what was paid and not spent. Amounts are integer euro cents."
)


def build_payments_application(settings: Settings) -> PaymentsApplication:
    application = build_application(PaymentsApplication, settings.eventsourcing_env("payments"))
    application.settlement_rules = settings.settlement_rules
    return application


def create_app(settings: Settings, application: PaymentsApplication | None = None) -> Flask:
    app = create_service_app(
        service="payments",
        title="IDO payments (SPUK IDO)",
        description=DESCRIPTION,
        verifier=verifier_for(settings, "payments"),
        blueprints=[blp],
        max_body_bytes=settings.max_body_bytes,
        write_rate_limit_per_minute=settings.write_rate_limit_per_minute,
        trusted_proxies=settings.trusted_proxies,
    )
    if application is not None:
        application.settlement_rules = settings.settlement_rules
    app.extensions["payments.application"] = application or build_payments_application(settings)
    enable_operations(app, settings, application=app.extensions["payments.application"], topic=GRANTS.name)
    enable_request_keys(app, create_sql_engine(settings.service_db_url("payments")), "payments")

    @app.errorhandler(AnnexRefused)
    def _annex_refused(error: AnnexRefused) -> Any:
        response = error_response(error.http_status, error.code, error.message, error.errors, error)
        body = response.get_json()
        body["rows"] = [row.as_dict() for row in error.rows]
        response.set_data(app.json.dumps(body))
        return response

    return app


DEFINITION = ServiceDefinition(
    name="payments",
    topic=GRANTS,
    application_class=PaymentsApplication,
    create_http_app=create_app,
    http_port=8001,
    load_demo_data=load_demo_data,
)
