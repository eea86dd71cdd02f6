"""Signed tree heads: honest growth extends them, a rewritten topic or an edited head does not; proofs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contracts.ido_verify import check_consistency, check_inclusion, load_public_key
from contracts.topics import EXPENDITURES, GRANTS
from services.audit.checkpoint import CheckpointRefused, read_head, verify_since, write_checkpoint
from services.audit.prove import ProofRefused, prove_consistency, prove_inclusion
from services.common.cli import main
from services.common.config import Settings
from services.ledger.entrypoints.definition import create_app
from tests.audit.support import record_history, tamper
from tests.audit.test_reconcile import raw_messages, recreate_topic, values_by_partition
from tests.support.kafka_topics import admin_config
from tests.support.tokens import TokenFactory


def run_cli(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    return int(exit_.value.code or 0)


def test_heads_extend_over_honest_growth_on_stores_and_topic_partitions(live: Settings) -> None:
    services = record_history(live)
    services.publish()
    first = write_checkpoint(live, reason="test")
    head = read_head(first)
    assert head["format"] == "ido-checkpoint/2" and head["reason"] == "test"
    assert oct(live.checkpoint_key_file.stat().st_mode & 0o777) == "0o600"
    assert head["logs"]["store:ledger"]["size"] == 4
    expenditures = {n: e for n, e in head["logs"].items() if n.startswith(f"topic:{EXPENDITURES.name}/")}
    assert len(expenditures) == EXPENDITURES.partitions and sum(e["size"] for e in expenditures.values()) == 4

    # honest growth: a new event stored and published, and a re-sent copy appended to a partition
    services.spend("GM0344", 250_00, "2024-06-01")
    services.publish()
    services.close()
    since = verify_since(live, first)
    assert since.ok, since.lines()
    assert since.logs["store:ledger"] == {"size_then": 4, "size_now": 5}
    assert sum(since.logs[n]["size_now"] for n in expenditures) == 5

    second = write_checkpoint(live, reason="later")
    assert verify_since(live, first).ok and verify_since(live, second).ok
    document, problems = prove_consistency(live, first, second)
    assert not problems
    assert document["proofs"]["store:ledger"]["old_size"] == 4 and document["proofs"]["store:ledger"]["new_size"] == 5
    lines, failed = check_consistency(document, load_public_key(live.checkpoint_public_key_file))
    assert not failed and any("store:ledger: 5 leaves extend the 4" in line for line in lines), lines


def test_an_event_changed_in_place_is_named_and_refused(live: Settings) -> None:
    services = record_history(live)
    services.publish()
    services.close()
    path = write_checkpoint(live)
    target = services.expenditures[0]
    tamper(live, "ledger", target["stream_id"], 1, '"amount_cents":1234567', '"amount_cents":1234500')
    report = verify_since(live, path)
    assert not report.ok
    first = report.first_breaks()["store:ledger"]
    found = (first.index, first.kind, first.event_id, first.where)
    assert found == (0, "content", target["event_id"], "notification 1")
    with pytest.raises(CheckpointRefused, match=target["event_id"]):
        write_checkpoint(live)


def test_a_rewritten_topic_partition_is_named_by_partition_and_offset(live: Settings) -> None:
    services = record_history(live)
    services.publish()
    services.close()
    path = write_checkpoint(live)
    topic = live.topic(GRANTS.name)
    before = values_by_partition(admin_config(live), topic)
    recreate_topic(admin_config(live), topic, list(reversed(raw_messages(admin_config(live), topic))))
    after = values_by_partition(admin_config(live), topic)
    # Each key keeps its partition, so a partition of two or more messages now starts with its former last one.
    assert {p: sorted(v) for p, v in after.items()} == {p: sorted(v) for p, v in before.items()}
    expected = {
        f"topic:{GRANTS.name}/{partition}": (
            0, "reordered", json.loads(values[-1])["event_id"], f"partition {partition} offset 0",
            f"event {json.loads(values[-1])['event_id']} (partition {partition} offset 0) is out of order"
            # a swapped pair is also "the one here removed": no single earlier position to name then
            + (f" (the checkpoint had it at position {len(values) - 1})" if len(values) > 2 else "")
            + "; the checkpoint had event "
            + f"{json.loads(values[0])['event_id']} (partition {partition} offset 0) here",
        )
        for partition, values in before.items() if len(values) >= 2
    }
    assert expected, before  # the history puts two or more grants events on some partition
    report = verify_since(live, path)
    assert not report.ok
    breaks = report.first_breaks()
    found = {name: (f.index, f.kind, f.event_id, f.where) for name, f in breaks.items()}
    assert found == {name: e[:4] for name, e in expected.items()}, report.lines()
    assert {name: f.message for name, f in breaks.items()} == {name: e[4] for name, e in expected.items()}
    assert verify_since(live, path, topics=False).ok  # the stores are untouched
    with pytest.raises(CheckpointRefused, match=GRANTS.name):
        write_checkpoint(live)


def test_an_edited_or_foreign_head_fails_and_an_old_format_is_a_usage_error(
    live: Settings, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    services = record_history(live)
    services.publish()
    services.close()
    path = write_checkpoint(live)
    head = read_head(path)
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps({**head, "logs": {**head["logs"], "store:ledger": {"size": 3, "root": "0" * 64}}}))
    assert [f.message for f in verify_since(live, edited).findings] == [
        "the signature does not match the head's content (the head was changed, or is not ours)"
    ]
    from services.audit.signing import signing_key

    signing_key(tmp_path / "other-private.pem", tmp_path / "other.pem")
    foreign = verify_since(live, path, public_key_file=tmp_path / "other.pem")
    assert not foreign.ok and "not with the trusted key" in foreign.findings[0].message
    assert run_cli(env, monkeypatch, "audit", "verify", "--since", str(edited)) == 1
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"checkpoint": {"format": "ido-audit-checkpoint/1"}, "signature": {}}))
    assert run_cli(env, monkeypatch, "audit", "verify", "--checkpoint", str(old)) == 2
    assert run_cli(env, monkeypatch, "audit", "verify", "--since", str(tmp_path / "missing.json")) == 2


def test_inclusion_proofs_of_a_stored_and_published_event(
    live: Settings, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    services = record_history(live)
    services.publish()
    target = services.expenditures[2]
    later = services.spend("GM0344", 1_00, "2024-06-01")
    services.close()
    path = write_checkpoint(live)  # covers `later` in the store, not on the topic (not yet published)
    document = prove_inclusion(live, target["event_id"])
    assert document["head"] == read_head(path)
    logs = sorted(p["log"] for p in document["proofs"])
    assert logs[0] == "store:ledger" and logs[1].startswith(f"topic:{EXPENDITURES.name}/") and len(logs) == 2
    store = next(p for p in document["proofs"] if p["log"] == "store:ledger")
    topic = next(p for p in document["proofs"] if p["log"] != "store:ledger")
    assert store["envelope"]["event_id"] == target["event_id"] and store["where"] == "notification 4"
    assert json.loads(__import__("base64").b64decode(topic["message"]["value"]))["event_id"] == target["event_id"]
    lines, failed = check_inclusion(document, load_public_key(live.checkpoint_public_key_file))
    assert not failed and len(lines) == 2, (lines, failed)
    only_store = prove_inclusion(live, later["event_id"])
    assert [p["log"] for p in only_store["proofs"]] == ["store:ledger"]
    with pytest.raises(ProofRefused, match="not covered"):
        prove_inclusion(live, "00000000-0000-0000-0000-000000000000")

    capsys.readouterr()
    assert run_cli(env, monkeypatch, "audit", "prove", target["event_id"], "--checkpoint", str(path)) == 0
    assert json.loads(capsys.readouterr().out)["event_id"] == target["event_id"]
    second = write_checkpoint(live)
    assert run_cli(env, monkeypatch, "audit", "prove", "--consistency", str(path), str(second)) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "ido-consistency-proof/1"
    assert run_cli(env, monkeypatch, "audit", "prove", "00000000-0000-0000-0000-000000000000") == 1
    assert run_cli(env, monkeypatch, "audit", "prove") == 2


def test_the_web_process_signs_nothing_and_the_next_head_covers_a_closing(
    live: Settings, tokens: TokenFactory
) -> None:
    services = record_history(live)
    services.publish()
    services.close()
    closed = create_app(live).test_client().post(
        "/v1/municipalities/GM0363/years/2024/close",
        headers=tokens.headers("ministry"),  # closing is the ministry's (auditors read only, issue 16)
        json={"final_account": True, "closed_on": "2025-03-01"},
    )
    assert closed.status_code == 201, closed.json
    assert not live.checkpoint_key_file.exists() and not list(live.checkpoint_dir.glob("checkpoint-*"))
    write_checkpoint(live, reason="the scheduled head")
    [proof] = prove_inclusion(live, closed.json["event_id"])["proofs"]
    assert proof["log"] == "store:ledger" and proof["envelope"]["event_type"] == "YearClosed"


def test_the_ledger_web_process_does_not_load_the_checkpoint_code() -> None:
    found = subprocess.run(
        [sys.executable, "-c", "import sys, services.ledger.entrypoints.definition as d; "
         "print(sorted(m for m in sys.modules if m.startswith('services.audit')))"],
        capture_output=True, text=True, check=True,
    )
    assert found.stdout.strip() == "[]", found.stdout


def test_the_checkpoint_process_writes_heads_on_schedule_and_stops_on_sigterm(env: dict[str, str],
                                                                              live: Settings) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "services.common.cli", "audit", "checkpoint", "--every", "1"],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(live.checkpoint_dir.glob("checkpoint-*.json"))) < 2:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "no second head in 60 s"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    heads = sorted(live.checkpoint_dir.glob("checkpoint-*.json"))
    assert all(read_head(h)["reason"] == "scheduled" for h in heads)
    assert not list(live.checkpoint_dir.glob(".*.tmp"))
    assert verify_since(live, heads[0]).ok
