"""The grants as a 360Giving data package, checked against the official 360Giving schemas.

Two kinds of grant, both from a replay of the topics (``Replay``), at its ``as_of``/``known_at``:

- the SPUK IDO: one grant per municipality per year, funder BZK, disbursements the advances;
- the bridging subsidy (overbruggingsregeling): one grant per library, funder of record the KB,
  which set each library's amount and paid it out of BZK's money (the description says so).

A grant is listed only once its award is counted at the point: an award booked after ``as_of``
or recorded after ``known_at`` is not an award yet (``Replay.grants``, ``Replay.bridge_grants``).

Identifiers follow 360Giving's rules (docs/decisions.md, "360Giving"): a grant's id is the
publisher's registered prefix, a hyphen and our own id; an organisation's id is its org-id.guide
identifier, or for a municipality without a configured one the prefix and its CBS code (360Giving's
rule for an organisation without an external identifier). What is not configured
(``Giving360Settings``) becomes a marked placeholder listed in ``Giving360.placeholders`` and in the
package's title and description: such a file is not for publication.

The schemas are the official ones (``schemas/360giving/``, version, source and licence in its
README), read as package data and resolved offline. Amounts are exact decimal euros.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.exceptions import best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from services.audit.exports import euros
from services.audit.replay import Replay
from services.common.config import Giving360Settings

SCHEMA_DIR = "schemas/360giving"
PACKAGE_SCHEMA = "360-giving-package-schema.json"
GRANT_SCHEMA = "360-giving-schema.json"
STANDARD_VERSION = "1.4"
"""The package's ``version`` (major.minor of the vendored schemas, 1.4.3)."""

PLACEHOLDER = "PLACEHOLDER"
PLACEHOLDER_PREFIX = f"360G-{PLACEHOLDER}"
PLACEHOLDER_FUNDER_ID = f"{PLACEHOLDER}-BZK"
PLACEHOLDER_KB_ID = f"{PLACEHOLDER}-KB"
# Names are facts, not identifiers: they need no setting.
FUNDER_NAME = "Ministerie van Binnenlandse Zaken en Koninkrijksrelaties"
KB_NAME = "Koninklijke Bibliotheek"
PROGRAMME = {"code": "SPUK-IDO", "title": "Specifieke uitkering Informatiepunten Digitale Overheid"}
BRIDGE_PROGRAMME = {"code": "IDO-OVERBRUGGING", "title": "Overbruggingsregeling Informatiepunten Digitale Overheid"}
SETTING_OF = {
    "id_prefix": "IDO_360G_PREFIX",
    "funder_id": "IDO_360G_FUNDER_ID",
    "bridge_funder_id": "IDO_360G_KB_ID",
}


class Giving360Invalid(ValueError):
    """The document breaks the 360Giving schema or a rule of the grants; ``problems`` lists each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Giving360:
    document: dict[str, Any]
    placeholders: list[str] = field(default_factory=list)
    """The settings that were not set, each as ``NAME (placeholder used: VALUE)``."""
    notes: list[str] = field(default_factory=list)
    """What an operator should know that is not wrong (e.g. municipalities identified by CBS code)."""

    @property
    def publishable(self) -> bool:
        return not self.placeholders


@dataclass
class _Ids:
    prefix: str
    funder_id: str
    kb_id: str
    municipalities: dict[str, str]
    placeholders: list[str]

    @classmethod
    def of(cls, settings: Giving360Settings, *, with_bridge: bool) -> _Ids:
        placeholders: list[str] = []

        def value(name: str, placeholder: str) -> str:
            configured = getattr(settings, name)
            if configured:
                return str(configured)
            placeholders.append(f"{SETTING_OF[name]} (placeholder used: {placeholder})")
            return placeholder

        prefix = value("id_prefix", PLACEHOLDER_PREFIX)
        funder_id = value("funder_id", PLACEHOLDER_FUNDER_ID)
        # the KB's id only matters, and is only reported missing, when a bridging grant is listed
        kb_id = value("bridge_funder_id", PLACEHOLDER_KB_ID) if with_bridge else ""
        return cls(prefix, funder_id, kb_id, settings.municipality_ids(), placeholders)

    def grant(self, internal_id: str) -> str:
        # 360Giving: "<prefix>-<id>", special characters of the id as "_"
        return f"{self.prefix}-{re.sub(r'[^A-Za-z0-9._-]', '_', internal_id)}"

    def municipality(self, code: str) -> str:
        return self.municipalities.get(code) or f"{self.prefix}-{code}"


def giving360(replay: Replay, settings: Giving360Settings, *, year: int | None = None) -> Giving360:
    """The package of every grant awarded at the replay's point (of ``year``: SPUK grants of that
    grant year, bridging grants awarded in it)."""
    awards = [(gid, a) for gid, a in sorted(replay.grants.items()) if year is None or a["year"] == year]
    bridge = [
        (lib, b) for lib, b in sorted(replay.bridge_grants.items())
        if (year is None or int(b["awarded_on"][:4]) == year)
        # set to 0 again by a correction (never below what was paid): no grant any more
        and replay.library_kinds.get((lib, "bridge_grant"), 0) > 0
    ]
    ids = _Ids.of(settings, with_bridge=bool(bridge))
    grants = [_spuk_grant(replay, ids, grant_id, award) for grant_id, award in awards]
    grants += [_bridge_grant(replay, ids, library_id, b) for library_id, b in bridge]
    unmapped = sorted({a["municipality_code"] for _g, a in awards} - set(ids.municipalities))
    notes = []
    if unmapped:
        notes.append(
            f"{len(unmapped)} municipalit{'y' if len(unmapped) == 1 else 'ies'} without an organisation id in "
            f"IDO_360G_MUNICIPALITY_IDS_FILE, identified as <prefix>-<CBS code> (360Giving's rule for an "
            f"organisation without an external identifier): {', '.join(unmapped)}"
        )
    document: dict[str, Any] = {
        "version": STANDARD_VERSION,
        "title": _title(year, ids.placeholders),
        "description": _description(replay, year, ids.placeholders, notes),
        "publisher": {"name": FUNDER_NAME, "identifier": ids.funder_id},
        "grants": grants,
    }
    return Giving360(document, ids.placeholders, notes)


def _title(year: int | None, placeholders: list[str]) -> str:
    title = f"SPUK IDO en overbruggingsregeling IDO{f' {year}' if year is not None else ''}: subsidies"
    return f"NIET PUBLICEREN (placeholders) - {title}" if placeholders else title


def _description(replay: Replay, year: int | None, placeholders: list[str], notes: list[str]) -> str:
    point = replay.point.describe()
    parts = [
        "Grants of the SPUK IDO (Stcrt. 2022, 33992) to municipalities and of the bridging subsidy to "
        "libraries, from a replay of the ledger's topics"
        + (f", grant year {year}" if year is not None else "")
        + (f", as booked on or before {point['as_of']}" if point.get("as_of") else "")
        + (f", as known at {point['known_at']}" if point.get("known_at") else "")
        + ". Amounts in euros."
    ]
    if placeholders:
        parts.append(
            "NOT FOR PUBLICATION: these identifiers are placeholders, not registered ones, because their "
            "settings are not set: " + "; ".join(placeholders) + "."
        )
    parts += [f"Note: {note}." for note in notes]
    return " ".join(parts)


def _spuk_grant(replay: Replay, ids: _Ids, grant_id: str, award: dict[str, Any]) -> dict[str, Any]:
    code = award["municipality_code"]
    advances = replay.advances.get(grant_id, [])
    return {
        "id": ids.grant(grant_id),
        "title": f"SPUK IDO {award['year']} {award['municipality_name']}",
        "description": (
            f"Specifieke uitkering Informatiepunten Digitale Overheid {award['year']} to "
            f"{award['municipality_name']} ({code}), awarded {award['awarded_on']} ({award['basis']})."
        ),
        "currency": "EUR",
        "amountAwarded": euros(replay.grant_kinds.get((grant_id, "awarded"), 0)),
        "amountDisbursed": euros(sum(a["amount_cents"] for a in advances)),
        "awardDate": award["awarded_on"],
        "recipientOrganization": [{"id": ids.municipality(code), "name": award["municipality_name"]}],
        "fundingOrganization": [{"id": ids.funder_id, "name": FUNDER_NAME}],
        "grantProgramme": [dict(PROGRAMME)],
        "disbursementTransaction": [
            {"transactionDate": a["paid_on"], "value": euros(a["amount_cents"])} for a in advances
        ],
    }


def _bridge_grant(replay: Replay, ids: _Ids, library_id: str, grant: dict[str, Any]) -> dict[str, Any]:
    name = replay.library_names.get(library_id) or library_id
    payments = replay.bridge_payments.get(library_id, [])
    return {
        "id": ids.grant(f"bridge-{library_id}"),
        "title": f"Overbruggingsregeling IDO {name}",
        "description": (
            f"One-off bridging subsidy for the Informatiepunten Digitale Overheid to {name} ({library_id}), "
            f"funded by BZK, set and paid by the KB; set {grant['awarded_on']} ({grant['basis']})."
        ),
        "currency": "EUR",
        "amountAwarded": euros(replay.library_kinds.get((library_id, "bridge_grant"), 0)),
        "amountDisbursed": euros(sum(p["amount_cents"] for p in payments)),
        "awardDate": grant["awarded_on"],
        # the library's own id is already an organisation identifier (contracts: org_id)
        "recipientOrganization": [{"id": library_id, "name": name}],
        "fundingOrganization": [{"id": ids.kb_id, "name": KB_NAME}],
        "grantProgramme": [dict(BRIDGE_PROGRAMME)],
        "disbursementTransaction": [
            {"transactionDate": p["paid_on"], "value": euros(p["amount_cents"])} for p in payments
        ],
    }


# -- validation ------------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
FORMATS = FormatChecker(formats=())
"""Checks ``date-time`` only. The schemas' dates are ``oneOf`` [date-time, a YYYY-MM-DD pattern]: if
``date-time`` went unchecked (jsonschema's own checker needs another package for it) a plain date
would match both and fail the ``oneOf``. Other formats (``uri``) we do not write."""


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.fullmatch(value):
        return False
    datetime.fromisoformat(value.upper())  # a real day and time (raises ValueError)
    return True


def _schema(name: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(files("services.audit").joinpath(SCHEMA_DIR, name).read_text("utf-8"))
    return parsed


@cache
def package_validator() -> Draft202012Validator:
    """The package schema with the grant schema resolved locally, never over the network.

    The grant schema is registered under its own ``$id`` (1.4.3) and under the URL the package schema
    names (1.4.2 at the vendored commit); its ``$schema`` is the non-canonical http form of 2020-12,
    so the draft is given, not detected."""
    package, grant = _schema(PACKAGE_SCHEMA), _schema(GRANT_SCHEMA)
    resource = DRAFT202012.create_resource(grant)
    urls = {grant["$id"], package["properties"]["grants"]["items"]["$ref"]}
    registry: Registry[Any] = Registry().with_resources((url, resource) for url in sorted(urls))
    return Draft202012Validator(package, registry=registry, format_checker=FORMATS)


def validate_giving360(document: dict[str, Any]) -> None:
    """Raises ``Giving360Invalid`` listing every breach of the schema (with its path), then of the
    rule the schema cannot say: a grant's disbursements sum to at most its award."""
    errors = sorted(package_validator().iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    problems = [_problem(error) for error in errors]
    if not problems:
        for grant in document["grants"]:
            disbursed = sum((Decimal(t["value"]) for t in grant.get("disbursementTransaction", [])), Decimal(0))
            if disbursed > Decimal(grant["amountAwarded"]):
                problems.append(f"{grant['id']}: disbursements {disbursed} exceed the award {grant['amountAwarded']}")
    if problems:
        raise Giving360Invalid(problems)


def _problem(error: ValidationError) -> str:
    """Where and what. A ``oneOf`` error (a grant, a date) says which alternative came closest and why,
    rather than printing the whole grant."""
    if error.validator == "oneOf" and error.context:
        closest = best_match(error.context)
        where = list(error.absolute_path) + list(closest.path)
        message = f"{closest.message} (no alternative of the schema's oneOf fits)"
    else:
        where, message = list(error.absolute_path), error.message
    return f"{'/'.join(map(str, where)) or '(package)'}: {message[:300]}"

