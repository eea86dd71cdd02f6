"""The progress helper: a bar at a terminal, log lines elsewhere, nothing when switched off."""

from __future__ import annotations

import io
import logging

import pytest

from services.common.progress import Progress, track


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_with_the_count_and_total() -> None:
    stream = Terminal()
    with Progress("replaying", total=5, unit="event", stream=stream) as progress:
        assert progress.mode == "bar"
        for _ in range(5):
            progress.update()
    assert "replaying" in stream.getvalue() and "5/5" in stream.getvalue()


def test_elsewhere_it_logs_every_interval_and_at_the_end(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()  # not a terminal
    caplog.set_level(logging.INFO, logger="ido.progress")
    items = list(track(range(7), "importing", unit="row", stream=stream, log_every_s=0))
    assert items == list(range(7))
    assert stream.getvalue() == ""  # no bar, no carriage returns in a log file
    lines = [r for r in caplog.records if r.name == "ido.progress"]
    assert lines[-1].getMessage().startswith("importing: done 7/7")
    assert lines[-1].__dict__["progress_done"] == 7 and lines[-1].__dict__["progress_total"] == 7
    assert len(lines) == 8  # one per item (interval 0) and the final line


def test_off_is_silent_and_a_total_is_optional(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDO_PROGRESS", "off")
    caplog.set_level(logging.INFO, logger="ido.progress")
    stream = Terminal()
    assert sum(track((i for i in range(3)), "counting", stream=stream)) == 3
    assert stream.getvalue() == "" and not [r for r in caplog.records if r.name == "ido.progress"]
    monkeypatch.setenv("IDO_PROGRESS", "log")
    with Progress("open-ended", stream=Terminal(), log_every_s=3600) as progress:
        progress.update(10)
    assert caplog.records[-1].getMessage().startswith("open-ended: done 10 ")
