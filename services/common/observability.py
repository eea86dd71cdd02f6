"""Metrics and readiness of one service process (see docs/operations.md).

Each Flask app gets its own ``Operations`` (``app.extensions["ido.operations"]``) with its own
Prometheus registry, so several apps in one process (tests) never share counters. Counted as
things happen, in this process: HTTP requests by route, method and status, with latency
histograms; events recorded by this process. Measured when scraped, from the stores and the
broker, so correct whichever process did the work: events stored, the relay's position and lag,
the broker's reachability and, for the ledger, the projector's lag per partition and the number
of dead-lettered messages.

Several gunicorn workers (``ido serve --workers N``): ``share_counters_between_workers`` puts the
counters in files of one directory (prometheus_client's multiprocess mode), and every scrape, in
whichever worker it lands, sums the files of all of them. The per-process CPU and memory series
are then left out: they would describe only the worker that answered.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from services.common.readiness import KafkaProbe, ProjectionWatch, RelayWatch, short_error
from services.common.recorded_log import note

log = logging.getLogger("ido.events")
disable_created_metrics()  # no `*_created` series beside every counter: half the lines, nothing lost

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def share_counters_between_workers(directory: Path) -> None:
    """Called before gunicorn forks its workers: their counters go to files in ``directory``
    (emptied here, so a restart starts from zero as a single process would)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROCESS_DIR_ENV] = str(directory)
    # prometheus_client picks its value class when first imported, before this could run.
    values.ValueClass = values.get_value_class()


def counters_shared() -> bool:
    return bool(os.environ.get(MULTIPROCESS_DIR_ENV))


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def http_method_label(method: str) -> str:
    """The method, or ``other`` for any the services do not know (``FOO``, ``PROPFIND``, ...)."""
    return method if method in HTTP_METHODS else "other"


def http_status_label(status: int) -> str:
    """The status code, or ``other`` outside 100-599."""
    return str(status) if 100 <= status <= 599 else "other"


MAX_CACHED_LABEL_SETS = 10_000
"""Bounds the children remembered per Operations (methods and statuses are mapped to fixed sets anyway)."""
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OPERATIONS_KEY = "ido.operations"


@dataclass(frozen=True)
class Check:
    ok: bool
    details: dict[str, Any]
    gating: bool = True
    """False: reported by /readyz, but never makes the service unready."""

    def as_dict(self) -> dict[str, Any]:
        answer = {"ok": self.ok, **self.details}
        if not self.gating:
            answer["informational"] = True
        return answer


class Operations:
    def __init__(self, service: str):
        self.service = service
        self.registry = CollectorRegistry()
        if not counters_shared():
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "ido_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ido_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["service", "method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.events_recorded = Counter(
            "ido_events_recorded",
            "Events this process recorded in its event store, by event type.",
            ["service", "event_type"],
            registry=self.registry,
        )
        self.application: Application | None = None
        self.topic: str | None = None
        self.relay: RelayWatch | None = None
        self.probe: KafkaProbe | None = None
        self.projection: ProjectionWatch | None = None
        self.max_relay_lag = 0
        self.extra_checks: dict[str, Callable[[], Check]] = {}
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._event_counters: dict[str, Any] = {}
        self._scraped = _ScrapeCollector(self)
        self.registry.register(self._scraped)

    # -- wiring ---------------------------------------------------------------------------------

    def attach(
        self,
        *,
        application: Application,
        topic: str,
        kafka_config: Callable[[], Mapping[str, Any]],
        max_relay_lag: int,
        timeout_ms: int,
    ) -> None:
        self.application = application
        self.topic = topic
        self.relay = RelayWatch(application, topic)
        self.probe = KafkaProbe(kafka_config, timeout_ms, client_id=f"probe-{self.service}")
        self.max_relay_lag = max_relay_lag
        instrument_application(application, self._recorded)

    def watch_projection(self, projection: ProjectionWatch) -> None:
        self.projection = projection

    def add_check(self, name: str, check: Callable[[], Check]) -> None:
        self.extra_checks[name] = check

    def close(self) -> None:
        if self.probe is not None:
            self.probe.close()

    def exposition(self) -> bytes:
        """The Prometheus text of a scrape: this process's registry, or all workers' counters."""
        if not counters_shared():
            return bytes(generate_latest(self.registry))
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(self._scraped)
        return bytes(generate_latest(registry))

    # -- counted as it happens ------------------------------------------------------------------

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """``route`` is a rule of the app (or ``<unmatched>``): a fixed set. The method and status come
        from the request and the answer, so they are mapped onto fixed sets too: a label value a
        client can choose would let it grow the series (and the scrape, and memory) without bound."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            # ``labels()`` checks and looks up under a lock at every call (issue 17: ~6 % of a posting
            # with the other metrics); the label sets are fixed, so each pair is looked up once.
            method_label, status_label = http_method_label(method), http_status_label(status)
            children = (
                self.requests.labels(self.service, method_label, route, status_label),
                self.latency.labels(self.service, method_label, route),
            )
            if len(self._request_children) < MAX_CACHED_LABEL_SETS:
                self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def _recorded(self, recordings: list[Any]) -> None:
        events = [recording.domain_event for recording in recordings]
        for event in events:
            event_type = getattr(type(event), "EVENT_TYPE", "") or "other"
            counter = self._event_counters.get(event_type)
            if counter is None:
                counter = self._event_counters[event_type] = self.events_recorded.labels(self.service, event_type)
            counter.inc()
        note(events, self.service)  # on the request's one log line, or a line of its own (recorded_log.py)

    # -- readiness ------------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Check] = {}
        if self.application is None or self.relay is None or self.probe is None:
            checks["configuration"] = Check(False, {"error": "no event store attached to this service"})
        else:
            checks["event_store"] = self._check_event_store()
            checks["broker"] = self._check_broker()
            checks["relay"] = self._check_relay(checks["event_store"].ok)
            if self.projection is not None:
                checks["projector"] = self._check_projector(checks["broker"].ok)
        for name, extra in self.extra_checks.items():
            try:
                checks[name] = extra()
            except Exception as error:  # noqa: BLE001 - a failing check is an unready answer, not a 500
                checks[name] = Check(False, {"error": short_error(error)})
        ready = all(check.ok for check in checks.values() if check.gating)
        return ready, {
            "status": "ready" if ready else "unready",
            "service": self.service,
            "checks": {name: check.as_dict() for name, check in checks.items()},
        }

    def _check_event_store(self) -> Check:
        assert self.relay is not None
        try:
            return Check(True, {"head": self.relay.head()})
        except Exception as error:  # noqa: BLE001
            return Check(False, {"error": short_error(error)})

    def _check_broker(self) -> Check:
        assert self.probe is not None
        state = self.probe.check()
        return Check(state.reachable, {"error": state.error} if state.error else {})

    def _check_relay(self, store_ok: bool) -> Check:
        assert self.relay is not None
        details: dict[str, Any] = {"topic": self.topic, "max_lag": self.max_relay_lag}
        if not store_ok:
            return Check(False, {**details, "error": "event store unreachable"})
        try:
            lag = self.relay.lag()
        except Exception as error:  # noqa: BLE001
            return Check(False, {**details, "error": short_error(error)})
        details.update(lag=lag.lag, position=lag.position, head=lag.head)
        if lag.lag > self.max_relay_lag:
            details["error"] = f"{lag.lag} events stored but not on Kafka (more than IDO_READY_MAX_RELAY_LAG)"
        return Check(lag.lag <= self.max_relay_lag, details)

    def _check_projector(self, broker_ok: bool) -> Check:
        assert self.projection is not None
        if not broker_ok:
            return Check(False, {"error": "broker unreachable"}, gating=False)
        try:
            lags = self.projection.lag()
        except Exception as error:  # noqa: BLE001
            return Check(False, {"error": short_error(error)}, gating=False)
        return Check(True, {"lag": sum(p.lag for p in lags)}, gating=False)


def sql_check(engine: Any) -> Check:
    """A database answers ``SELECT 1`` (the ledger's view store)."""
    from sqlalchemy import text

    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001
        return Check(False, {"error": short_error(error)})
    return Check(True, {})


def instrument_application(application: Application, on_saved: Callable[[list[Any]], None]) -> None:
    """Calls ``on_saved(recordings)`` after every ``application.save``; wraps once per instance."""
    application.__dict__["_ido_on_saved"] = on_saved
    if application.__dict__.get("_ido_save_wrapped"):
        return
    original = application.save

    def save(*objs: Any, **kwargs: Any) -> Any:
        recordings = original(*objs, **kwargs)
        callback = application.__dict__.get("_ido_on_saved")
        if callback is not None:
            try:
                callback(recordings)
            except Exception:  # noqa: BLE001 - the events are stored; a metrics fault must not undo the answer
                log.exception("recording metrics failed")
        return recordings

    application.__dict__["save"] = save
    application.__dict__["_ido_save_wrapped"] = True


class _ScrapeCollector:
    """Gauges read from the stores and the broker at each scrape; a failing source is skipped."""

    def __init__(self, operations: Operations):
        self.operations = operations
        self._lock = threading.Lock()

    def describe(self) -> list[Metric]:
        return []  # no collect() at registration: that would reach the stores and the broker

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            yield from self._collect()

    def _collect(self) -> Iterator[Metric]:
        ops = self.operations
        service = ops.service
        started = time.monotonic()
        if ops.relay is not None:
            store_up = GaugeMetricFamily("ido_event_store_up", "1 when the event store answered.", labels=["service"])
            try:
                lag = ops.relay.lag()
            except Exception as error:  # noqa: BLE001
                log.warning("metrics: event store: %s", short_error(error))
                store_up.add_metric([service], 0)
                yield store_up
            else:
                store_up.add_metric([service], 1)
                yield store_up
                stored = GaugeMetricFamily(
                    "ido_events_stored", "Events in the event store (highest notification id).", labels=["service"]
                )
                stored.add_metric([service], lag.head)
                yield stored
                labels = ["service", "topic"]
                position = GaugeMetricFamily(
                    "ido_relay_position", "Notification id the relay has published up to.", labels=labels
                )
                position.add_metric([service, str(ops.topic)], lag.position)
                yield position
                relay_lag = GaugeMetricFamily(
                    "ido_relay_lag_events", "Events stored but not yet acknowledged by Kafka.", labels=labels
                )
                relay_lag.add_metric([service, str(ops.topic)], lag.lag)
                yield relay_lag
        if ops.probe is not None:
            state = ops.probe.check()
            broker = GaugeMetricFamily("ido_broker_up", "1 when the Kafka broker answered.", labels=["service"])
            broker.add_metric([service], 1 if state.reachable else 0)
            yield broker
            if state.reachable and ops.projection is not None:
                yield from self._projection(ops.projection, service)
        duration = GaugeMetricFamily(
            "ido_scrape_duration_seconds", "Time spent reading the stores and the broker for this scrape.",
            labels=["service"],
        )
        duration.add_metric([service], time.monotonic() - started)
        yield duration

    def _projection(self, projection: ProjectionWatch, service: str) -> Iterator[Metric]:
        labels = ["service", "projection", "topic", "partition"]
        try:
            lags = projection.lag()
        except Exception as error:  # noqa: BLE001
            log.warning("metrics: projector lag: %s", short_error(error))
        else:
            lag = GaugeMetricFamily(
                "ido_projector_lag_messages",
                "Messages on a partition the projector has not applied yet (end offset - next offset).",
                labels=labels,
            )
            next_offset = GaugeMetricFamily(
                "ido_projector_next_offset", "Next offset the projector will apply, per partition.", labels=labels
            )
            for found in lags:
                key = [service, projection.name, found.topic, str(found.partition)]
                lag.add_metric(key, found.lag)
                next_offset.add_metric(key, found.next_offset)
            yield lag
            yield next_offset
        try:
            dead = projection.dead_letters()
        except Exception as error:  # noqa: BLE001
            log.warning("metrics: dead letters: %s", short_error(error))
        else:
            dead_letters = GaugeMetricFamily(
                "ido_dead_letter_messages",
                "Messages on the dead-letter topic (refused by a consumer, with the reason in the headers).",
                labels=["service", "topic"],
            )
            dead_letters.add_metric([service, projection.dead_letter_topic], dead)
            yield dead_letters
