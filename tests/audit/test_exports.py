"""Exports: the SiSa annex, the grants in 360Giving JSON (exact decimal euros), the event journal."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from contracts.canonical import compute_hash
from services.audit.exports import dumps_exact, euros, journal_lines, sisa_annex_csv
from services.audit.giving360 import Giving360Invalid, giving360, validate_giving360
from services.audit.replay import replay_topics
from services.audit.sources import TopicReader, audit_kafka_config, audited_topics
from services.bridge.entrypoints.demo import read_demo_libraries
from services.common.cli import main
from services.common.config import Settings
from tests.audit.support import CODES, GIVING360_IDS, record_history


def test_cents_become_exact_decimal_euros() -> None:
    assert euros(123_456_789_10) == Decimal("123456789.1") and format(euros(123_456_789_10), "f") == "123456789.10"
    assert format(euros(1), "f") == "0.01" and format(euros(-5), "f") == "-0.05"
    assert dumps_exact({"a": [euros(1_713_000_000_00)], "b": "é"}) == '{"a":[1713000000.00],"b":"é"}'
    with pytest.raises(TypeError):
        euros(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dumps_exact({"amount": 0.1})


def test_exports_from_a_replay_of_the_topics(
    live: Settings, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    services = record_history(live)
    services.ledger.close_year(CODES[0], 2024, closed_by="ministry", final_account=True, closed_on=date(2025, 3, 1))
    # The eindverantwoording is the municipality's own declaration (issue 15), no longer the year close's.
    services.ledger.declare_sisa_line(
        CODES[0], 2024, 2024, final_account=True, declared_by="municipality", declared_on=date(2025, 3, 1)
    )
    services.publish()
    services.close()
    replay = replay_topics(live)

    annex = list(csv.DictReader(io.StringIO(sisa_annex_csv(replay, 2024))))
    assert [r["municipality_code"] for r in annex] == sorted(CODES[:3])
    amsterdam = next(r for r in annex if r["municipality_code"] == "GM0363")
    assert amsterdam["sisa_municipality_code"] == "060363" and amsterdam["eindverantwoording"] == "Ja"
    assert amsterdam["besteding_jaar_t_cents"] == str(12_345_67) and amsterdam["besteding_jaar_t_eur"] == "12345.67"
    utrecht = next(r for r in annex if r["municipality_code"] == "GM0344")
    assert (utrecht["besteding_jaar_t_eur"], utrecht["eindverantwoording"]) == ("7000.00", "Nee")
    assert (amsterdam["grant_year"], amsterdam["declared_on"], amsterdam["late"]) == ("2024", "2025-03-01", "False")
    assert (utrecht["grant_year"], utrecht["declared_on"], utrecht["late"]) == ("2024", "", "True")

    document = giving360(replay, GIVING360_IDS, year=2024).document
    validate_giving360(document)
    assert len(document["grants"]) == 3
    grant = next(g for g in document["grants"] if g["recipientOrganization"][0]["name"] == "Amsterdam")
    assert grant["id"].startswith("360G-") and grant["currency"] == "EUR" and grant["awardDate"] == "2024-01-15"
    assert grant["amountAwarded"] == Decimal("40000.00") == grant["amountDisbursed"]
    assert grant["disbursementTransaction"] == [{"transactionDate": "2024-01-31", "value": Decimal("40000.00")}]
    text = dumps_exact(document, indent=2)
    assert '"amountAwarded": 40000.00' in text
    assert json.loads(text, parse_float=Decimal)["grants"][0]["amountAwarded"] == Decimal("40000.00")
    missing = json.loads(text, parse_float=Decimal)
    del missing["grants"][0]["fundingOrganization"]
    with pytest.raises(Giving360Invalid, match="fundingOrganization"):
        validate_giving360(missing)

    reader = TopicReader(audit_kafka_config(live), audited_topics(live))
    try:
        lines = list(journal_lines(reader))
    finally:
        reader.close()
    envelopes = [json.loads(line) for line in lines]
    assert len(envelopes) == replay.stats.applied and all(compute_hash(e) == e["hash"] for e in envelopes)

    # the same through the command line
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for argv in (
        ["audit", "export", "sisa", "--year", "2024", "--out", str(tmp_path / "sisa.csv")],
        ["audit", "export", "360giving", "--year", "2024", "--out", str(tmp_path / "360.json")],
        ["audit", "export", "journal", "--out", str(tmp_path / "journal.jsonl")],
        ["audit", "replay", "--out", str(tmp_path / "replay"), "--as-of", "2024-12-31"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0, argv
    assert (tmp_path / "sisa.csv").read_text() == sisa_annex_csv(replay, 2024)
    assert len((tmp_path / "journal.jsonl").read_text().splitlines()) == len(lines)
    balances = json.loads((tmp_path / "replay" / "balances.json").read_text())
    assert balances["as_of"] == "2024-12-31" and balances["stats"]["applied"] == replay.stats.applied
    rows = list(csv.DictReader((tmp_path / "replay" / "balances.csv").open()))
    assert {r["municipality_code"] for r in rows} == set(CODES[:3])

    # 360Giving without the identifier settings: written, marked and warned about; --publishable refuses
    marked = json.loads((tmp_path / "360.json").read_text(), parse_float=Decimal)
    validate_giving360(marked)
    assert marked["title"].startswith("NIET PUBLICEREN") and len(marked["grants"]) == 3
    assert "WARNING 360Giving: IDO_360G_PREFIX" in capsys.readouterr().err
    for argv, code in (
        (["audit", "export", "360giving", "--publishable", "--out", str(tmp_path / "refused.json")], 1),
        # before any award there is nothing to publish (a 360Giving file holds at least one grant)
        (["audit", "export", "360giving", "--as-of", "2020-01-01", "--out", str(tmp_path / "refused.json")], 1),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == code, argv
    assert not (tmp_path / "refused.json").exists()
    # configured: publishable, every year, the bridging grants of the demo's libraries included
    for name, value in (("IDO_360G_PREFIX", "360G-test"), ("IDO_360G_FUNDER_ID", "NL-OIN-99900000000000000001"),
                        ("IDO_360G_KB_ID", "NL-KVK-99900002")):
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "export", "360giving", "--publishable", "--out", str(tmp_path / "all.json")])
    assert exit_.value.code == 0
    published = json.loads((tmp_path / "all.json").read_text(), parse_float=Decimal)
    validate_giving360(published)
    libraries = {library["library_id"]: library["name"] for library in read_demo_libraries()}
    bridge = [g for g in published["grants"] if g["id"].startswith("360G-test-bridge-")]
    assert {g["recipientOrganization"][0]["id"]: g["recipientOrganization"][0]["name"] for g in bridge} == libraries
    assert len(published["grants"]) == 3 + len(libraries) and "PLACEHOLDER" not in (tmp_path / "all.json").read_text()

