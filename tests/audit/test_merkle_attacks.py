"""Attacks on the event stores that the hash chains alone do not see, caught by `verify --since`.

Each runs on SQLite and on PostgreSQL, against a real broker: an event inserted into a store before
the last signed head (appended at the end with a `recorded_at` before the head, or placed inside
the covered range), an event deleted, two events swapped. `ido audit verify --since` exits 1 and
names the first event that breaks the head: its log, position, event id and notification id.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from eventsourcing.domain import CanCreateTimestamp

from contracts.canonical import parse_utc
from services.audit.checkpoint import CheckpointRefused, SinceReport, verify_since, write_checkpoint
from services.audit.verify import verify
from services.common.cli import main
from services.common.config import Settings
from tests.audit.support import (
    Services,
    cut_row,
    delete_stored,
    insert_row,
    notification_ids,
    record_history,
    shift_notifications,
    swap_states,
)


def checkpointed(live: Settings) -> tuple[Services, Path]:
    services = record_history(live)
    services.publish()
    # ledger store: notification 1 = expenditures[0], 2 = expenditures[1], 3 its reversal, 4 = expenditures[2]
    assert notification_ids(live, "ledger") == [1, 2, 3, 4]
    return services, write_checkpoint(live, reason="test")


def verify_cli(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
               path: Path) -> tuple[int, str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "verify", "--since", str(path)])
    return int(exit_.value.code or 0), capsys.readouterr().out


def first_break(report: SinceReport, log: str = "store:ledger") -> tuple[int | None, str, str | None, str | None]:
    assert not report.ok
    finding = report.first_breaks()[log]
    return finding.index, finding.kind, finding.event_id, finding.where


def test_a_new_stream_appended_with_a_recorded_at_before_the_head_is_flagged_as_backdated(
    live: Settings, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    services, path = checkpointed(live)
    created_at = parse_utc(json.loads(path.read_text())["created_at"])
    # the attacker's event: a new stream, correctly chained, its recorded_at two hours before the head
    with monkeypatch.context() as clock:
        clock.setattr(CanCreateTimestamp, "create_timestamp", staticmethod(lambda: created_at - timedelta(hours=2)))
        forged = services.spend("GM0344", 9_999_00, "2024-05-01")
    services.close()
    assert notification_ids(live, "ledger") == [1, 2, 3, 4, 5]
    assert verify(live, topics=False).ok  # every chain is intact: the chains alone do not see it

    report = verify_since(live, path)
    assert first_break(report) == (4, "backdated", forged["event_id"], "notification 5"), report.lines()
    assert set(report.first_breaks()) == {"store:ledger"}
    code, out = verify_cli(env, monkeypatch, capsys, path)
    assert code == 1 and forged["event_id"] in out and "notification 5" in out and "backdated" in out, out
    # and the checkpoint process refuses to sign over it
    with pytest.raises(CheckpointRefused, match=forged["event_id"]):
        write_checkpoint(live)


def test_an_event_placed_inside_the_covered_range_is_named(
    live: Settings, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    services = record_history(live)
    services.publish()
    extra = services.spend("GM0344", 123_00, "2024-05-01")  # recorded honestly, then kept aside by the attacker
    services.close()
    row = cut_row(live, "ledger", 5)
    path = write_checkpoint(live, reason="test")
    # ids after 1 shifted up, the row placed at 2: inside the range the head covered
    shift_notifications(live, "ledger", after=1, by=1)
    insert_row(live, "ledger", row, notification_id=2)
    assert notification_ids(live, "ledger") == [1, 2, 3, 4, 5]
    assert verify(live, topics=False).ok

    report = verify_since(live, path)
    assert first_break(report) == (1, "inserted", extra["event_id"], "notification 2"), report.lines()
    code, out = verify_cli(env, monkeypatch, capsys, path)
    assert code == 1 and extra["event_id"] in out and "notification 2" in out, out


def test_an_event_placed_in_a_notification_gap_is_named(live: Settings) -> None:
    services = record_history(live)
    services.publish()
    extra = services.spend("GM0344", 123_00, "2024-05-01")  # recorded honestly, then kept aside by the attacker
    services.close()
    row = cut_row(live, "ledger", 5)
    before_gap = write_checkpoint(live, reason="test")
    # a gap in the notification ids (as rolled-back inserts leave in PostgreSQL): ids after 2 move up by 5.
    # Renumbering alone changes no leaf: the history is the same sequence of events.
    shift_notifications(live, "ledger", after=2, by=5)
    assert notification_ids(live, "ledger") == [1, 2, 8, 9]
    assert verify_since(live, before_gap).ok
    over_gap = write_checkpoint(live, reason="over the gap")

    insert_row(live, "ledger", row, notification_id=3)
    assert verify(live, topics=False).ok
    for path in (before_gap, over_gap):
        report = verify_since(live, path)
        assert first_break(report) == (2, "inserted", extra["event_id"], "notification 3"), report.lines()


def test_a_deleted_event_is_named(
    live: Settings, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    services, path = checkpointed(live)
    services.close()
    cut_row(live, "ledger", 1)  # a whole stream of one event: every remaining chain is intact
    assert verify(live, topics=False).ok

    report = verify_since(live, path)
    assert first_break(report) == (0, "removed", services.expenditures[0]["event_id"], "notification 1"), (
        report.lines()
    )
    code, out = verify_cli(env, monkeypatch, capsys, path)
    assert code == 1 and services.expenditures[0]["event_id"] in out, out


def test_a_deleted_last_event_is_named(live: Settings) -> None:
    services, path = checkpointed(live)
    services.close()
    delete_stored(live, "ledger", services.expenditures[2]["stream_id"], 1)
    assert verify(live, topics=False).ok
    report = verify_since(live, path)
    assert first_break(report) == (3, "removed", services.expenditures[2]["event_id"], "notification 4"), (
        report.lines()
    )
    # without the leaves file the break is still found, but no longer located
    (path.parent / "leaves.sqlite").rename(path.parent / "elsewhere.sqlite")
    unlocated = verify_since(live, path)
    assert first_break(unlocated) == (3, "shrank", None, None) and "no leaves file" in unlocated.notes[0]
    with pytest.raises(CheckpointRefused, match="store:ledger"):
        write_checkpoint(live)  # nor will a head be signed over it: the latest head's root is checked too


def test_two_swapped_events_are_named(
    live: Settings, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    services, path = checkpointed(live)
    services.close()
    swap_states(live, "ledger", 1, 2)  # two first events of two streams: each chain still verifies
    assert verify(live, topics=False).ok

    report = verify_since(live, path)
    index, kind, event_id, where = first_break(report)
    assert (index, kind, event_id, where) == (0, "reordered", services.expenditures[1]["event_id"], "notification 1")
    assert services.expenditures[0]["event_id"] in report.first_breaks()["store:ledger"].message
    code, out = verify_cli(env, monkeypatch, capsys, path)
    assert code == 1 and "reordered" in out and services.expenditures[1]["event_id"] in out, out
