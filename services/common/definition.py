"""What the runner needs to know of a service: its name, topic, event store and HTTP app."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from contracts.topics import TopicSpec

SERVICE_NAMES = ("payments", "bridge", "ledger")


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    topic: TopicSpec
    application_class: type[Any]
    create_http_app: Callable[..., Any]
    """(settings) -> Flask app."""
    load_demo_data: Callable[..., None] | None = None
    """(settings, application) -> None; loads illustrative demo data into an empty store."""


def service_definition(name: str) -> ServiceDefinition:
    if name not in SERVICE_NAMES:
        raise KeyError(f"unknown service {name!r}; one of {', '.join(SERVICE_NAMES)}")
    module = importlib.import_module(f"services.{name}.entrypoints.definition")
    definition: ServiceDefinition = module.DEFINITION
    return definition
