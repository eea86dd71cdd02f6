"""Identifiers are matched whole, with ASCII digits (issue 16, Must show 5).

The attacks: ``^GM\\d{4}$`` with ``re.match`` took ``"GM0363\\n"`` (``$`` matches before a trailing
newline) and Arabic-Indic digits (``\\d`` is every script's digit, ``int`` reads them): a phantom
award under ``"GM0363\\n"``, and 500s from the ``Content-Disposition`` of a CSV named after it.
Routes, headers and body fields are enumerated from the authorisation matrix and the OpenAPI
documents, so an identifier added later is tested too.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from contracts.export import GENERATED_DIR
from contracts.identifiers import is_cbs_code, is_org_id, year_from_text
from tests.foundation.test_text_rule import (
    TEXT_PATTERNS,
    WRITES,
    baseline,
    operation,
    send,
    store_size,
    string_fields,
    with_value,
    world_of,
)
from tests.resilience.test_authorization_matrix import CELLS, LIBRARY, A, Cell, World, headers_for

ROOT = Path(__file__).resolve().parents[2]
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def variants(value: str) -> dict[str, str]:
    """The two spellings of an identifier that a loose pattern took: trailing newline, other digits."""
    return {"trailing newline": value + "\n", "Arabic-Indic digits": value.translate(ARABIC_INDIC)}


def test_the_shared_checks_refuse_both_spellings() -> None:
    for spelling in variants("GM0363").values():
        assert not is_cbs_code(spelling)
    for spelling in variants("NL-KVK-41215098").values():
        assert not is_org_id(spelling)
    for spelling in variants("2024").values():
        assert year_from_text(spelling) is None
    assert is_cbs_code("GM0363") and is_org_id("NL-KVK-41215098")


def _path_variants(cell: Cell) -> dict[str, str]:
    found = {}
    for original, kind in ((A, "code"), ("2024", "year"), (LIBRARY, "library id")):
        if original in cell.path.split("?")[0]:
            for name, spelling in variants(original).items():
                found[f"{kind} with {name}"] = cell.path.replace(original, quote(spelling, safe=""), 1)
    return found


PATH_CELLS = [c for c in CELLS if _path_variants(c) and not c.public]


@pytest.mark.parametrize("cell", PATH_CELLS, ids=lambda c: f"{c.service} {c.method} {c.path}")
def test_every_identifier_in_a_path_is_matched_whole(cell: Cell, tmp_path_factory: pytest.TempPathFactory) -> None:
    world = world_of(cell, tmp_path_factory)
    before = store_size(world)
    wrong = {}
    for name, path in _path_variants(cell).items():
        answer = send(world, Cell(cell.service, cell.method, path, cell.allowed), baseline(world, cell)
                      if cell.content_type is None else None)
        if answer.status_code not in (400, 404, 422):
            wrong[name] = (answer.status_code, answer.get_data(as_text=True)[:200])
        elif answer.status_code == 422 and not (answer.json or {}).get("errors"):
            wrong[name] = (422, "names no field")
    assert not wrong, wrong
    assert store_size(world) == before


@pytest.mark.parametrize("cell", WRITES, ids=lambda c: f"{c.service} {c.method} {c.path}")
def test_every_identifier_in_a_body_is_matched_whole(cell: Cell, tmp_path_factory: pytest.TempPathFactory) -> None:
    world = world_of(cell, tmp_path_factory)
    found = operation(world, cell)
    schema = found.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    identifiers = [(path, prop) for path, prop in string_fields(found["spec"], schema)
                   if prop.get("pattern") and prop["pattern"] not in TEXT_PATTERNS]
    before = store_size(world)
    accepted = {}
    for path, prop in identifiers:
        assert "example" in prop, f"{path}: an identifier documents an example (the test spells it wrongly)"
        for name, spelling in variants(str(prop["example"])).items():
            answer = send(world, cell, with_value(baseline(world, cell), path, spelling))
            if answer.status_code != 422 or path not in (answer.json or {}).get("errors", {}):
                accepted[f"{path} with {name}"] = (answer.status_code, answer.json)
    assert not accepted, accepted
    assert store_size(world) == before


QUERY_CELLS = [c for c in CELLS if c.method == "GET" and not c.public and not c.path.startswith("/dashboard")]


@pytest.mark.parametrize("cell", QUERY_CELLS, ids=lambda c: f"{c.service} {c.method} {c.path}")
def test_every_identifier_and_number_in_a_query_is_matched_whole(
    cell: Cell, tmp_path_factory: pytest.TempPathFactory
) -> None:
    world = world_of(cell, tmp_path_factory)
    found = operation(world, cell)
    accepted = {}
    for parameter in found.get("parameters", []):
        schema = parameter.get("schema", {})
        if parameter.get("in") != "query" or not (schema.get("type") == "integer" or "pattern" in schema):
            continue
        example = str(schema.get("example", schema.get("minimum", 2024)))
        for name, spelling in variants(example).items():
            path = f"{cell.path}{'&' if '?' in cell.path else '?'}{parameter['name']}={quote(spelling, safe='')}"
            answer = send(world, Cell(cell.service, "GET", path, cell.allowed), None)
            if answer.status_code != 422 or parameter["name"] not in (answer.json or {}).get("errors", {}):
                accepted[f"?{parameter['name']} with {name}"] = (answer.status_code, answer.get_data(as_text=True))
    assert not accepted, accepted


def test_an_award_for_a_code_with_a_trailing_newline_is_impossible(tmp_path_factory: pytest.TempPathFactory) -> None:
    cell = next(c for c in WRITES if c.service == "payments" and c.path.endswith("/grants"))
    world = world_of(cell, tmp_path_factory)
    before = store_size(world)
    for spelling in variants("GM1948").values():
        answer = send(world, cell, with_value(baseline(world, cell), "municipality_code", spelling))
        assert answer.status_code == 422 and "municipality_code" in answer.json["errors"], answer.json
    annex = Cell("payments", "POST", "/v1/years/2024/annex?awarded_on=2024-01-15", ("ministry",))
    for line in ('"GM1948\n",Meierijstad,100.00\n', "GM١٩٤٨,Meierijstad,100.00\n"):
        answer = world.client.post(annex.path, data=line.encode(), content_type="text/csv",
                                   headers=headers_for(world.settings, "ministry"))
        assert answer.status_code == 422, answer.json
    assert store_size(world) == before
    with pytest.raises(Exception):  # noqa: B017 - whichever refusal the domain names, nothing is awarded
        world.app.import_annex(2024, "GM١٩٤٨,Meierijstad,100.00\n".encode(), date(2024, 1, 15))
    assert store_size(world) == before


def test_the_idempotency_key_is_matched_whole(tmp_path_factory: pytest.TempPathFactory) -> None:
    cell = next(c for c in WRITES if c.service == "payments" and c.path.endswith("/advances"))
    world: World = world_of(cell, tmp_path_factory)
    before = store_size(world)
    for key in ("key\x85", "key\x7f", "key\x1b"):
        answer = send(world, cell, baseline(world, cell), {"Idempotency-Key": key})
        assert answer.status_code in (400, 422) and "Idempotency-Key" in answer.json["errors"], answer.json
    assert store_size(world) == before


# -- meta: no loose pattern anywhere ---------------------------------------------------------------


def _sources() -> list[Path]:
    return sorted(p for base in ("services", "contracts") for p in (ROOT / base).rglob("*.py"))


LOOSE = {
    re.compile(r"(?<!\\)\\d"): "\\d takes every script's digits: name [0-9]",
    re.compile(r"\.match\("): "re.match lets $ match before a trailing newline: use fullmatch (or search for a part)",
    re.compile(r"validate\.Regexp\("): "validate.Regexp uses re.match: use contracts.events.fields.WholeMatch",
}


def test_no_pattern_in_services_or_contracts_uses_d_or_re_match() -> None:
    """Patterns name ``[0-9]`` and are matched whole (``fullmatch``, ``WholeMatch``). A text scan of the
    source (an escaped backslash, as in a docstring that names the problem, is not a pattern)."""
    found = [
        f"{path.relative_to(ROOT)}:{number}: {reason}: {line.strip()}"
        for path in _sources()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        for pattern, reason in LOOSE.items()
        if pattern.search(line)
    ]
    assert not found, found


def _patterns(document: Any, where: str) -> list[tuple[str, str]]:
    found = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "pattern" and isinstance(value, str):
                found.append((where, value))
            else:
                found += _patterns(value, f"{where}.{key}")
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _patterns(value, f"{where}[{index}]")
    return found


def test_every_published_pattern_is_anchored_and_ascii() -> None:
    """JSON Schema patterns are not anchored implicitly: each starts with ^ and ends with $ (the end of
    the text in ECMA-262 and in jsonschema-rs), and names its digits [0-9] (ECMA's \\d is ASCII, Python's
    and Rust's are not: every reader of a published pattern must read the same digits)."""
    documents = [*GENERATED_DIR.glob("*.json"), *(ROOT / "docs" / "api").glob("*.json")]
    loose = [
        f"{where}: {pattern}"
        for path in documents
        for where, pattern in _patterns(json.loads(path.read_text(encoding="utf-8")), path.name)
        if not (pattern.startswith("^") and pattern.endswith("$")) or "\\d" in pattern
    ]
    assert not loose, loose
