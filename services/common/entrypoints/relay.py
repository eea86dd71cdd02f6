"""Runs a service's outbox relay until SIGTERM/SIGINT: `python -m services.common.entrypoints.relay payments`."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import threading
from typing import Any

from kafka import KafkaProducer

from services.common.adapters.kafka import client_config, create_producer, ensure_topics
from services.common.collector import settle
from services.common.config import Settings, load_settings
from services.common.eventstore import build_application
from services.common.kafka_credentials import ADMIN, relay_principal
from services.common.logging_setup import configure_from_settings
from services.common.relay import OutboxRelay
from services.common.relay_pages import WorkerPages, worker_spec
from services.common.signing import build_sealer
from services.common.startup_lock import startup_lock


def _resolve(reference: str) -> Any:
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def build_relay(
    settings: Settings, service: str, application_class: type[Any], topic_name: str, principal: str | None = None
) -> OutboxRelay:
    """The relay of ``service``, logged in as its own principal (``ido-relay-<service>``): it may write its
    topic and nothing else. Its topic is provisioned beforehand (`ido kafka provision`); only on a broker
    without authentication (KAFKA_SECURITY_PROTOCOL=PLAINTEXT) does the relay create it itself."""
    from contracts.topics import by_name

    principal = principal or relay_principal(service)
    try:
        spec = by_name(topic_name)
    except KeyError:
        pass  # not one of ours (a test topic): its owner created it
    else:
        if settings.kafka_security_protocol == "PLAINTEXT":
            replication = settings.kafka_topic_replication
            ensure_topics(client_config(settings, ADMIN), [spec], settings.topic_prefix, replication)
    eventsourcing_env = settings.eventsourcing_env(service)
    application = build_application(application_class, eventsourcing_env)
    sealer = build_sealer(settings, service, topic_name)
    # Each page is read, encoded and sealed by a child process while the one before is sent (bench row 2).
    log = (settings.log_format, settings.log_level, f"relay-{service}")
    pages = WorkerPages(worker_spec(application_class, eventsourcing_env, settings.relay_batch_size, sealer, log))
    pages.start()

    def new_producer() -> KafkaProducer:
        # The password file is read again for every producer: after `ido kafka rotate` the renewed one logs in.
        return create_producer(client_config(settings, principal), client_id=f"relay-{service}")

    relay = OutboxRelay(
        application,
        new_producer(),
        settings.topic(topic_name),
        batch_size=settings.relay_batch_size,
        producer_factory=new_producer,
        sealer=sealer,
        pages=pages,
    )
    # What is built now lives as long as the process: out of the collector's sight, a full collection walks
    # only the pages in flight. Walking everything, they took ~15 % of row 2's run (bench/README.md).
    settle()
    return relay


def run(service: str, application: str | None = None, topic: str | None = None, principal: str | None = None) -> None:
    settings = load_settings()
    if application is None:
        from services.common.definition import service_definition

        definition = service_definition(service)
        application_class: type[Any] = definition.application_class
        topic = definition.topic.name
    else:
        application_class = _resolve(application)
    if topic is None:
        raise SystemExit("--topic is required with --application")
    with startup_lock(settings):  # creates its tables, as the service may at the same moment
        relay = build_relay(settings, service, application_class, topic, principal)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    logging.getLogger(__name__).info("relay %s -> %s from position %s", service, relay.topic, relay.position())
    relay.run_forever(stop, settings.relay_poll_interval_ms)
    relay.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Publish a service's stored events to Kafka, in order.")
    parser.add_argument("service", help="payments, bridge or ledger (or any name with --application)")
    parser.add_argument("--application", help="module:Class of the eventsourcing Application (tests)")
    parser.add_argument("--topic", help="topic name without prefix (with --application)")
    parser.add_argument("--principal", help="Kafka principal (default: ido-relay-<service>; tests)")
    args = parser.parse_args(argv)
    configure_from_settings(load_settings(), service=f"relay-{args.service}")
    run(args.service, args.application, args.topic, args.principal)


if __name__ == "__main__":
    main()
