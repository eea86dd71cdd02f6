"""The access line written straight to our JSON handlers is the line the logging module would write.

``log_direct`` (services/common/direct_log.py) skips the log record when every handler on the way is
one of ours; these tests hold its lines byte for byte equal to ``Logger.log``'s, and show that every
other set-up still goes through the logging module (so a filter, another handler or a capture sees
the record as before).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.direct_log import log_direct
from services.common.logging_setup import REQUEST_ID, SERVICE, log_handler

NOW = 1_733_420_697.9871


@pytest.fixture
def frozen_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways stamp the line with the same instant."""
    monkeypatch.setattr(time, "time", lambda: NOW)
    monkeypatch.setattr(time, "time_ns", lambda: int(NOW * 1e9))


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of its own, not propagating to the root, with none of pytest's handlers: pytest attaches its
    capture to every non-propagating logger, and a handler not ours sends every line the logging module's way."""
    made = logging.getLogger("ido.test.direct")
    made.propagate = False
    made.setLevel(logging.DEBUG)
    kept = list(made.handlers)
    made.handlers = []
    try:
        yield made
    finally:
        made.handlers = kept
        for found in list(made.filters):
            made.removeFilter(found)


def both_ways(
    logger: logging.Logger, level: int, msg: str, args: tuple[Any, ...], extra: dict[str, Any]
) -> tuple[str, str]:
    """(what log_direct wrote, what Logger.log wrote), each through a fresh handler of ours. The first makes no
    record (else the comparison would hold trivially: both through the logging module)."""
    written = []
    made: list[str] = []
    make_record = logger.makeRecord

    def counted(*record_args: Any, **kwargs: Any) -> logging.LogRecord:
        made.append("record")
        return make_record(*record_args, **kwargs)

    for direct in (True, False):
        stream = io.StringIO()
        logger.handlers = [log_handler(stream, "json")]
        made.clear()
        logger.makeRecord = counted  # type: ignore[method-assign]
        try:
            if direct:
                log_direct(logger, level, msg, args, extra)
            else:
                logger.log(level, msg, *args, extra=dict(extra))
        finally:
            del logger.makeRecord
            logger.handlers = []
        assert made == ([] if direct else ["record"])
        written.append(stream.getvalue())
    return written[0], written[1]


_NAMES = st.sampled_from(
    ["service", "request_id", "method", "route", "path", "status", "duration_ms", "role", "municipality",
     "event_ids", "stream_ids", "_private", "password", "auth_token", "detail", "ts", "level"]
)
_TEXTS = st.one_of(st.text(max_size=10), st.sampled_from(["Bearer abc.def", "eyJa.eyJb.c", "password='x'", "é\u2028"]))
_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _TEXTS),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_TEXTS, inner, max_size=3)),
    max_leaves=8,
)


@given(
    extra=st.dictionaries(_NAMES, _VALUES, max_size=8),
    level=st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, 25]),
    args=st.tuples(_TEXTS, st.integers()),
    request_id=st.one_of(st.none(), st.text(max_size=6)),
    service=st.one_of(st.none(), st.sampled_from(["ledger", "payments"])),
)
# The fixtures hold for every input: the time stays frozen, and both_ways removes the handlers it adds.
@settings(max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_direct_line_is_the_logging_modules_line(
    frozen_time: None, logger: logging.Logger, extra: dict[str, Any], level: int, args: tuple[Any, ...],
    request_id: str | None, service: str | None,
) -> None:
    """Any extra fields (None ones, secret-like names, ones named like the line's own keys, texts to mask),
    any level, with and without a request id and service in the context."""
    request_token, service_token = REQUEST_ID.set(request_id), SERVICE.set(service)
    try:
        direct, through_logging = both_ways(logger, level, "%s did %s", args, extra)
    finally:
        REQUEST_ID.reset(request_token)
        SERVICE.reset(service_token)
    assert direct == through_logging
    assert direct.endswith("\n") and direct.count("\n") == 1


def test_an_access_line_is_the_logging_modules_line(frozen_time: None, logger: logging.Logger) -> None:
    """The line http.py writes for a posting, big integers (orjson refuses them) and a mapping argument."""
    extra = {
        "service": "ledger", "request_id": "0" * 32, "method": "POST",
        "route": "/v1/municipalities/<code>/expenditures", "path": "/v1/municipalities/GM0363/expenditures",
        "status": 201, "duration_ms": 3.21, "role": "municipality", "municipality": "GM0363",
        "event_ids": ["e-1"], "event_types": ["ExpenditureRecorded"], "stream_ids": ["s-1"],
    }
    direct, through_logging = both_ways(logger, logging.INFO, "%s %s %s", ("POST", extra["route"], 201), extra)
    assert direct == through_logging and '"status":201' in direct
    big = both_ways(logger, logging.WARNING, "big", (), {"count": 2**70})
    assert big[0] == big[1] and "1180591620717411303424" in big[0]
    named = both_ways(logger, logging.INFO, "%(who)s", ({"who": "me"},), {})
    assert named[0] == named[1] and '"message":"me"' in named[0]


def test_a_handler_not_ours_gets_the_record(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    """A capture (or any other handler) on the way: the record goes through the logging module, to it and to ours."""
    stream = io.StringIO()
    logger.addHandler(log_handler(stream, "json"))
    logger.addHandler(caplog.handler)
    log_direct(logger, logging.INFO, "%s", ("seen",), {"route": "/r"})
    assert [record.getMessage() for record in caplog.records] == ["seen"]
    assert caplog.records[0].route == "/r"  # type: ignore[attr-defined]
    assert '"message":"seen"' in stream.getvalue()


def test_a_filter_a_level_or_the_end_of_propagation_is_honoured(logger: logging.Logger) -> None:
    stream = io.StringIO()
    ours = log_handler(stream, "json")
    logger.addHandler(ours)

    class DropAll(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return False

    dropping = DropAll()
    logger.addFilter(dropping)
    log_direct(logger, logging.INFO, "filtered", (), {})
    logger.removeFilter(dropping)
    assert stream.getvalue() == ""

    ours.setLevel(logging.WARNING)
    log_direct(logger, logging.INFO, "below the handler's level", (), {})
    assert stream.getvalue() == ""
    ours.setLevel(logging.NOTSET)

    logger.setLevel(logging.WARNING)
    log_direct(logger, logging.INFO, "below the logger's level", (), {})
    assert stream.getvalue() == ""
    logger.setLevel(logging.DEBUG)

    child = logging.getLogger("ido.test.direct.child")
    child.propagate = False
    log_direct(child, logging.INFO, "not propagated", (), {})
    assert stream.getvalue() == ""
    child.propagate = True
    log_direct(child, logging.INFO, "propagated", (), {})
    assert '"message":"propagated"' in stream.getvalue() and '"logger":"ido.test.direct.child"' in stream.getvalue()


def test_an_extra_field_named_like_a_records_attribute_is_refused_as_logging_refuses_it(logger: logging.Logger) -> None:
    logger.addHandler(log_handler(io.StringIO(), "json"))
    with pytest.raises(KeyError, match="overwrite"):
        log_direct(logger, logging.INFO, "x", (), {"msg": "forged"})


def test_a_failing_stream_is_the_handlers_error_not_the_requests(logger: logging.Logger) -> None:
    """As StreamHandler.emit: a write that fails goes to the handler's handleError, the caller goes on."""

    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    handler = log_handler(Broken(), "json")
    failures: list[logging.LogRecord] = []
    handler.handleError = failures.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    log_direct(logger, logging.INFO, "%s lost", ("line",), {"route": "/r"})
    assert [record.getMessage() for record in failures] == ["line lost"]
