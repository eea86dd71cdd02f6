"""What the runner knows of the services and tools: where each declares itself, and what it declares.

Each service declares itself once, as ``DEFINITION`` in ``services/<name>/entrypoints/definition.py``:
its topic and event store (from which its relay is built), its HTTP app, its projector and demo data
if it has them. A tool with commands of its own under `ido` (the audit) declares them as ``COMMANDS``
in ``services/<name>/definition.py``. The runner (``services/common/cli.py``) knows these modules by
path only and loads them with importlib when a command needs them: shared code imports no service
(issue 14; `lint-imports` checks it). To add a service or a tool, add its module path below.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from contracts.topics import TopicSpec

SERVICE_MODULES = {
    "payments": "services.payments.entrypoints.definition",
    "bridge": "services.bridge.entrypoints.definition",
    "ledger": "services.ledger.entrypoints.definition",
}
SERVICE_NAMES = tuple(SERVICE_MODULES)

COMMAND_MODULES = ("services.audit.definition", "services.recovery.definition")
"""Tools with a command group under `ido`, in the order `ido --help` lists them after the runner's own."""


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    topic: TopicSpec
    application_class: type[Any]
    create_http_app: Callable[..., Any]
    """(settings) -> Flask app."""
    http_port: int
    """Where `ido serve` listens unless ``IDO_<NAME>_PORT`` says otherwise."""
    load_demo_data: Callable[..., None] | None = None
    """(settings, application) -> None; loads illustrative demo data into an empty store."""
    run_projector: Callable[..., None] | None = None
    """(group_id=None) -> None; runs the service's projector (`ido project`) until SIGTERM/SIGINT."""
    rebuild_view: Callable[..., Any] | None = None
    """(settings, timeout_s) -> ViewRebuilt; `ido recover view`: drops the projector's view and projects the
    topics into it again up to their ends (a service with a projector declares it)."""
    recorded_side_rows: Callable[..., Any] | None = None
    """(application, [(event_id, partition_key)]) -> SideRows: the rows a save of these events writes beside
    them (``side_rows.py``), which `ido recover store` writes with the events it re-records."""


@dataclass(frozen=True)
class CommandGroup:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    """Adds the group's subcommands and options to its parser (`ido <name> ...`)."""
    run: Callable[[argparse.Namespace], int]
    """(parsed arguments) -> exit status."""


def service_definition(name: str) -> ServiceDefinition:
    if name not in SERVICE_MODULES:
        raise KeyError(f"unknown service {name!r}; one of {', '.join(SERVICE_NAMES)}")
    definition: ServiceDefinition = importlib.import_module(SERVICE_MODULES[name]).DEFINITION
    return definition


def projector() -> Callable[..., None]:
    """The projector `ido project` runs: the one a service declares (the ledger's)."""
    found: Callable[..., None] = _declared_once("run_projector")
    return found


def view_rebuilder() -> Callable[..., Any]:
    """What `ido recover view` runs: the view rebuild the service with the projector declares."""
    return _declared_once("rebuild_view")


def _declared_once(field_name: str) -> Any:
    declared = [getattr(d, field_name) for d in map(service_definition, SERVICE_NAMES)]
    declared = [found for found in declared if found is not None]
    if len(declared) != 1:
        raise RuntimeError(f"expected one service to declare {field_name}, found {len(declared)}")
    return declared[0]


def command_groups() -> list[CommandGroup]:
    groups: list[CommandGroup] = [importlib.import_module(path).COMMANDS for path in COMMAND_MODULES]
    return groups
