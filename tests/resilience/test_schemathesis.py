"""schemathesis against each service's OpenAPI: no 5xx, no answer that breaks the documented schema.

Each service runs in-process (``schemathesis.openapi.from_wsgi("/openapi.json", app)``) on a
SQLite store prepared so that requests can succeed (payments: the 2024 frame and annex; bridge:
the frame, a library, its grant; ledger: a posting), with a token of the role that may write.
Every operation is fuzzed with valid (positive) and invalid (negative) data, once with random path
parameters and once with the prepared ones (year 2024, GM0363, the library), a bounded number of
examples each. Checks: no server error (a documented 503 with Retry-After aside), status codes,
content types and bodies as documented, and invalid data never accepted by a write. Every
failure is collected, then reported together.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.resilience.figures import Figures
from tests.resilience.test_bad_input import LIBRARY, Worlds


@schemathesis.check
def no_server_error_but_a_documented_503(ctx: Any, response: Any, case: Any) -> bool | None:
    """Like ``not_a_server_error``, except a 503 that the operation documents and that says when to
    retry (``Retry-After``): the ledger's read-your-writes wait for an event not projected yet."""
    status = response.status_code
    if status < 500:
        return None
    documented = str(status) in (case.operation.definition.raw.get("responses") or {})
    if status == 503 and documented and response.headers.get("retry-after"):
        return None
    raise AssertionError(f"server error {status}: {response.text[:300]}")


CHECKS = [
    no_server_error_but_a_documented_503, status_code_conformance, content_type_conformance,
    response_schema_conformance,
]
SKIPPED = ("/readyz", "/metrics")
"""Operators' probes: their 503 (broker unreachable: none runs here) is documented and by design;
tests/operators covers them."""
KNOWN = {"year": 2024, "code": "GM0363", "library_id": LIBRARY}
FAST_EXAMPLES = int(os.environ.get("IDO_SCHEMATHESIS_EXAMPLES", "3"))
SLOW_EXAMPLES = int(os.environ.get("IDO_SCHEMATHESIS_SLOW_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Worlds:
    worlds = Worlds(tmp_path_factory.mktemp("fuzz"))
    posted = worlds.clients["ledger"].post(
        "/v1/municipalities/GM0363/expenditures", headers=worlds.headers["ledger"],
        json={"grant_year": 2024, "category": "promotion", "amount_cents": 1000, "booked_on": "2024-03-01",
              "counterparty": {"id": "PRINT-1", "name": "Printer"}, "description": "flyers", "reference": "R1"},
    )
    assert posted.status_code == 201
    return worlds


def fuzz(worlds: Worlds, service: str, examples: int) -> tuple[int, list[str]]:
    app = worlds.clients[service].application
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    headers = worlds.headers[service]
    failures: list[str] = []
    calls = Counter[str]()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIPPED:
            continue
        pinned = {p.name: KNOWN[p.name] for p in operation.path_parameters if p.name in KNOWN}
        variants: list[dict[str, Any] | None] = [None, pinned] if pinned else [None]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for path_parameters in variants:
                strategy = operation.as_strategy(mode, path_parameters=path_parameters)
                # Writes must refuse invalid data; reads ignore unknown query parameters (HTTP custom).
                refuse = mode is GenerationMode.NEGATIVE and operation.method.upper() != "GET"
                checks = [*CHECKS, negative_data_rejection] if refuse else CHECKS
                _run_examples(strategy, examples, checks, headers, operation.label, mode.value, calls, failures)
    return sum(calls.values()), failures


def _run_examples(
    strategy: Any, examples: int, checks: list[Any], headers: dict[str, str], label: str, mode: str,
    calls: Counter[str], failures: list[str],
) -> None:
    @given(case=strategy)
    @hypothesis.settings(
        max_examples=examples, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.generate],
    )
    def run(case: Any) -> None:
        response = case.call(headers=headers)
        calls[label] += 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - collect every failure, report together
            inner = error.exceptions if isinstance(error, BaseExceptionGroup) else [error]
            what = "; ".join(
                f"{type(e).__name__}: {(getattr(e, 'title', '') or str(e)).splitlines()[0][:160]}" for e in inner
            )
            body = response.text[:160].replace("\n", " ")
            failures.append(
                f"{label} [{mode}] {response.status_code}: {what} | query {case.query} path {case.path_parameters} "
                f"body {str(case.body)[:120]} | answer: {body}"
            )

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        pass  # no invalid request exists for this operation (e.g. no parameters at all)


def _unique(failures: list[str]) -> list[str]:
    """One line per (operation, mode, status, check): the bodies differ, the finding does not."""
    seen: dict[str, str] = {}
    for failure in failures:
        key = failure.split(" | ")[0]
        seen.setdefault(key, failure)
    return sorted(seen.values())


@pytest.mark.parametrize("service", ["payments", "bridge", "ledger"])
def test_fuzzing_finds_no_5xx_and_no_answer_off_the_documented_schema(
    worlds: Worlds, service: str, figures: Figures
) -> None:
    calls, failures = fuzz(worlds, service, FAST_EXAMPLES)
    figures.add_inputs(f"schemathesis ({service})", calls)
    assert calls > 0
    assert not failures, "\n".join(_unique(failures))


@pytest.mark.slow
@pytest.mark.parametrize("service", ["payments", "bridge", "ledger"])
def test_longer_fuzzing_finds_no_5xx_and_no_answer_off_the_documented_schema(
    tmp_path: Path, service: str, figures: Figures
) -> None:
    worlds = Worlds(tmp_path)
    calls, failures = fuzz(worlds, service, SLOW_EXAMPLES)
    figures.add_inputs(f"schemathesis ({service})", calls)
    assert not failures, "\n".join(_unique(failures))


@pytest.mark.parametrize(
    ("service", "path"),
    [("payments", "/v1/years/2024/grants"), ("bridge", "/bridge/libraries"),
     ("ledger", "/v1/municipalities/GM0363/expenditures")],
)
def test_a_method_not_allowed_says_which_are(worlds: Worlds, service: str, path: str) -> None:
    response = worlds.clients[service].delete(path, headers=worlds.headers[service])
    assert response.status_code == 405
    assert response.headers.get("Allow"), dict(response.headers)
