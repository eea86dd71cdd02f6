"""The committed API documents under docs/api/ are what the code generates; each service serves its
own at /openapi.json with Swagger UI at /docs from packaged assets (no CDN)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.export import GENERATED_DIR, generated_documents
from services.common.apidocs import API_DOCS_DIR, api_documents, asyncapi_problem
from services.common.auth import init_token_files
from services.common.blueprint import DATABASE_AWAY, NO_DATABASE_ROUTES
from services.common.config import load_settings
from services.common.definition import SERVICE_NAMES, service_definition


def test_committed_api_documents_are_not_stale() -> None:
    stale = [
        name
        for name, content in api_documents().items()
        if not (API_DOCS_DIR / name).exists() or (API_DOCS_DIR / name).read_text(encoding="utf-8") != content
    ]
    assert not stale, f"stale under docs/api/: {stale}; regenerate with `python -m services.common.apidocs`"


def test_the_asyncapi_document_beside_them_is_the_current_contracts_document() -> None:
    assert asyncapi_problem() is None, asyncapi_problem()
    beside = (API_DOCS_DIR / "asyncapi.json").read_text(encoding="utf-8")
    assert beside == generated_documents()["asyncapi.json"]
    assert (API_DOCS_DIR / "asyncapi.json").resolve() == (GENERATED_DIR / "asyncapi.json").resolve()


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_each_service_serves_its_openapi_and_swagger_ui(service: str, tmp_path: Path) -> None:
    settings = load_settings(
        {"IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys"),
         "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    )
    init_token_files(settings)
    app = service_definition(service).create_http_app(settings)
    client = app.test_client()
    try:
        served = client.get("/openapi.json")
        assert served.status_code == 200
        document = served.get_json()
        committed = json.loads((API_DOCS_DIR / f"{service}.openapi.json").read_text(encoding="utf-8"))
        assert document == committed
        assert document["openapi"].startswith("3.")
        for path in ("/healthz", "/readyz", "/metrics"):
            assert document["paths"][path]["get"]["security"] == [], path  # no token needed
        assert "503" in document["paths"]["/readyz"]["get"]["responses"]

        page = client.get("/docs")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert "/docs/assets/swagger-ui-bundle.js" in html and "/openapi.json" in html
        assert "http://" not in html and "https://" not in html  # nothing from elsewhere
        for asset in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
            answer = client.get(f"/docs/assets/{asset}")
            assert answer.status_code == 200 and len(answer.data) > 10_000, asset
        assert client.get("/docs/assets/index.html").status_code == 404  # only the assets the page needs
        assert client.get("/docs/assets/../../__init__.py").status_code == 404
        # The documented answers are in the document above, and no view calls through a documenting wrapper
        # (services/common/blueprint.py, issue 17).
        wrapped = [name for name, view in app.view_functions.items() if "alt_response" in view.__code__.co_qualname]
        assert not wrapped
    finally:
        app.extensions["ido.operations"].close()


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_every_operation_that_reaches_a_database_documents_its_503_with_retry_after(service: str) -> None:
    # The breaker and the database-away handler (services/common/http.py) answer 503 on any such route.
    document = json.loads(api_documents()[f"{service}.openapi.json"])
    missing, without_header, documented = [], [], 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            answer = operation["responses"].get("503")
            if path in NO_DATABASE_ROUTES:  # /readyz has a 503 of its own: not ready
                assert answer is None or answer["description"] != DATABASE_AWAY[1], f"{method.upper()} {path}"
                continue
            documented += 1
            if answer is None:
                missing.append(f"{method.upper()} {path}")
            elif "Retry-After" not in answer.get("headers", {}):
                without_header.append(f"{method.upper()} {path}")
    assert documented > 3
    assert not missing, f"no 503 documented: {missing}"
    assert not without_header, f"503 without its Retry-After header: {without_header}"
