"""Every answer carries an X-Request-Id (the caller's, or a new one); the logs are JSON lines with that
request id and the recorded events' ids, and never a token, an Authorization header or a body."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.common.config import Settings
from services.common.logging_setup import _clean, _utc_milliseconds, configure_logging, log_handler, redact
from services.payments.entrypoints.definition import create_app
from tests.support.json_logs import json_lines_on_root
from tests.support.tokens import TokenFactory


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Our JSON handler on the root logger for one test."""
    with json_lines_on_root(logging.DEBUG) as stream:
        yield stream


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_request_id_is_echoed_or_made_and_logs_carry_it_and_the_event_ids(
    settings: Settings, tokens: TokenFactory, json_lines: io.StringIO
) -> None:
    app = create_app(settings)
    client = app.test_client()
    token = tokens.token("ministry")
    secret_reason = "reason-text-that-must-not-be-logged"
    try:
        response = client.put(
            "/v1/years/2024/frame",
            json={"frame_cents": 1_713_000_000, "decided_on": "2023-12-01"},
            headers={"Authorization": f"Bearer {token}", "X-Request-Id": "ops-test-0001"},
        )
        assert response.status_code == 201, response.json
        assert response.headers["X-Request-Id"] == "ops-test-0001"
        amended = client.post(
            "/v1/years/2024/frame/amendments",
            json={"frame_cents": 1_713_500_000, "decided_on": "2024-06-01", "reason": secret_reason},
            headers={"Authorization": f"Bearer {token}", "X-Request-Id": "ops-test-0002"},
        )
        assert amended.status_code in (200, 201), amended.json

        made = client.get("/healthz").headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        refused = client.get("/healthz", headers={"X-Request-Id": "no spaces or <html> please"})
        assert refused.headers["X-Request-Id"] != "no spaces or <html> please"
        assert re.fullmatch(r"[0-9a-f]{32}", refused.headers["X-Request-Id"])
        unauthorised = client.get("/v1/years/2024/grants", headers={"X-Request-Id": "ops-test-0003"})
        assert unauthorised.status_code == 401 and unauthorised.headers["X-Request-Id"] == "ops-test-0003"
    finally:
        app.extensions["ido.operations"].close()
        app.extensions["payments.application"].close()

    logged = records(json_lines)
    access = [r for r in logged if r["logger"] == "ido.http"]
    first = next(r for r in access if r["request_id"] == "ops-test-0001")
    assert first["route"] == "/v1/years/<int:year>/frame" and first["status"] == 201 and first["method"] == "PUT"
    assert first["role"] == "ministry" and first["service"] == "payments"
    assert isinstance(first["duration_ms"], float) and first["ts"] and first["level"] == "INFO"
    # One line per request (issue 17): the access line names the events the request recorded.
    assert not [r for r in logged if r["logger"] == "ido.events" and r["request_id"] == "ops-test-0001"]
    event_ids = first["event_ids"]
    assert isinstance(event_ids, list) and event_ids and all(re.fullmatch(r"[0-9a-f-]{36}", e) for e in event_ids)
    assert first["event_types"] == ["GrantFrameSet"] and first["stream_ids"]
    assert any(r["request_id"] == "ops-test-0003" and r["status"] == 401 for r in access)

    everything = json_lines.getvalue()
    assert token not in everything
    assert token.split(".")[1] not in everything  # not even the claims part
    assert "Bearer" not in everything and "Authorization" not in everything
    assert secret_reason not in everything  # bodies are never logged


def test_redaction_masks_tokens_and_drops_secret_fields() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("ido.test.redaction")
    logger.propagate = False
    handler = log_handler(stream, "json")
    logger.addHandler(handler)
    try:
        jwt_like = "eyJhbGciOiJFZERTQSJ9.eyJyb2xlIjoibWluaXN0cnkifQ.c2lnbmF0dXJl"
        logger.warning("got Authorization: Bearer %s from a client", jwt_like,
                       extra={"authorization": "Bearer x", "token": jwt_like, "detail": {"password": "p", "ok": 1}})
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert jwt_like not in stream.getvalue()
    assert "Bearer [redacted]" in line["message"]
    assert "authorization" not in line and "token" not in line
    assert line["detail"] == {"ok": 1}
    assert redact(f"x {jwt_like} y") == "x [redacted-jwt] y"


def test_configure_logging_installs_one_json_handler_on_the_root() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        configure_logging("json", "INFO", stream=stream)
        configure_logging("json", "INFO", stream=stream)  # twice: still one handler
        assert len(root.handlers) == 1
        logging.getLogger("ido.test").info("hello", extra={"event_ids": ["e-1"]})
        line = json.loads(stream.getvalue().splitlines()[-1])
        assert line["message"] == "hello" and line["event_ids"] == ["e-1"] and line["level"] == "INFO"
        # No line shows where it was logged from, so no record looks it up on the stack (issue 17).
        assert not {"pathname", "lineno", "funcName"} & line.keys()
        records: list[logging.LogRecord] = []
        catcher = logging.Handler()
        catcher.emit = records.append  # type: ignore[method-assign]
        root.addHandler(catcher)
        logging.getLogger("ido.test").info("where from?")
        root.removeHandler(catcher)
        assert (records[0].funcName, records[0].lineno) == ("(unknown function)", 0)
        # The process id stays: gunicorn's own lines show it (tests/operators/test_workers.py).
        assert records[0].process is not None
        configure_logging("text", "INFO", stream=stream)
        logging.getLogger("ido.test").info("plain")
        assert stream.getvalue().splitlines()[-1].endswith("ido.test INFO plain")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)


def test_a_line_orjson_refuses_is_written_the_standard_librarys_way() -> None:
    """Lines are written with orjson (issue 17); what it refuses (an integer beyond 64 bits) still logs."""
    stream = io.StringIO()
    logger = logging.getLogger("ido.test.orjson")
    logger.propagate = False
    handler = log_handler(stream, "json")
    logger.addHandler(handler)
    try:
        logger.warning("plain", extra={"count": 3, "names": ["é", "b"], "nested": {"a": [1.5, None, True]}})
        logger.warning("big", extra={"count": 2**70})
    finally:
        logger.removeHandler(handler)
    plain, big = (json.loads(line) for line in stream.getvalue().splitlines())
    assert plain["count"] == 3 and plain["names"] == ["é", "b"] and plain["nested"] == {"a": [1.5, None, True]}
    assert big["message"] == "big" and big["count"] == 2**70


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))  # to 2100
@example(1_733_420_697.985).via("an exact millisecond")
@example(1_733_420_697.9995).via("half a millisecond before the next second")
@example(1_733_420_697.9999996).via("rounds to the next second in microseconds")
@settings(max_examples=2_000)
def test_a_lines_time_is_the_standard_librarys(created: float) -> None:
    """The line's ``ts`` (made from a cached second since issue 17's twenty-fifth round) is what
    ``datetime`` gives, to the millisecond, at every instant."""
    expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert _utc_milliseconds(created) == expected
    assert _utc_milliseconds(created) == expected  # and again, from the cached second


def _clean_before(value: Any) -> Any:
    """``_clean`` as it was before its fast path for exact types (the oracle)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _clean_before(v) for k, v in value.items() if not re.search(
            r"(authori[sz]ation|token|password|passwd|cookie|secret|private)", str(k), re.IGNORECASE)}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean_before(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redact(str(value))


class _Text(str):
    pass


_TEXTS = st.one_of(
    st.text(max_size=12), st.sampled_from(["Bearer abc.def", "eyJa.eyJb.c", "password='x'", "token"]),
    st.builds(_Text, st.text(max_size=5)),
)
_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _TEXTS),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner), st.frozensets(st.integers(), max_size=3),
        st.dictionaries(_TEXTS, inner, max_size=4),
    ),
    max_leaves=12,
)


@given(_VALUES)
@settings(max_examples=1_000)
def test_a_lines_values_are_cleaned_as_before(value: Any) -> None:
    cleaned, before = _clean(value), _clean_before(value)
    assert cleaned == before
    assert repr(cleaned) == repr(before)  # the same types too (True is not 1, 1.0 is not 1)
