"""The 360Giving export (issue 15): valid against the official schemas, bridging grants included, no grant
before its award at ``as_of``/``known_at``, identifiers from settings and placeholders flagged.

These tests feed a ``Replay`` the envelopes directly (no broker); ``test_exports.py`` runs the command
on Kafka."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from contracts.canonical import canonical_json, parse_utc
from services.audit.exports import dumps_exact
from services.audit.giving360 import (
    GRANT_SCHEMA,
    PACKAGE_SCHEMA,
    SCHEMA_DIR,
    Giving360,
    Giving360Invalid,
    giving360,
    package_validator,
    validate_giving360,
)
from services.audit.replay import Replay
from services.common.config import Giving360Settings, SettingError, load_settings
from tests.audit.support import GIVING360_IDS, random_history
from tests.ledger.events import Streams, at

CONFIGURED = GIVING360_IDS


def replay_of(envelopes: list[tuple[str, bytes, dict[str, Any]]], **point: Any) -> Replay:
    replay = Replay(**point)
    for topic, _key, envelope in envelopes:
        replay.feed(topic, canonical_json(envelope))
    replay.finish()
    return replay


def written(export: Giving360) -> dict[str, Any]:
    """The document as the command writes it and reads it back (exact decimals), validated."""
    document: dict[str, Any] = json.loads(dumps_exact(export.document, indent=2), parse_float=Decimal)
    validate_giving360(document)
    return document


def small_history() -> Streams:
    """Two municipalities awarded on different days, one recorded late; one library's bridging grant."""
    s = Streams("")
    for code, name, awarded_on, recorded in (
        ("GM0363", "Amsterdam", "2024-01-15", at("2024-01-15")),
        ("GM0344", "Utrecht", "2024-03-01", at("2024-03-01")),
        # booked early, recorded (known) only in May
        ("GM0599", "Rotterdam", "2024-01-20", at("2024-05-02")),
    ):
        grant = f"grant-2024-{code}"
        s.event("GrantAwarded", grant, code, recorded, grant_id=grant, year=2024, municipality_code=code,
                municipality_name=name, amount_cents=40_000_00, awarded_on=awarded_on, basis="single")
        s.event("AdvancePaid", grant, code, recorded, grant_id=grant, year=2024, municipality_code=code,
                amount_cents=40_000_00, paid_on=awarded_on)
    library, stream = "NL-KVK-41215098", "library-NL-KVK-41215098"
    s.event("BridgeFrameSet", "bridge-frame", "bridge-frame", at("2022-12-01"), frame_cents=2_700_000_00,
            rate_cents_per_inhabitant="15", account_period_start="2019-01-01", spending_deadline="2023-05-01",
            account_deadline="2023-09-01")
    s.event("LibraryRegistered", stream, library, at("2022-12-02"), library_id=library,
            name="OBA (illustrative)", service_area=[{"municipality_code": "GM0363", "inhabitants": 900_000}])
    s.event("BridgeGrantSet", stream, library, at("2022-12-03"), library_id=library, amount_cents=135_000_00,
            inhabitants=900_000, basis="computed", batch_id="b1", rate_cents_per_inhabitant="15",
            corrects_event_id=None)
    s.event("BridgePaymentMade", stream, library, at("2022-12-10"), library_id=library, amount_cents=100_000_00,
            paid_on="2022-12-10", payment_batch_id=None)
    s.event("BridgePaymentMade", stream, library, at("2023-01-10"), library_id=library, amount_cents=35_000_00,
            paid_on="2023-01-10", payment_batch_id=None)
    # a library whose grant came to nothing (no inhabitants left in its area), then one set and withdrawn
    for n, amounts in ((1, (0,)), (2, (5_000_00, 0))):
        other = f"NL-KVK-4121509{8 + n}"
        s.event("LibraryRegistered", f"library-{other}", other, at("2022-12-02"), library_id=other,
                name=f"Library {n} (illustrative)", service_area=[])
        for amount in amounts:
            s.event("BridgeGrantSet", f"library-{other}", other, at("2022-12-03"), library_id=other,
                    amount_cents=amount, inhabitants=amount // 15, basis="computed", batch_id="b1",
                    rate_cents_per_inhabitant="15", corrects_event_id=None)
    return s


# -- the official schemas --------------------------------------------------------------------------


def test_the_official_schemas_are_package_data_with_source_version_and_licence() -> None:
    folder = files("services.audit").joinpath(SCHEMA_DIR)
    readme = folder.joinpath("README.md").read_text("utf-8")
    assert "ThreeSixtyGiving/standard" in readme and "1.4.3" in readme and "CC BY 4.0" in readme
    assert "Creative Commons Attribution 4.0" in folder.joinpath("LICENSE.md").read_text("utf-8")
    for name in (PACKAGE_SCHEMA, GRANT_SCHEMA):
        schema = json.loads(folder.joinpath(name).read_text("utf-8"))
        assert schema["$id"].startswith("https://raw.githubusercontent.com/ThreeSixtyGiving/standard/")
    # byte for byte the copies in the project's shared folder, when that folder is there (not at run time)
    shared = Path(__file__).resolve().parents[3] / "shared" / "360giving"
    if shared.is_dir():
        for name in (PACKAGE_SCHEMA, GRANT_SCHEMA, "LICENSE.md"):
            assert folder.joinpath(name).read_bytes() == (shared / name).read_bytes(), name


def test_the_schema_check_is_the_official_one_offline() -> None:
    grant = {
        "id": "360G-test-1", "title": "t", "description": "d", "currency": "EUR", "amountAwarded": Decimal("1.00"),
        "awardDate": "2024-01-15", "recipientOrganization": [{"id": "NL-KVK-1", "name": "r"}],
        "fundingOrganization": [{"id": "NL-KVK-2", "name": "f"}],
    }
    validate_giving360({"grants": [grant]})
    validate_giving360({"grants": [{**grant, "awardDate": "2024-01-15T10:00:00Z"}]})
    # resolved locally: both URLs of the grant schema are in the registry, nothing is fetched
    assert package_validator().is_valid({"grants": [grant]})

    def problems(**changes: Any) -> str:
        broken = {k: v for k, v in {**grant, **changes}.items() if v is not None}
        with pytest.raises(Giving360Invalid) as invalid:
            validate_giving360({"grants": [broken]})
        return "; ".join(invalid.value.problems)

    assert "fundingOrganization" in problems(fundingOrganization=None)
    assert "grants/0/awardDate" in problems(awardDate="2024-13-01")
    assert "grants/0/awardDate" in problems(awardDate="15-01-2024")
    assert "grants/0/currency" in problems(currency="EURO")
    assert "grants/0/amountAwarded" in problems(amountAwarded="1.00")
    with pytest.raises(Giving360Invalid, match="non-empty|should be non-empty"):
        validate_giving360({"grants": []})
    with pytest.raises(Giving360Invalid, match="disbursements 2.00 exceed the award 1.00"):
        validate_giving360({"grants": [{**grant, "disbursementTransaction": [
            {"transactionDate": "2024-01-16", "value": Decimal("2.00")}]}]})


# -- a realistic history ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 7, 23])
def test_the_export_of_a_realistic_history_validates(seed: int) -> None:
    """Awards and advances for several municipalities and years, settlements, reclaims, expenditures and
    the bridging grants to libraries: every grant in the package, exact euros, valid."""
    history = random_history("", seed, expenditures=60)
    replay = replay_of(history.streams.sent)
    document = written(giving360(replay, CONFIGURED))
    sent = [e for _t, _k, e in history.streams.sent]
    awards = {e["payload"]["grant_id"]: e["payload"] for e in sent if e["event_type"] == "GrantAwarded"}
    libraries = {e["payload"]["library_id"]: e["payload"] for e in sent if e["event_type"] == "BridgeGrantSet"}
    assert len(awards) >= 6 and len(libraries) >= 1
    ids = [g["id"] for g in document["grants"]]
    assert ids == [f"360G-test-{g}" for g in sorted(awards)] + [f"360G-test-bridge-{lib}" for lib in sorted(libraries)]
    for grant in document["grants"][: len(awards)]:
        award = awards[grant["id"].removeprefix("360G-test-")]
        assert grant["amountAwarded"] == Decimal(award["amount_cents"]) / 100
        assert grant["amountDisbursed"] == sum(t["value"] for t in grant["disbursementTransaction"])
        assert grant["fundingOrganization"] == [
            {"id": "NL-OIN-99900000000000000001", "name": "Ministerie van Binnenlandse Zaken en Koninkrijksrelaties"}
        ]
    text = dumps_exact(giving360(replay, CONFIGURED).document)
    assert "PLACEHOLDER" not in text and "e+" not in text.lower()


def test_bridging_grants_name_their_library_as_recipient() -> None:
    replay = replay_of(small_history().sent)
    document = written(giving360(replay, CONFIGURED))
    bridge = [g for g in document["grants"] if g["grantProgramme"][0]["code"] == "IDO-OVERBRUGGING"]
    assert len(bridge) == 1  # the grants of 0 are no grants
    grant = bridge[0]
    assert grant["id"] == "360G-test-bridge-NL-KVK-41215098"
    assert grant["recipientOrganization"] == [{"id": "NL-KVK-41215098", "name": "OBA (illustrative)"}]
    assert grant["fundingOrganization"] == [{"id": "NL-KVK-99900002", "name": "Koninklijke Bibliotheek"}]
    assert grant["awardDate"] == "2022-12-03" and grant["currency"] == "EUR"
    assert grant["amountAwarded"] == Decimal("135000.00") == grant["amountDisbursed"]
    assert grant["disbursementTransaction"] == [
        {"transactionDate": "2022-12-10", "value": Decimal("100000.00")},
        {"transactionDate": "2023-01-10", "value": Decimal("35000.00")},
    ]
    assert "funded by BZK" in grant["description"]
    # --year: bridging grants by the year they were awarded in, SPUK grants by grant year
    assert [g["id"] for g in giving360(replay, CONFIGURED, year=2022).document["grants"]] == [grant["id"]]
    assert all("bridge" not in g["id"] for g in giving360(replay, CONFIGURED, year=2024).document["grants"])


# -- as_of / known_at ------------------------------------------------------------------------------


def listed(replay: Replay) -> list[str]:
    return [g["id"].removeprefix("360G-test-") for g in giving360(replay, CONFIGURED).document["grants"]]


def test_no_grant_is_listed_before_it_was_awarded() -> None:
    sent = small_history().sent
    assert listed(replay_of(sent)) == [
        "grant-2024-GM0344", "grant-2024-GM0363", "grant-2024-GM0599", "bridge-NL-KVK-41215098"
    ]
    assert listed(replay_of(sent, as_of=date(2022, 12, 2))) == []
    assert listed(replay_of(sent, as_of=date(2023, 12, 31))) == ["bridge-NL-KVK-41215098"]
    assert listed(replay_of(sent, as_of=date(2024, 1, 31))) == [
        "grant-2024-GM0363", "grant-2024-GM0599", "bridge-NL-KVK-41215098"
    ]
    # Rotterdam's award is booked in January but known only from 2 May
    assert listed(replay_of(sent, known_at=parse_utc("2024-04-30T00:00:00Z"))) == [
        "grant-2024-GM0344", "grant-2024-GM0363", "bridge-NL-KVK-41215098"
    ]
    assert listed(replay_of(sent, as_of=date(2024, 1, 31), known_at=parse_utc("2024-04-30T00:00:00Z"))) == [
        "grant-2024-GM0363", "bridge-NL-KVK-41215098"
    ]
    # a grant listed is never one of nothing awarded; paid before its award, a bridging grant is not listed yet
    early = replay_of(sent, as_of=date(2022, 12, 10), known_at=parse_utc("2022-12-02T23:00:00Z"))
    assert early.bridge_payments == {} and listed(early) == []


def counted(envelope: dict[str, Any], booked_on: str, point: dict[str, Any]) -> bool:
    """Whether an award is counted at ``point``: booked on or before ``as_of``, recorded by ``known_at``."""
    as_of: date | None = point.get("as_of")
    known_at: datetime | None = point.get("known_at")
    return (as_of is None or date.fromisoformat(booked_on[:10]) <= as_of) and (
        known_at is None or parse_utc(envelope["recorded_at"]) <= known_at
    )


@pytest.mark.parametrize("seed", [3, 11])
def test_at_every_point_exactly_the_grants_awarded_by_then_are_listed(seed: int) -> None:
    history = random_history("", seed, expenditures=30)
    sent = history.streams.sent
    envelopes = [e for _t, _k, e in sent]
    recorded = sorted({e["recorded_at"] for e in envelopes if e["event_type"] in ("GrantAwarded", "BridgeGrantSet")})
    days = sorted({date.fromisoformat(e["payload"]["awarded_on"]) for e in envelopes
                   if e["event_type"] == "GrantAwarded"} | {date(2022, 12, 3), date(2022, 12, 2)})
    points: list[dict[str, Any]] = [{"as_of": d} for d in days] + [{"known_at": parse_utc(r)} for r in recorded[::3]]
    points.append({"as_of": days[len(days) // 2], "known_at": parse_utc(recorded[len(recorded) // 2])})
    for point in points:
        expected = sorted(e["payload"]["grant_id"] for e in envelopes
                          if e["event_type"] == "GrantAwarded" and counted(e, e["payload"]["awarded_on"], point))
        expected += sorted(f"bridge-{e['payload']['library_id']}" for e in envelopes
                           if e["event_type"] == "BridgeGrantSet" and counted(e, e["occurred_at"], point))
        replay = replay_of(sent, **point)
        export = giving360(replay, CONFIGURED)
        assert listed(replay) == expected, point
        assert all(g["amountAwarded"] > 0 for g in export.document["grants"]), point
        if export.document["grants"]:
            written(export)


# -- identifiers -------------------------------------------------------------------------------------


def test_placeholders_are_flagged_and_settings_make_it_publishable(tmp_path: Path) -> None:
    replay = replay_of(small_history().sent)
    export = giving360(replay, Giving360Settings())
    assert not export.publishable
    assert [p.split(" ")[0] for p in export.placeholders] == ["IDO_360G_PREFIX", "IDO_360G_FUNDER_ID", "IDO_360G_KB_ID"]
    document = written(export)
    assert document["title"].startswith("NIET PUBLICEREN (placeholders)")
    assert "NOT FOR PUBLICATION" in document["description"]
    assert all(name in document["description"] for name in ("IDO_360G_PREFIX", "IDO_360G_FUNDER_ID", "IDO_360G_KB_ID"))
    for grant in document["grants"]:
        assert grant["id"].startswith("360G-PLACEHOLDER-")
        assert grant["fundingOrganization"][0]["id"] in ("PLACEHOLDER-BZK", "PLACEHOLDER-KB")
    assert document["publisher"]["identifier"] == "PLACEHOLDER-BZK"
    # without a bridging grant listed, the KB's id is not needed
    assert "IDO_360G_KB_ID" not in " ".join(giving360(replay, Giving360Settings(), year=2024).placeholders)

    ids_file = tmp_path / "municipalities.csv"
    ids_file.write_text("municipality_code,organisation_id\nGM0363,NL-OIN-99900000000000000363\n", encoding="utf-8")
    settings = load_settings({
        "IDO_360G_PREFIX": "360G-test", "IDO_360G_FUNDER_ID": "NL-OIN-99900000000000000001",
        "IDO_360G_KB_ID": "NL-KVK-99900002", "IDO_360G_MUNICIPALITY_IDS_FILE": str(ids_file),
    }).giving360
    export = giving360(replay, settings)
    assert export.publishable and export.placeholders == []
    document = written(export)
    assert "PLACEHOLDER" not in dumps_exact(document) and "NIET PUBLICEREN" not in document["title"]
    recipients = {g["title"]: g["recipientOrganization"][0]["id"] for g in document["grants"]}
    assert recipients["SPUK IDO 2024 Amsterdam"] == "NL-OIN-99900000000000000363"
    # no registered id configured: 360Giving's rule, the publisher's prefix and the CBS code, and a note
    assert recipients["SPUK IDO 2024 Utrecht"] == "360G-test-GM0344"
    assert export.notes and "GM0344, GM0599" in export.notes[0] and "Note:" in document["description"]


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"IDO_360G_PREFIX": "BZK-"}, "IDO_360G_PREFIX"),
        ({"IDO_360G_PREFIX": "360G-bzk-"}, "IDO_360G_PREFIX"),
        ({"IDO_360G_PREFIX": "360G-b z k"}, "IDO_360G_PREFIX"),
        ({"IDO_360G_FUNDER_ID": "BZK"}, "IDO_360G_FUNDER_ID"),
        ({"IDO_360G_KB_ID": "nl-kvk-1"}, "IDO_360G_KB_ID"),
        ({"IDO_360G_MUNICIPALITY_IDS_FILE": "/nonexistent/ids.csv"}, "IDO_360G_MUNICIPALITY_IDS_FILE"),
    ],
)
def test_a_wrong_identifier_setting_is_named(env: dict[str, str], setting: str) -> None:
    with pytest.raises(SettingError, match=f"setting {setting}:") as error:
        load_settings(env)
    assert error.value.name == setting


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("code,id\nGM0363,NL-OIN-1\n", "first line"),
        ("municipality_code,organisation_id\nGM363,NL-OIN-1\n", "line 2: 'GM363' is not a CBS code"),
        ("municipality_code,organisation_id\nGM0363,OIN 1\n", "line 2: 'OIN 1' must be an organisation"),
        ("municipality_code,organisation_id\nGM0363,NL-OIN-1\nGM0363,NL-OIN-2\n", "line 3: GM0363 is listed twice"),
        ("municipality_code,organisation_id\nGM0363\n", "line 2: two columns"),
    ],
)
def test_a_wrong_municipality_ids_file_is_named_with_its_line(tmp_path: Path, content: str, reason: str) -> None:
    ids_file = tmp_path / "ids.csv"
    ids_file.write_text(content, encoding="utf-8")
    settings = load_settings({"IDO_360G_MUNICIPALITY_IDS_FILE": str(ids_file)}).giving360
    with pytest.raises(SettingError, match="setting IDO_360G_MUNICIPALITY_IDS_FILE") as error:
        settings.municipality_ids()
    assert reason in str(error.value)
