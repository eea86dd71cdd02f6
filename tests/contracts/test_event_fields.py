"""Every domain event class and its published payload schema declare the same fields.

An event's fields are written twice: the nested event class in ``services/<name>/domain/`` (what
the aggregate stores and the relay publishes) and the payload of its JSON Schema in
``contracts/generated/`` (what consumers validate). They agree when every event the domain can
write is valid under the schema and the schema documents nothing the domain never writes:
- the same field names;
- the same JSON type per field (str string, int integer, bool boolean, dict object, list array),
  and ``None`` allowed on both sides or on neither;
- every field the schema requires is one the event always carries (no default in the class).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import services
from contracts.export import GENERATED_DIR
from services.common.domain.chained import METADATA_FIELDS, ChainedAggregate

JSON_TYPES = {"str": "string", "int": "integer", "bool": "boolean", "dict": "object", "list": "array"}
DOCUMENT = re.compile(r"^(?P<type>[A-Za-z]+)\.v(?P<version>\d+)\.schema\.json$")


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def domain_events() -> dict[tuple[str, int], type]:
    """(event type, version) -> the event class, from every domain module of the services."""
    for module in pkgutil.walk_packages(services.__path__, "services."):
        if ".domain" in module.name:
            importlib.import_module(module.name)
    found: dict[tuple[str, int], type] = {}
    for aggregate in _subclasses(ChainedAggregate):
        if not aggregate.__module__.startswith("services."):
            continue  # test-only aggregates (tests/support/toy.py) have test-only contracts
        for value in vars(aggregate).values():
            if isinstance(value, type) and issubclass(value, ChainedAggregate.Event) and value.EVENT_TYPE:
                key = (value.EVENT_TYPE, getattr(value, "class_version", 1))
                assert key not in found or found[key] is value, f"{key} is declared by two classes"
                found[key] = value
    return found


def published_payloads() -> dict[tuple[str, int], dict[str, Any]]:
    """(event type, version) -> the payload's JSON Schema, as published in contracts/generated."""
    payloads: dict[tuple[str, int], dict[str, Any]] = {}
    for path in sorted(Path(GENERATED_DIR).iterdir()):
        if match := DOCUMENT.match(path.name):
            document = json.loads(path.read_text())
            payloads[(match["type"], int(match["version"]))] = document["properties"]["payload"]
    return payloads


def json_type(annotation: str) -> set[str]:
    """The JSON types a field's annotation allows (``str | None`` -> {"string", "null"})."""
    types: set[str] = set()
    for part in (p.strip() for p in annotation.split("|")):
        if part == "None":
            types.add("null")
            continue
        base = part.split("[", 1)[0]
        if base not in JSON_TYPES:
            raise AssertionError(f"event field annotation {annotation!r} has no JSON type here; add it to JSON_TYPES")
        types.add(JSON_TYPES[base])
    return types


def event_fields(event_class: type) -> dict[str, tuple[set[str], bool]]:
    """Payload field -> (JSON types, always carried) of a domain event class."""
    return {
        f.name: (json_type(str(f.type)), f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        for f in dataclasses.fields(event_class)
        if f.name not in METADATA_FIELDS
    }


def disagreements(event_class: type, payload: dict[str, Any]) -> list[str]:
    fields = event_fields(event_class)
    properties: dict[str, Any] = payload.get("properties", {})
    required = set(payload.get("required", []))
    found = [f"{name}: in the event class, not in the schema" for name in sorted(fields.keys() - properties.keys())]
    found += [f"{name}: in the schema, not in the event class" for name in sorted(properties.keys() - fields.keys())]
    for name in sorted(fields.keys() & properties.keys()):
        types, always = fields[name]
        declared = properties[name].get("type")
        schema_types = set(declared) if isinstance(declared, list) else {declared}
        if types != schema_types:
            found.append(f"{name}: the event class allows {sorted(types)}, the schema {sorted(schema_types)}")
        if name in required and not always:
            found.append(f"{name}: the schema requires it, the event class has a default (may leave it out)")
    return found


EVENTS = domain_events()
PAYLOADS = published_payloads()


def test_every_published_event_type_has_one_domain_class_and_every_class_a_schema() -> None:
    assert len(EVENTS) >= 21, sorted(EVENTS)  # three services: payments, bridge, ledger
    assert {producer for producer in (c.__module__.split(".")[1] for c in EVENTS.values())} == {
        "payments",
        "bridge",
        "ledger",
    }
    assert sorted(EVENTS) == sorted(PAYLOADS)


@pytest.mark.parametrize("key", sorted(EVENTS), ids=lambda key: f"{key[0]}.v{key[1]}")
def test_the_domain_event_class_and_its_payload_schema_agree(key: tuple[str, int]) -> None:
    assert key in PAYLOADS, f"{key[0]} v{key[1]} has no published schema in {GENERATED_DIR}"
    assert disagreements(EVENTS[key], PAYLOADS[key]) == []


def test_a_disagreement_is_caught() -> None:
    """Deliberately wrong pairs: each kind of disagreement is named, field by field."""
    closed = EVENTS[("YearClosed", 1)]
    schema = PAYLOADS[("YearClosed", 1)]
    assert disagreements(closed, schema) == []

    # A class paired with another event's schema.
    crossed = disagreements(closed, PAYLOADS[("ExpenditureReversed", 1)])
    assert "closed_by: in the event class, not in the schema" in crossed
    assert "reverses_event_id: in the schema, not in the event class" in crossed

    # A field renamed in the schema only.
    renamed = json.loads(json.dumps(schema))
    renamed["properties"]["closed_at"] = renamed["properties"].pop("closed_on")
    assert disagreements(closed, renamed) == [
        "closed_on: in the event class, not in the schema",
        "closed_at: in the schema, not in the event class",
    ]

    # A field retyped, or made nullable, in the schema only.
    retyped = json.loads(json.dumps(schema))
    retyped["properties"]["grant_year"]["type"] = "string"
    retyped["properties"]["final_account"]["type"] = ["boolean", "null"]
    assert disagreements(closed, retyped) == [
        "final_account: the event class allows ['boolean'], the schema ['boolean', 'null']",
        "grant_year: the event class allows ['integer'], the schema ['string']",
    ]

    # A field the schema requires but the class may leave out.
    @dataclasses.dataclass(frozen=True)
    class Lenient:
        municipality_code: str
        grant_year: int
        closed_on: str
        closed_by: str
        final_account: bool = False

    assert disagreements(Lenient, schema) == [
        "final_account: the schema requires it, the event class has a default (may leave it out)"
    ]
