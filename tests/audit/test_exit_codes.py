"""Exit statuses an automated auditor can trust (issue 16): the real `ido audit` in a process of its own.

0: everything read and checked, nothing found; 1: the command ran and found a problem (a message
invalid, unsealed or refused, printed); 2: it could not run (usage, a file, a store, the broker), so it
says nothing about the history. Before, a replay over a refused or invalid message exited 0, and a
store that could not be opened gave Python's own 1, the status of "problems found".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kafka import KafkaProducer

from contracts.topics import EXPENDITURES
from services.audit.exit_status import EXIT_COULD_NOT_RUN, EXIT_OK, EXIT_STATUS
from services.common.cli import build_parser
from services.common.config import load_settings
from tests.ledger.events import Streams, at
from tests.support.infra import KafkaInfo

REPO = Path(__file__).resolve().parents[2]
A = "GM0363"


def ido(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.common.cli", "audit", *args], cwd=REPO, env={**os.environ, **env},
        capture_output=True, text=True, timeout=300,
    )


@pytest.fixture
def cli_env(tmp_path: Path, kafka: KafkaInfo, topic_prefix: str) -> dict[str, str]:
    """The settings of an auditor's process: this test's topics; no event store is read."""
    return {
        "IDO_DATA_DIR": str(tmp_path / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys"), "IDO_EVENT_STORE": "sqlite",
        **kafka.settings_env(), "IDO_TOPIC_PREFIX": topic_prefix,
    }


def history(prefix: str) -> tuple[Streams, dict]:
    """An award and an expenditure of it: a history with nothing wrong."""
    s = Streams(prefix)
    grant = f"grant-2024-{A}"
    s.event("GrantAwarded", grant, A, at("2024-01-15"), grant_id=grant, year=2024, municipality_code=A,
            municipality_name="Amsterdam", amount_cents=40_000_00, awarded_on="2024-01-15", basis="annex")
    expenditure_id = str(uuid.uuid4())
    spent = s.event(
        "ExpenditureRecorded", f"expenditure-{expenditure_id}", A, at("2024-02-01"), expenditure_id=expenditure_id,
        municipality_code=A, grant_year=2024, category="promotion", amount_cents=500_00, booked_on="2024-02-01",
        counterparty={"id": "drukkerij", "name": "Drukkerij"}, description="flyers", reference="F-1",
    )
    return s, spent


@pytest.mark.parametrize("wrong", ["nothing", "invalid", "refused"])
def test_replay_and_the_exports_on_it_exit_1_when_a_message_was_invalid_or_refused(
    cli_env: dict[str, str], kafka: KafkaInfo, tmp_path: Path, wrong: str
) -> None:
    settings = load_settings(cli_env)
    s, spent = history(settings.topic_prefix)
    if wrong == "refused":  # sealed by the ledger, so genuine, but it reverses more than was spent: refused
        p = spent["payload"]
        s.event("ExpenditureReversed", spent["stream_id"], A, at("2024-03-01"), expenditure_id=p["expenditure_id"],
                municipality_code=A, grant_year=2024, reverses_event_id=spent["event_id"],
                amount_cents=p["amount_cents"] + 1, category=p["category"], booked_on="2024-03-01", reason="too much")
    s.send(settings)
    if wrong == "invalid":  # written by someone who may write the topic: no envelope at all
        producer = KafkaProducer(**kafka.client(), acks="all")
        producer.send(settings.topic(EXPENDITURES.name), key=A.encode(), value=b"not an envelope")
        producer.flush()
        producer.close()
    expected = 0 if wrong == "nothing" else 1

    replay = ido(cli_env, "replay", "--out", str(tmp_path / "replay"))
    assert replay.returncode == expected, (replay.stdout, replay.stderr)
    stats = json.loads((tmp_path / "replay" / "balances.json").read_text())["stats"]
    assert (stats["invalid"], stats["refused"]) == {"nothing": (0, 0), "invalid": (1, 0), "refused": (0, 1)}[wrong]
    problems = [line for line in replay.stdout.splitlines() if line.startswith("PROBLEM ")]
    if wrong == "invalid":
        assert len(problems) == 1 and "offset" in problems[0] and "breaks its contract" in problems[0], problems
    elif wrong == "refused":
        assert len(problems) == 1 and "refused: the reversal does not match" in problems[0], problems
    else:
        assert problems == []

    if wrong != "invalid":  # an export made from such a replay is written, and says so with its exit status
        annex = tmp_path / "sisa.csv"
        export = ido(cli_env, "export", "sisa", "--year", "2024", "--out", str(annex))
        assert export.returncode == expected and annex.exists(), (export.stdout, export.stderr)
        assert ("PROBLEM " in export.stderr) is (expected == 1)
    else:  # the journal writes what it cannot read as such, and exits 1
        journal = ido(cli_env, "export", "journal", "--out", str(tmp_path / "journal.jsonl"))
        assert journal.returncode == 1 and "not a readable envelope" in journal.stderr, journal.stderr
    if wrong == "nothing":  # could not run: it checked nothing, which is neither 0 nor 1
        (tmp_path / "a-file").write_text("")
        unwritable = ido(cli_env, "replay", "--out", str(tmp_path / "a-file" / "replay"))
        assert unwritable.returncode == 2 and "could not run" in unwritable.stderr, unwritable.stderr


def test_a_store_that_cannot_be_opened_is_could_not_run_not_a_finding(tmp_path: Path) -> None:
    """Without the fix Python's traceback exited 1: "a chain breaks" for a store that was never read."""
    (tmp_path / "a-file").write_text("")
    env = {"IDO_DATA_DIR": str(tmp_path / "a-file" / "data"), "IDO_KEYS_DIR": str(tmp_path / "keys"),
           "IDO_EVENT_STORE": "sqlite"}
    result = ido(env, "verify", "--stores-only")
    assert result.returncode == 2 and "could not run" in result.stderr, result.stderr


def _audit_parsers() -> dict[str, str]:
    """The help text of every `ido audit` command, by its name (``export sisa``...)."""
    import argparse

    def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return dict(actions[0].choices) if actions else {}

    audit = subcommands(build_parser())["audit"]
    found = {}
    for name, parser in subcommands(audit).items():
        children = subcommands(parser)
        found[name] = parser.format_help()
        found.update({f"{name} {child}": sub.format_help() for child, sub in children.items()})
    return {"audit": audit.format_help(), **found}


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_every_audit_command_documents_its_exit_statuses_in_its_help_and_in_docs() -> None:
    helps = _audit_parsers()
    commands = {name for name in helps if name not in ("audit", "export")}
    assert commands == set(EXIT_STATUS), "a command without its exit statuses (services/audit/exit_status.py)"
    docs = _flat((REPO / "docs" / "audit.md").read_text(encoding="utf-8"))
    for name, text in helps.items():
        flat = _flat(text)
        assert "exit status: 0 " + EXIT_OK in flat and "2 " + _flat(EXIT_COULD_NOT_RUN) in flat, name
        group = {"audit": "", "export": "export "}.get(name)  # a group's help lists its commands' meanings
        meanings = [m for c, m in EXIT_STATUS.items() if (c == name if group is None else c.startswith(group))]
        assert meanings and all(_flat(m) in flat for m in meanings), name
    for name, meaning in EXIT_STATUS.items():
        assert f"`ido audit {name}`" in docs and _flat(meaning) in docs, f"docs/audit.md: exit status 1 of {name}"
    assert _flat(EXIT_OK) in docs and _flat(EXIT_COULD_NOT_RUN) in docs
