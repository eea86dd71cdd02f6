"""The bridge service as the runner sees it: its definition and its HTTP app."""

from __future__ import annotations

from flask import Flask

from contracts.topics import BRIDGE
from services.bridge.adapters.http.routes import APPLICATION_KEY, blp
from services.bridge.application.app import BridgeApplication
from services.bridge.entrypoints.demo import load_demo_data
from services.common.adapters.sql import create_sql_engine
from services.common.auth import verifier_for
from services.common.config import Settings
from services.common.definition import ServiceDefinition
from services.common.eventstore import build_application
from services.common.http import create_service_app, enable_operations
from services.common.idempotency import enable_request_keys


def build_bridge_application(settings: Settings) -> BridgeApplication:
    return build_application(BridgeApplication, settings.eventsourcing_env("bridge"))


def create_app(settings: Settings, application: BridgeApplication | None = None) -> Flask:
    app = create_service_app(
        service="bridge",
        title="IDO bridging subsidy",
        description=(
            "The one-off bridging subsidy (overbruggingsregeling, € 2.7 M) that BZK funded and the KB paid "
            "to public libraries: € 0.15 per inhabitant of each library's service area. Money is integer "
            "euro cents. Reads: roles kb, ministry, auditor, finance. Writes: role kb."
        ),
        verifier=verifier_for(settings, "bridge"),
        blueprints=[blp],
        max_body_bytes=settings.max_body_bytes,
        write_rate_limit_per_minute=settings.write_rate_limit_per_minute,
        trusted_proxies=settings.trusted_proxies,
    )
    app.extensions[APPLICATION_KEY] = application or build_bridge_application(settings)
    enable_operations(app, settings, application=app.extensions[APPLICATION_KEY], topic=BRIDGE.name)
    enable_request_keys(app, create_sql_engine(settings.service_db_url("bridge")), "bridge")
    return app


DEFINITION = ServiceDefinition(
    name="bridge",
    topic=BRIDGE,
    application_class=BridgeApplication,
    create_http_app=create_app,
    http_port=8002,
    load_demo_data=load_demo_data,
)
