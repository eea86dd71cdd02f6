"""Bounded everything (issue 16), on all three services: metric labels from fixed sets, deeply nested
JSON refused with 400, writes limited per principal (429 + Retry-After) at the configured value."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from services.common.config import load_settings
from services.common.observability import OPERATIONS_KEY
from tests.support.tokens import TokenFactory

WRITE_LIMIT = 3
# One write of each service, by a role that may make it; the empty body is refused (422), and still counts.
WRITES = {
    "payments": ("POST", "/v1/years/2024/grants", ("ministry",)),
    "bridge": ("POST", "/bridge/frame", ("kb",)),
    "ledger": ("POST", "/v1/municipalities/GM0363/expenditures", ("municipality", "GM0363")),
}


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One set of keys for the module's apps: making them is most of an app's start."""
    return tmp_path_factory.mktemp("keys")


def limited_settings(tmp_path: Path, keys_dir: Path) -> Any:
    return load_settings({
        "IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(keys_dir),
        "IDO_WRITE_RATE_LIMIT_PER_MINUTE": str(WRITE_LIMIT),
    })


@pytest.fixture(params=sorted(WRITES))
def service(
    request: pytest.FixtureRequest, tmp_path: Path, keys_dir: Path
) -> Iterator[tuple[str, Flask, TokenFactory]]:
    from services.common.definition import service_definition

    settings = limited_settings(tmp_path, keys_dir)
    tokens = TokenFactory(settings)
    app = service_definition(request.param).create_http_app(settings)
    yield request.param, app, tokens


def write(app: Flask, tokens: TokenFactory, service: str, body: Any = None, **headers: str) -> Any:
    method, path, token = WRITES[service]
    return app.test_client().open(path, method=method, headers={**tokens.headers(*token), **headers},
                                  json={} if body is None else None, data=body)


def test_a_body_nested_100000_deep_is_refused_with_400_not_a_500(service: Any) -> None:
    name, app, tokens = service
    nested = "[" * 100_000 + "]" * 100_000
    answer = write(app, tokens, name, nested, **{"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
    assert answer.json["status"] == "bad_request" and "_body" in answer.json["errors"]
    # a body as deep as the limit is read as usual (here: refused for its fields, 422)
    assert write(app, tokens, name, "[" * 32 + "]" * 32, **{"Content-Type": "application/json"}).status_code == 422


def test_writes_over_the_configured_limit_get_429_with_retry_after(service: Any) -> None:
    name, app, tokens = service
    answers = [write(app, tokens, name).status_code for _ in range(WRITE_LIMIT)]
    assert 429 not in answers
    over = write(app, tokens, name)
    assert over.status_code == 429
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert over.json["status"] == "too_many_requests" and "IDO_WRITE_RATE_LIMIT_PER_MINUTE" in over.json["message"]
    assert app.test_client().get("/healthz").status_code == 200  # reads are not limited


def test_the_limit_is_per_principal_not_per_address(tmp_path: Path, keys_dir: Path) -> None:
    from services.ledger.entrypoints.definition import create_app

    settings = limited_settings(tmp_path, keys_dir)
    tokens = TokenFactory(settings)
    client = create_app(settings).test_client()  # one address for every caller

    def post(code: str) -> int:
        return client.post(f"/v1/municipalities/{code}/expenditures", json={},
                           headers=tokens.headers("municipality", code)).status_code

    assert [post("GM0363") for _ in range(WRITE_LIMIT + 1)][-1] == 429
    assert post("GM0599") == 422  # another municipality, same address: its own count
    assert client.post("/v1/municipalities/GM0363/expenditures", json={}).status_code == 401  # no token: not counted


def test_metric_labels_come_from_fixed_sets(service: Any) -> None:
    name, app, tokens = service
    client = app.test_client()
    for method in ("FOO", "PROPFIND", "X" * 200, "GET"):
        client.open("/healthz", method=method)
    client.get("/no/such/path/" + "x" * 50)
    operations = app.extensions[OPERATIONS_KEY]
    labels = [
        sample.labels
        for family in (*operations.requests.collect(), *operations.latency.collect())
        for sample in family.samples
    ]
    assert {label["method"] for label in labels} <= {"GET", "other"}
    assert {label["method"] for label in labels} == {"GET", "other"}
    assert {label["route"] for label in labels} == {"/healthz", "<unmatched>"}
    assert all(label.get("status", "200").isdigit() or label["status"] == "other" for label in labels)
