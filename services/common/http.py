"""The Flask side every service shares: app factory, bearer-token check, errors as JSON, and what
operators need on every service: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`
(Swagger UI served from the pinned swagger-ui-bundle-v2 package, no CDN), a request id on every
request (`X-Request-Id`, accepted or made) and one structured access-log line per request."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Flask, Request, Response, abort, current_app, g, jsonify, request, send_from_directory
from flask_smorest import Api
from marshmallow import Schema, fields
from prometheus_client import CONTENT_TYPE_LATEST
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from contracts.provenance import KeySet
from services.common.adapters.kafka import client_config
from services.common.auth import Principal, RevocationList, TokenVerifier
from services.common.blueprint import NO_DATABASE_ROUTES, WRITE_METHODS, Blueprint
from services.common.config import Settings
from services.common.context_local import current
from services.common.database_unreachable import DATABASE_UNREACHABLE
from services.common.error_schema import ServiceErrorSchema as ServiceErrorSchema  # the services import it here
from services.common.errors import RetryLater, ServiceError, Unavailable
from services.common.json_depth import refuse_deep_json
from services.common.kafka_credentials import PROBE
from services.common.observability import OPERATIONS_KEY, Check, Operations
from services.common.outbox_gate import OutboxGate
from services.common.rate_limit import limit_writes
from services.common.readiness import ProjectionWatch
from services.common.request_frame import REQUEST_ID_HEADER, RequestFrame, account

SWAGGER_UI_ASSETS = frozenset(
    {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png",
     "favicon-16x16.png"}
)
SWAGGER_UI_CONFIG = {
    "deepLinking": True,
    "validatorUrl": None,  # the public validator is not reachable, and need not be
    "persistAuthorization": False,  # a pasted token is not kept in the browser's storage
    "displayRequestDuration": True,
}

BEARER_SCHEME = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


class HealthSchema(Schema):
    status = fields.String(metadata={"example": "ok"})
    service = fields.String(metadata={"example": "payments"})


class ReadinessSchema(Schema):
    status = fields.String(metadata={"description": "`ready` or `unready`."})
    service = fields.String()
    checks = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(),
        metadata={
            "description": "Per check (event_store, broker, relay; for the ledger also view_store and projector): "
            "`ok` and details such as `lag`, `max_lag`, `error`. An `informational` check never makes the "
            "service unready."
        },
    )


operations_blp = Blueprint(
    "operations",
    __name__,
    description="For operators: liveness, readiness and Prometheus metrics. No token needed; expose them only on "
    "the operators' network.",
)


@operations_blp.route("/healthz", methods=["GET"])
@operations_blp.response(200, HealthSchema)
@operations_blp.doc(security=[])
def healthz() -> Any:
    """Liveness: the process answers."""
    return {"status": "ok", "service": _operations().service}


@operations_blp.route("/readyz", methods=["GET"])
@operations_blp.response(
    200,
    ReadinessSchema,
    description="Ready: the event store and the broker answer, and the relay's lag is within IDO_READY_MAX_RELAY_LAG.",
)
@operations_blp.alt_response(503, schema=ReadinessSchema, description="Not ready; `checks` says why.")
@operations_blp.doc(security=[])
def readyz() -> Any:
    """Readiness: event store and broker reachable, relay lag below the configured bound."""
    ready, body = _operations().readiness()
    return body, (200 if ready else 503)


@operations_blp.route("/metrics", methods=["GET"])
@operations_blp.doc(
    security=[],
    responses={
        "200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}
    },
)
def metrics() -> Any:
    """Prometheus metrics: requests, latency, events recorded, relay lag, projector lag, dead letters."""
    return Response(_operations().exposition(), mimetype=CONTENT_TYPE_LATEST)


class PublicKeySchema(Schema):
    kid = fields.String(metadata={"description": "`<service>-` and the first 16 hex digits of the SHA-256 of the key."})
    service = fields.String(metadata={"example": "payments"})
    alg = fields.String(metadata={"example": "Ed25519"})
    public_key = fields.String(metadata={"description": "The 32 raw bytes of the public key, base64url."})
    topics = fields.List(fields.String(), metadata={"description": "Logical topics the key seals."})
    not_before = fields.String(metadata={"description": "UTC; the key seals from this moment."})
    not_after = fields.String(allow_none=True, metadata={"description": "UTC; retired at this moment (null: current)."})


class KeySetSchema(Schema):
    keys = fields.List(fields.Nested(PublicKeySchema))


KEYSET_FILE_KEY = "ido.keyset_file"
OUTBOX_GATE_KEY = "ido.outbox_gate"
DATABASE_BREAKER_KEY = "ido.database_breaker"


@operations_blp.route("/.well-known/ido-keyset.json", methods=["GET"])
@operations_blp.response(
    200, KeySetSchema,
    description="The public keys this service seals its topic's messages with, each with its validity "
    "(contracts/generated/keyset.schema.json; docs/audit.md#provenance).",
)
@operations_blp.doc(security=[])
def well_known_keyset() -> Any:
    """The service's public key set: check the seals on its topic's messages with it."""
    path = current_app.extensions.get(KEYSET_FILE_KEY)
    if path is None:
        return {"keys": []}
    return KeySet.load(path).document()


def _operations() -> Operations:
    found: Operations = current_app.extensions[OPERATIONS_KEY]
    return found


class AsciiIntegerConverter(IntegerConverter):
    """``<int:year>`` of ASCII digits only. Werkzeug's takes ``\\d+``, every script's digits, and ``int``
    reads them: ``/v1/years/<Arabic-Indic 2024>/frame`` reached 2024 under another spelling."""

    regex = r"[0-9]+"


class ServiceFlask(Flask):
    """Flask asks ``iscoroutinefunction`` of every hook, handler and view at every request (16 times
    a posting); the answer never changes for a function, so it is kept (issue 17)."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        cache: dict[Any, Callable[..., Any]] = self.__dict__.setdefault("_ido_sync", {})
        found = cache.get(func)
        if found is None:
            found = super().ensure_sync(func)
            if len(cache) < 4096:  # bound methods are new objects each time: keep the memory bounded
                cache[func] = found
        return found


def create_service_app(
    *,
    service: str,
    title: str,
    description: str,
    verifier: TokenVerifier,
    blueprints: Iterable[Blueprint],
    max_body_bytes: int = 1024 * 1024,
    write_rate_limit_per_minute: int,
    trusted_proxies: int = 0,
) -> Flask:
    app = ServiceFlask(service)
    app.url_map.converters["int"] = AsciiIntegerConverter  # before any route is registered
    if trusted_proxies:
        # Behind TLS-ending proxies (IDO_TRUSTED_PROXIES) the request's scheme, host and client are the
        # ones they forward: the dashboard's cookie is then Secure when the browser spoke HTTPS. Never
        # without the setting: a client could claim any scheme or address in those headers.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=trusted_proxies, x_proto=trusted_proxies, x_host=trusted_proxies
        )
    app.config.update(
        API_TITLE=title,
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
        OPENAPI_SWAGGER_UI_CONFIG=SWAGGER_UI_CONFIG,
        MAX_CONTENT_LENGTH=max_body_bytes,
        API_SPEC_OPTIONS={
            "info": {"description": description},
            "components": {"securitySchemes": {"bearer": BEARER_SCHEME}},
            "security": [{"bearer": []}],
        },
    )
    app.extensions["ido.verifier"] = verifier
    app.extensions[OPERATIONS_KEY] = Operations(service)
    _install_request_context(app)
    limit_writes(app, write_rate_limit_per_minute, principal)
    api = Api(app)
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    api.register_blueprint(operations_blp)
    app.extensions["ido.api"] = api

    @app.get("/docs/assets/<path:name>")
    def _swagger_ui_asset(name: str) -> Any:
        if name not in SWAGGER_UI_ASSETS:
            abort(404)
        return send_from_directory(Path(str(swagger_ui_path)), name, max_age=86400)

    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError) -> Any:
        return error_response(error.http_status, error.code, error.message, error.errors, error)

    breaker = DatabaseBreaker()
    app.extensions[DATABASE_BREAKER_KEY] = breaker

    @app.before_request
    def _fail_fast_while_the_database_is_away() -> None:
        if request.path not in NO_DATABASE_ROUTES and breaker.is_open():
            raise Unavailable("the database is not reachable; try again shortly", retry_after_s=2)

    def _database_error(error: Exception) -> Any:
        logging.getLogger(__name__).warning("database unreachable: %s", type(error).__name__)
        breaker.trip()
        unavailable = Unavailable(
            "the database is not reachable; retry shortly (with the same Idempotency-Key for a posting)",
            retry_after_s=2,
        )
        return error_response(503, unavailable.code, unavailable.message, {}, unavailable)

    for database_error in DATABASE_UNREACHABLE:
        app.register_error_handler(database_error, _database_error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        data = getattr(error, "data", None) or {}
        errors = _flatten(data.get("messages") or data.get("errors") or {})
        message = data.get("message") or error.description or error.name
        if error.code == 422 and errors:
            message = "the request has invalid fields"
        if error.code == 413:
            limit = current_app.config["MAX_CONTENT_LENGTH"]
            message = f"the body is over the limit of {limit} bytes; nothing was stored"
            errors = {"_body": [f"must be at most {limit} bytes"]}
        response = error_response(error.code or 500, (error.name or "error").lower().replace(" ", "_"), message, errors)
        # Headers the exception carries (Allow on 405, WWW-Authenticate, ...) belong in the answer.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    return app


def enable_operations(
    app: Flask,
    settings: Settings,
    *,
    application: Any,
    topic: str,
    projection_topics: Iterable[str] = (),
    dead_letter_topic: str | None = None,
    stored_offsets: Any = None,
) -> Operations:
    """Gives `/readyz` and `/metrics` the service's event store, its topic (unprefixed name) and the
    broker; for the ledger also the projection's topics, dead-letter topic and stored offsets."""
    from services.common.signing import service_keys

    keys = service_keys(settings, operations_service(app), [topic])
    keys.ensure()  # created on the service's first start, when missing; served at /.well-known/ido-keyset.json
    app.extensions[KEYSET_FILE_KEY] = keys.keyset_file
    operations: Operations = app.extensions[OPERATIONS_KEY]
    operations.attach(
        application=application,
        topic=settings.topic(topic),
        # /readyz and /metrics read offsets as ido-probe (DESCRIBE on the topics, no READ, no WRITE).
        kafka_config=lambda: client_config(settings, PROBE),
        max_relay_lag=settings.ready_max_relay_lag,
        timeout_ms=settings.ready_timeout_ms,
    )
    assert operations.relay is not None
    gate = OutboxGate(operations.relay, settings.outbox_stall_s)
    app.extensions[OUTBOX_GATE_KEY] = gate

    @app.before_request
    def _refuse_writes_while_events_wait() -> None:
        if request.method in WRITE_METHODS and (refusal := gate.refusal()) is not None:
            raise refusal

    # Every token is refused (503) while the revocation list cannot be read: say so here too, so a
    # load balancer sends no requests to an instance that can only refuse them.
    revoked = app.extensions["ido.verifier"].revoked
    operations.add_check("revocation_list", lambda: _revocation_check(revoked))
    if settings.answer_after_published_ms:
        from services.common.published_answer import answer_after_published

        assert operations.relay is not None
        # Registered after the request context's own hook, so it runs before it: the access log shows the 503.
        answer_after_published(app, operations.relay, settings.answer_after_published_ms, error_response)
    topics = [settings.topic(name) for name in projection_topics]
    if topics and dead_letter_topic and stored_offsets is not None:
        assert operations.probe is not None
        operations.watch_projection(
            ProjectionWatch(operations.probe, topics, settings.topic(dead_letter_topic), stored_offsets)
        )
    return operations


def _revocation_check(revoked: RevocationList) -> Check:
    problem = revoked.unreadable()
    return Check(problem is None, {"error": problem} if problem else {})


def operations_service(app: Flask) -> str:
    found: Operations = app.extensions[OPERATIONS_KEY]
    return found.service


def _install_request_context(app: Flask) -> None:
    """Request id in and out, timing, metrics and one access-log line per request (services/common/request_frame.py)."""

    @app.before_request
    def _begin() -> None:
        served, kept = current(request), current(g)
        _limit_chunked_body(served, app.config["MAX_CONTENT_LENGTH"])
        if served.is_json:
            refuse_deep_json(served.get_data(cache=True))  # 400, before a parser recurses into it
        kept.frame = RequestFrame.open(served.headers.get(REQUEST_ID_HEADER, ""))

    @app.after_request
    def _end(response: Response) -> Response:
        served, kept = current(request), current(g)
        frame: RequestFrame | None = kept.get("frame")
        if frame is not None:
            response.headers[REQUEST_ID_HEADER] = frame.request_id
        rule = served.url_rule
        route = rule.rule if rule is not None else "<unmatched>"
        account(
            app.extensions[OPERATIONS_KEY], method=served.method, route=route, path=served.path,
            status=response.status_code, frame=frame, caller=kept.get("principal"),
        )
        return response

    @app.teardown_request
    def _forget(_error: BaseException | None) -> None:
        frame: RequestFrame | None = current(g).pop("frame", None)
        if frame is not None:
            frame.close()


class DatabaseBreaker:
    """After a database error, answer 503 at once for a short while instead of queueing on retries."""

    def __init__(self, open_for_s: float = 2.0):
        self.open_for_s = open_for_s
        self._open_until = 0.0

    def trip(self) -> None:
        self._open_until = time.monotonic() + self.open_for_s

    def is_open(self) -> bool:
        return time.monotonic() < self._open_until


def _limit_chunked_body(request: Request, max_bytes: int) -> None:
    """A body without Content-Length (chunked) is read here, up to the limit: over it is 413.

    Werkzeug only cuts such a stream at the limit, silently, so an import would keep its first rows
    and lose the rest; a ledger must refuse the whole request instead.
    """
    if request.content_length is not None or request.method not in ("POST", "PUT", "PATCH"):
        return
    stream = request.environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(min(65536, max_bytes + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise RequestEntityTooLarge(f"the body is over the limit of {max_bytes} bytes")
    body = b"".join(chunks)
    request.environ["wsgi.input"] = io.BytesIO(body)
    request.environ["CONTENT_LENGTH"] = str(len(body))
    request.environ.pop("HTTP_TRANSFER_ENCODING", None)
    request.environ["wsgi.input_terminated"] = False


def error_response(
    status: int, code: str, message: str, errors: dict[str, list[str]] | None = None, error: Exception | None = None
) -> Any:
    body = {"code": status, "status": code, "message": message, "errors": errors or {}}
    response = jsonify(body)
    response.status_code = status
    if isinstance(error, RetryLater):  # Unavailable (503), TooManyRequests (429)
        response.headers["Retry-After"] = str(error.retry_after_s)
    return response


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """webargs nests errors by location ('json', 'query', ...); callers want field -> reasons."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = str(key) if not prefix else f"{prefix}.{key}"
            if not prefix and key in ("json", "query", "headers", "files", "form", "view_args", "path"):
                name = ""
            flat.update(_flatten(value, name))
    elif isinstance(messages, list) and all(isinstance(item, str) for item in messages):
        flat[prefix or "_body"] = list(messages)
    else:
        flat[prefix or "_body"] = [str(messages)]
    return flat


def principal() -> Principal:
    """The verified caller of this request (401 when there is no valid token)."""
    kept = current(g)
    found: Principal | None = kept.get("principal")
    if found is None:
        verifier: TokenVerifier = current_app.extensions["ido.verifier"]
        found = kept.principal = verifier.verify(request.headers.get("Authorization"))
    return found
