"""One text rule for every text field (issue 16, Must show 4): no control character anywhere.

The attack: a reversal whose ``reason`` holds ``\\u0000`` was stored and published, then refused by
PostgreSQL in the projector and dead-lettered: the store said reversed, the view still counted the
money. The write routes are enumerated from the services' own OpenAPI documents (as the
authorisation matrix enumerates the routes), so a text field added later is tested too.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from marshmallow import fields, validate

from contracts import ContractViolation, compute_hash, validate_envelope
from contracts.canonical import canonical_json
from contracts.events.fields import PlainText, WholeMatch
from contracts.export import GENERATED_DIR
from contracts.message_check import MessageCheck
from contracts.registry import published_contracts
from contracts.text import MULTI_LINE_TEXT_PATTERN, SINGLE_LINE_TEXT_PATTERN, text_problem
from tests.contracts.test_contracts import sample_envelope
from tests.resilience.test_authorization_matrix import CELLS, Cell, World, headers_for

BAD = {"NUL": "\u0000", "BEL": "\u0007", "ESC": "\u001b", "NEL": "\u0085"}
TEXT_PATTERNS = {MULTI_LINE_TEXT_PATTERN, SINGLE_LINE_TEXT_PATTERN}
WRITES = [c for c in CELLS if c.method in ("POST", "PUT") and c.content_type is None]


def operation(world: World, cell: Cell) -> dict[str, Any]:
    """The OpenAPI operation of the cell's route, from the service's own document."""
    spec: dict[str, Any] = world.client.get("/openapi.json").json or {}
    path = cell.path.split("?")[0]
    for template, item in spec["paths"].items():
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path) and cell.method.lower() in item:
            return {"spec": spec, **item[cell.method.lower()]}
    raise AssertionError(f"{cell.method} {path} is not in the OpenAPI document")


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def string_fields(
    spec: dict[str, Any], schema: dict[str, Any], prefix: str = ""
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted path, property) of every string a body may carry (list items as ``.0``, each ``anyOf``
    branch); dates and ids with a ``format`` are the parsers' business, not the text rule's."""
    schema = resolve(spec, schema)
    for branch in schema.get("anyOf", []) + schema.get("allOf", []) + schema.get("oneOf", []):
        yield from string_fields(spec, branch, prefix)
    if schema.get("type") == "array":
        yield from string_fields(spec, schema["items"], f"{prefix}.0" if prefix else "0")
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        prop = resolve(spec, prop)
        if prop.get("type") == "string" and "format" not in prop:
            yield path, prop
        elif prop.get("type") in ("object", "array") or {"properties", "anyOf", "allOf", "oneOf"} & set(prop):
            yield from string_fields(spec, prop, path)


def with_value(body: Any, path: str, value: str) -> Any:
    """The body with ``value`` at ``path``, creating the objects and lists on the way."""
    body = copy.deepcopy(body) if isinstance(body, dict) else {}
    node: Any = body
    parts = path.split(".")
    for part, following in zip(parts, parts[1:], strict=False):
        empty: Any = [] if following.isdigit() else {}
        if part.isdigit():
            while len(node) <= int(part):
                node.append(copy.deepcopy(empty))
            node = node[int(part)]
        else:
            if not isinstance(node.get(part), (dict, list)):
                node[part] = empty
            node = node[part]
    last = parts[-1]
    if last.isdigit():
        while len(node) <= int(last):
            node.append(None)
        node[int(last)] = value
    else:
        node[last] = value
    return body


def store_size(world: World) -> int:
    return int(world.app.recorder.max_notification_id() or 0)


_worlds: dict[tuple[str, str], World] = {}


def world_of(cell: Cell, tmp_path_factory: pytest.TempPathFactory) -> World:
    key = (cell.service, cell.world)
    if key not in _worlds:
        _worlds[key] = World(tmp_path_factory.mktemp(f"text-{cell.service}-{cell.world}"), cell.service, cell.world)
    return _worlds[key]


def send(world: World, cell: Cell, body: Any, extra: dict[str, str] | None = None) -> Any:
    path = cell.path
    for placeholder, value in world.values.items():
        if isinstance(value, str):
            path = path.replace(placeholder, value)
    headers = {**headers_for(world.settings, cell.allowed[0]), **(extra or {})}
    return world.client.open(path, method=cell.method, json=body, headers=headers)


def baseline(world: World, cell: Cell) -> Any:
    return world.values.get(cell.body, cell.body) if isinstance(cell.body, str) else cell.body


@pytest.mark.parametrize("cell", WRITES, ids=lambda c: f"{c.service} {c.method} {c.path}")
def test_every_text_field_of_every_write_route_refuses_control_characters(
    cell: Cell, tmp_path_factory: pytest.TempPathFactory
) -> None:
    world = world_of(cell, tmp_path_factory)
    found = operation(world, cell)
    body_schema = found.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    texts = list(string_fields(found["spec"], body_schema))
    queries = [p for p in found.get("parameters", []) if p.get("in") == "query"
               and p.get("schema", {}).get("type") == "string" and "format" not in p.get("schema", {})]
    before = store_size(world)
    accepted = {}
    for path, _prop in texts:
        for name, char in BAD.items():
            answer = send(world, cell, with_value(baseline(world, cell), path, f"ok{char}"))
            if answer.status_code != 422 or path not in (answer.json or {}).get("errors", {}):
                accepted[f"{path} with {name}"] = (answer.status_code, answer.json)
    for parameter in queries:
        for name, char in BAD.items():
            query = f"{parameter['name']}=ok{char}"
            joined = f"{cell.path}&{query}" if "?" in cell.path else f"{cell.path}?{query}"
            answer = send(world, Cell(cell.service, cell.method, joined, cell.allowed), baseline(world, cell))
            if answer.status_code != 422 or parameter["name"] not in (answer.json or {}).get("errors", {}):
                accepted[f"?{parameter['name']} with {name}"] = (answer.status_code, answer.json)
    assert not accepted, accepted
    assert store_size(world) == before, "a refused request stored something"


def test_the_enumeration_finds_the_text_fields_the_attack_needs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The meta-test is only as good as its enumeration: the fields of the reported attacks are in it."""
    seen = set()
    for cell in WRITES:
        world = world_of(cell, tmp_path_factory)
        found = operation(world, cell)
        schema = found.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        seen |= {(cell.service, path) for path, _ in string_fields(found["spec"], schema)}
    for expected in [("ledger", "reason"), ("ledger", "description"), ("ledger", "counterparty.name"),
                     ("payments", "municipality_name"), ("payments", "books.offsets.0.topic"),
                     ("bridge", "name"), ("bridge", "service_area.0.municipality_code")]:
        assert expected in seen, expected


def test_single_line_fields_refuse_line_breaks_and_prose_keeps_them(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    cell = next(c for c in WRITES if c.service == "ledger" and c.path.endswith("/expenditures"))
    world = world_of(cell, tmp_path_factory)
    body = baseline(world, cell)
    broken = send(world, cell, with_value(body, "counterparty.name", "Printer\nBCC: everyone"))
    assert broken.status_code == 422 and "counterparty.name" in broken.json["errors"], broken.json
    prose = send(world, cell, with_value(body, "description", "flyers\n\tand posters"))
    assert prose.status_code == 201, prose.json


# -- the contracts: a consumer refuses such an event too ----------------------------------------------


def _sealed(envelope: dict[str, Any]) -> dict[str, Any]:
    envelope["hash"] = compute_hash(envelope)
    return envelope


@pytest.mark.parametrize("name", BAD)
@pytest.mark.parametrize("field", ["description", "reference", "counterparty.name", "counterparty.id"])
def test_the_contract_check_refuses_a_payload_with_a_control_character(field: str, name: str) -> None:
    envelope = sample_envelope()
    envelope["payload"] = with_value(envelope["payload"], field, f"ok{BAD[name]}")
    _sealed(envelope)
    with pytest.raises(ContractViolation) as full:
        validate_envelope(envelope)
    assert full.value.reason.replace(": ", ".").startswith(f"payload.{field}."), full.value.reason
    with pytest.raises(ContractViolation):  # the projector's fast check (JSON Schema) gives the same verdict
        MessageCheck().parse(canonical_json(envelope))


@pytest.mark.parametrize("char", [*BAD.values(), "\n"])
@pytest.mark.parametrize("field", ["stream_id", "producer"])
def test_the_envelope_text_is_one_line_without_control_characters(field: str, char: str) -> None:
    envelope = sample_envelope()
    envelope[field] = f"{envelope[field]}{char}"
    with pytest.raises(ContractViolation) as full:
        validate_envelope(_sealed(envelope))
    assert full.value.reason.startswith(f"envelope: {field}"), full.value.reason
    with pytest.raises(ContractViolation):
        MessageCheck().parse(canonical_json(envelope))


def test_a_reversal_with_nul_in_its_reason_is_refused_by_the_contract() -> None:
    envelope = sample_envelope()
    envelope["event_type"] = "ExpenditureReversed"
    envelope["payload"] = {
        "expenditure_id": "8f14e45f-ceea-467f-a8f2-0f0f0f0f0f0f", "municipality_code": "GM0363", "grant_year": 2024,
        "reverses_event_id": "8f14e45f-ceea-467f-a8f2-0f0f0f0f0f0f", "amount_cents": 100, "category": "promotion",
        "booked_on": "2024-03-02", "reason": "wrong\u0000",
    }
    with pytest.raises(ContractViolation) as refused:
        MessageCheck().parse(canonical_json(_sealed(envelope)))
    assert refused.value.reason.startswith("payload.reason")


def test_a_lone_surrogate_is_refused_by_the_fast_check_too() -> None:
    """UTF-8 cannot encode it, so the hash cannot even be computed: without the rule the check crashed."""
    envelope = sample_envelope()
    envelope["payload"]["description"] = "ok\ud800"  # type: ignore[index]
    envelope["hash"] = "0" * 64
    with pytest.raises(ContractViolation) as refused:
        MessageCheck().parse(json.dumps(envelope).encode("ascii"))
    assert refused.value.reason.startswith("payload.description"), refused.value.reason


def _payload_strings(schema: dict[str, Any], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}.{name}"
        if prop.get("type") == "string" and not {"format", "enum", "const"} & set(prop):
            yield path, prop
        yield from _payload_strings(prop, path)
        if isinstance(prop.get("items"), dict):
            yield from _payload_strings(prop["items"], f"{path}[]")


def test_every_text_field_of_every_published_contract_carries_the_rule() -> None:
    """In the JSON Schemas (consumers and the fast check) and in marshmallow (the full check)."""
    unruled = []
    for contract in published_contracts():
        document = json.loads((GENERATED_DIR / f"{contract.event_type}.v{contract.schema_version}.schema.json")
                              .read_text(encoding="utf-8"))
        for path, prop in _payload_strings(document["properties"]["payload"], contract.event_type):
            if "pattern" not in prop:
                unruled.append(path)
        unruled += [f"{contract.event_type}.{name}" for name, field in _marshmallow_strings(contract.payload_schema())
                    if not any(isinstance(v, (PlainText, WholeMatch, validate.OneOf)) for v in field.validators)]
    assert not unruled, unruled


def _marshmallow_strings(schema: Any, prefix: str = "") -> Iterator[tuple[str, fields.String]]:
    for name, field in schema.fields.items():
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(inner, fields.Nested):
            yield from _marshmallow_strings(inner.schema, f"{prefix}{name}.")
        elif type(inner) is fields.String:
            yield f"{prefix}{name}", inner


@pytest.mark.parametrize("char", ["\u0000", "\u0007", "\u001b", "\u0085", "\u009f", "\u007f", "\ud800"])
def test_the_rule_itself(char: str) -> None:
    assert text_problem(f"a{char}b") and text_problem(f"a{char}b", multi_line=True)
    assert text_problem("a\nb") and text_problem("a\tb")
    assert text_problem("a\nb\tc\r", multi_line=True) is None
    assert text_problem("Gemeente 's-Hertogenbosch — ë ✓ 😀") is None


def test_the_rule_is_one(tmp_path: Path) -> None:
    """No service keeps a control-character pattern of its own (the rule lives in contracts/text.py)."""
    root = Path(__file__).resolve().parents[2]
    copies = [str(p.relative_to(root)) for base in ("services", "contracts") for p in (root / base).rglob("*.py")
              if "CONTROL_CHARACTERS" in p.read_text(encoding="utf-8")]
    assert not copies, copies


# -- the CSV imports: a line's text under the same rule ------------------------------------------------

IMPORT_HEADER = "grant_year,category,amount_cents,booked_on,counterparty_id,counterparty_name,description,reference\n"
IMPORTS = [
    ("payments", "/v1/years/2024/annex?awarded_on=2024-01-16", "ministry", "GM1948,Meierij{c}stad,5.00\n"),
    ("ledger", "/v1/municipalities/GM0363/expenditures:import", "A",
     IMPORT_HEADER + "2024,promotion,5,2024-05-01,P,Print{c}er,d,R\n"),
    ("ledger", "/v1/municipalities/GM0363/expenditures:import", "A",
     IMPORT_HEADER + "2024,promotion,5,2024-05-01,P,P,fly{c}ers,R\n"),
    ("ledger", "/v1/municipalities/GM0363/expenditures:import", "A",
     IMPORT_HEADER + "2024,promotion,5,2024-05-01,P,P,d,R{c}1\n"),
]


@pytest.mark.parametrize(("service", "path", "caller", "line"), IMPORTS, ids=lambda v: str(v)[:40])
def test_every_text_cell_of_the_csv_imports_refuses_control_characters(
    service: str, path: str, caller: str, line: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cell = Cell(service, "POST", path, (caller,), content_type="text/csv")
    world = world_of(cell, tmp_path_factory)
    before = store_size(world)
    accepted = {}
    for name, char in BAD.items():
        answer = world.client.post(path, data=line.format(c=char).encode(), content_type="text/csv",
                                   headers=headers_for(world.settings, caller))
        errors = (answer.json or {}).get("errors", {})
        if answer.status_code != 422 or not any(key.startswith("line ") for key in errors):
            accepted[name] = (answer.status_code, answer.json)
    assert not accepted, accepted
    assert store_size(world) == before
