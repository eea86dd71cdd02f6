"""The Flask side every service shares: app factory, bearer-token check, errors as JSON."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask, g, jsonify, request
from flask_smorest import Api, Blueprint
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException

from services.common.auth import Principal, TokenVerifier
from services.common.errors import ServiceError, Unavailable

BEARER_SCHEME = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


class ServiceErrorSchema(Schema):
    """The body of every 4xx/5xx answer, as `error_response` writes it; for the OpenAPI documents."""

    code = fields.Integer(metadata={"description": "The HTTP status."})
    status = fields.String(metadata={"example": "rule_broken"})
    message = fields.String(metadata={"description": "The rule or problem, in words."})
    errors = fields.Dict(
        keys=fields.String(), values=fields.List(fields.String()), metadata={"description": "Field -> reasons."}
    )


def create_service_app(
    *,
    service: str,
    title: str,
    description: str,
    verifier: TokenVerifier,
    blueprints: Iterable[Blueprint],
    max_body_bytes: int = 1024 * 1024,
) -> Flask:
    app = Flask(service)
    app.config.update(
        API_TITLE=title,
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=max_body_bytes,
        API_SPEC_OPTIONS={
            "info": {"description": description},
            "components": {"securitySchemes": {"bearer": BEARER_SCHEME}},
            "security": [{"bearer": []}],
        },
    )
    app.extensions["ido.verifier"] = verifier
    api = Api(app)
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    app.extensions["ido.api"] = api

    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError) -> Any:
        return error_response(error.http_status, error.code, error.message, error.errors, error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        data = getattr(error, "data", None) or {}
        errors = _flatten(data.get("messages") or data.get("errors") or {})
        message = data.get("message") or error.description or error.name
        if error.code == 422 and errors:
            message = "the request has invalid fields"
        return error_response(error.code or 500, (error.name or "error").lower().replace(" ", "_"), message, errors)

    @app.get("/healthz")
    def _healthz() -> Any:
        return jsonify(status="ok", service=service)

    return app


def error_response(
    status: int, code: str, message: str, errors: dict[str, list[str]] | None = None, error: Exception | None = None
) -> Any:
    body = {"code": status, "status": code, "message": message, "errors": errors or {}}
    response = jsonify(body)
    response.status_code = status
    if isinstance(error, Unavailable):
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
    if "principal" not in g:
        from flask import current_app

        verifier: TokenVerifier = current_app.extensions["ido.verifier"]
        g.principal = verifier.verify(request.headers.get("Authorization"))
    found: Principal = g.principal
    return found
