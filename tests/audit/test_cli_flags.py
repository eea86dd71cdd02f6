"""The audit commands' flags run for real through `ido audit ...`: each changes what is written or printed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from services.audit.checkpoint import read_head
from services.audit.signing import signing_key
from services.audit.verify import store_side
from services.common.cli import main
from services.common.config import Settings
from tests.audit.support import CODES, record_history


def ido(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    return int(exit_.value.code or 0)


def test_audit_flags_change_what_is_written_and_printed(
    live: Settings, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    services = record_history(live)
    services.publish()
    services.close()
    target = services.expenditures[0]
    capsys.readouterr()

    # checkpoint --reason: recorded in the signed head
    assert ido(env, monkeypatch, "audit", "checkpoint", "--reason", "year-end 2024") == 0
    [head] = sorted(live.checkpoint_dir.glob("checkpoint-*.json"))
    assert read_head(head)["reason"] == "year-end 2024"

    # verify --json: the report as JSON; --stores-only leaves the topics out of it
    capsys.readouterr()
    assert ido(env, monkeypatch, "audit", "verify", "--json", "--stores-only") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["breaks"] == []
    assert sorted(report["checked"]) == sorted(store_side(s) for s in ("bridge", "ledger", "payments"))  # no topic
    assert ido(env, monkeypatch, "audit", "verify", "--since", str(head), "--json") == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True

    # --public-key: a head checked against another key is not trusted (exit 1)
    signing_key(tmp_path / "other-private.pem", tmp_path / "other.pem")
    assert ido(env, monkeypatch, "audit", "verify", "--since", str(head), "--public-key",
               str(tmp_path / "other.pem")) == 1
    assert "not with the trusted key" in capsys.readouterr().out

    # prove --out: the inclusion proof in a file, nothing on standard output
    proof = tmp_path / "proofs" / "proof.json"
    assert ido(env, monkeypatch, "audit", "prove", target["event_id"], "--out", str(proof)) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(proof.read_text())["event_id"] == target["event_id"]

    # export sisa --municipality: one municipality's row only, with its spending
    annex = tmp_path / "sisa.csv"
    assert ido(env, monkeypatch, "audit", "export", "sisa", "--year", "2024", "--municipality", CODES[0],
               "--out", str(annex)) == 0
    rows = list(csv.DictReader(annex.open()))
    assert [(r["municipality_code"], r["besteding_jaar_t_cents"]) for r in rows] == [(CODES[0], "1234567")]

    # replay --known-at: before anything was recorded nothing counts; --strict: the same figures as without
    assert ido(env, monkeypatch, "audit", "replay", "--out", str(tmp_path / "before"),
               "--known-at", "2024-01-01T00:00:00Z") == 0
    assert list(csv.DictReader((tmp_path / "before" / "balances.csv").open())) == []
    assert ido(env, monkeypatch, "audit", "replay", "--out", str(tmp_path / "strict"), "--strict") == 0
    assert ido(env, monkeypatch, "audit", "replay", "--out", str(tmp_path / "plain")) == 0
    strict = list(csv.DictReader((tmp_path / "strict" / "balances.csv").open()))
    assert strict == list(csv.DictReader((tmp_path / "plain" / "balances.csv").open()))
    assert {r["municipality_code"]: r["spent_cents"] for r in strict} == {
        CODES[0]: "1234567", CODES[1]: "700000", CODES[2]: "0",
    }
