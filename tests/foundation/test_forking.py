"""A process forked while another thread writes a log line must not inherit that write's lock
(services/common/forking.py): the projector's reading process hung in its first log line this way."""

from __future__ import annotations

import io
import logging
import multiprocessing
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from services.common.assigned_reader import AssignedReader
from services.common.forking import end_forked, handlers_held, logging_handlers, start_forked, telling_its_stacks

WRITE_HELD_S = 0.4


class SlowFile:
    """A file whose write holds its own lock for a while, as a buffered file holds its buffer lock
    through a ``write`` that waits for a slow reader of a pipe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writing = threading.Event()

    def write(self, text: str) -> None:
        with self.lock:
            self.writing.set()
            time.sleep(WRITE_HELD_S)

    def flush(self) -> None:
        with self.lock:
            pass


@pytest.fixture
def slow_logger() -> Iterator[tuple[logging.Logger, SlowFile]]:
    slow = SlowFile()
    handler = logging.StreamHandler(slow)  # type: ignore[arg-type]
    logger = logging.getLogger("tests.forking.slow")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, slow
    logger.removeHandler(handler)


def _log_once(name: str) -> None:
    logging.getLogger(name).info("the child's first line")


def _forked_while_a_thread_writes(logger: logging.Logger, slow: SlowFile, start: Any) -> int | None:
    writer = threading.Thread(target=logger.info, args=("the parent's line",))
    writer.start()
    assert slow.writing.wait(5)
    child = multiprocessing.get_context("fork").Process(target=_log_once, args=(logger.name,), daemon=True)
    start(child)
    child.join(timeout=5 + WRITE_HELD_S * 2)
    writer.join()
    if child.is_alive():
        child.kill()
        child.join()
        return None
    return child.exitcode


def test_a_child_forked_while_a_thread_logs_can_log(slow_logger: tuple[logging.Logger, SlowFile]) -> None:
    logger, slow = slow_logger
    assert _forked_while_a_thread_writes(logger, slow, start_forked) == 0


def test_the_attack_the_plain_start_hangs_the_child(slow_logger: tuple[logging.Logger, SlowFile]) -> None:
    """What ``start_forked`` prevents, shown with the plain ``start``: the child never ends."""
    logger, slow = slow_logger
    assert _forked_while_a_thread_writes(logger, slow, lambda process: process.start()) is None


def test_every_handler_is_held_and_then_released(slow_logger: tuple[logging.Logger, SlowFile]) -> None:
    handlers = [h for h in logging_handlers() if h.lock is not None]  # a NullHandler has no lock
    assert any(isinstance(h, logging.StreamHandler) and isinstance(h.stream, SlowFile) for h in handlers)
    taken = []
    with handlers_held():
        for handler in handlers:  # from another thread: each is held
            probe = threading.Thread(target=lambda h=handler: taken.append(h.lock.acquire(timeout=0.01)))
            probe.start()
            probe.join()
    assert taken == [False] * len(handlers)
    assert all(h.lock.acquire(timeout=1) for h in handlers)
    for handler in handlers:
        handler.lock.release()


def _stuck(*_args: Any) -> None:
    threading.Event().wait()  # as a child waiting for a lock no thread will release


def test_a_reading_process_that_never_says_ready_is_killed_and_raised(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Any other way of hanging at the start (a lock not covered by ``start_forked``) ends in an error the
    projector logs and retries with a new process, not in a projector that reads nothing for good; the process
    wrote where it was stuck first."""
    import services.common.assigned_reader as assigned_reader
    from contracts.message_check import MessageCheck

    monkeypatch.setattr(assigned_reader, "_read_and_send", _stuck)
    reader = AssignedReader({}, {}, MessageCheck(), None, ready_within_s=1.0)
    assert reader.started(0.2) is False  # not yet: still within its time
    deadline = time.monotonic() + 10
    with pytest.raises(RuntimeError, match="did not start in time"):
        while time.monotonic() < deadline:
            reader.started(0.2)
    assert not reader.alive()
    reader.close()
    stacks = capfd.readouterr().err
    assert "most recent call first" in stacks and "in _stuck" in stacks, stacks


def test_a_replays_reading_process_that_says_nothing_is_killed_and_raised(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The audit replay's reading process, stuck, ends in an error the auditor sees, not in a replay that waits
    for good (its reader's idle timeout plus ``SILENCE_MARGIN_S``), after it wrote where it was stuck."""
    from types import SimpleNamespace

    import services.audit.checks as audit_checks
    from contracts.message_check import MessageCheck

    monkeypatch.setattr(audit_checks, "_read_and_send", _stuck)
    monkeypatch.setattr(audit_checks, "SILENCE_MARGIN_S", 0.5)
    reader = SimpleNamespace(kafka_config={}, topics=["t"], idle_timeout_s=0.5)
    process = audit_checks.ReadingProcess(reader, [], MessageCheck(), None)  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="said nothing for 1 s"):
        next(iter(process))
    assert 0.9 < time.monotonic() - started < 10
    assert not process._process.is_alive()
    process.close()
    assert "in _stuck" in capfd.readouterr().err


def test_a_reading_process_stuck_when_it_is_closed_writes_its_stacks_before_the_kill(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """An owner that gives up on its reading process before the process's own deadlines (a test's shorter
    wait, a projector stopping) closes it: one that does not end then is stuck too, and says where before it
    is killed. A test of the projector's reader failed that way in `make test` without a trace (thirty-first
    round)."""
    from types import SimpleNamespace

    import services.audit.checks as audit_checks
    import services.common.assigned_reader as assigned_reader
    from contracts.message_check import MessageCheck

    monkeypatch.setattr(assigned_reader, "_read_and_send", _stuck)
    monkeypatch.setattr(assigned_reader, "CLOSE_WAIT_S", 0.3)
    reader = AssignedReader({}, {}, MessageCheck(), None)
    reader.close()
    assert not reader.alive()
    assert "in _stuck" in capfd.readouterr().err
    monkeypatch.setattr(audit_checks, "_read_and_send", _stuck)
    monkeypatch.setattr(audit_checks, "CLOSE_WAIT_S", 0.3)
    replays = SimpleNamespace(kafka_config={}, topics=["t"], idle_timeout_s=30.0)
    process = audit_checks.ReadingProcess(replays, [], MessageCheck(), None)  # type: ignore[arg-type]
    process.close()
    assert not process._process.is_alive()
    assert "in _stuck" in capfd.readouterr().err


def _ends_soon() -> None:
    time.sleep(0.2)


def test_end_forked_waits_for_a_process_that_ends_and_kills_one_that_does_not() -> None:
    """Each owner ends its process with ``end_forked``: one that ends within the wait ends by itself (exit code
    0, not killed); a stuck one is killed after the wait and joined (no zombie, ``exitcode`` set)."""
    context = multiprocessing.get_context("fork")
    ending = context.Process(target=_ends_soon, daemon=True)
    start_forked(ending)
    end_forked(ending, wait_s=10)
    assert ending.exitcode == 0
    stuck = context.Process(target=_stuck, daemon=True)
    start_forked(stuck)
    started = time.monotonic()
    end_forked(stuck, wait_s=0.3)
    assert 0.3 <= time.monotonic() - started < 10
    assert stuck.exitcode == -9 and not stuck.is_alive()


def test_the_forked_processes_start_through_start_forked() -> None:
    """Both forking sites (the projector's reader, the audit replay's) start their process this way."""
    import inspect

    import services.audit.checks as audit_checks
    import services.common.assigned_reader as assigned_reader

    for module in (assigned_reader, audit_checks):
        source = inspect.getsource(module)
        assert "start_forked(self._process)" in source, module.__name__
        assert "self._process.start()" not in source, module.__name__
        assert "self._process.kill()" not in source, module.__name__  # ended through end_forked
    assert AssignedReader  # the projector's reader is the one that hung


def test_a_child_told_to_write_its_stacks_starts_where_standard_error_is_no_file(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A CLI test's runner replaces sys.stderr with an object without a descriptor, which faulthandler refuses:
    the reading process starts all the same, and its stacks go to descriptor 2."""
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    process = multiprocessing.get_context("fork").Process(target=telling_its_stacks(_stuck), daemon=True)
    start_forked(process)
    time.sleep(0.5)  # started, and waiting
    assert process.is_alive()
    end_forked(process, wait_s=0, tell_stacks=True)
    assert "in _stuck" in capfd.readouterr().err
