"""Parts of the write path made cheaper in issue 17: the SQLite writers' turn, the moving-window counter,
the recorded event ids written in the save's own transaction, documented answers without a wrapper."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from services.common.adapters.writers_in_turn import WritersInTurn
from services.common.blueprint import Blueprint
from services.common.error_schema import ServiceErrorSchema
from services.common.principal_limit import MovingWindow
from services.common.side_rows import SideRows


def test_a_writer_of_another_process_waits_for_the_turn_even_after_a_fork(tmp_path: Path) -> None:
    turn = WritersInTurn(str(tmp_path / "events.sqlite"))
    with turn:  # opened in the parent: a forked child must not share its lock
        pass
    ready_r, ready_w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        with turn:
            os.write(ready_w, b"x")
            time.sleep(0.3)
        os._exit(0)
    os.read(ready_r, 1)
    started = time.monotonic()
    with turn:
        waited_s = time.monotonic() - started
    os.waitpid(child, 0)
    assert waited_s >= 0.2


def test_an_in_memory_store_takes_turns_between_threads_only() -> None:
    turn = WritersInTurn(":memory:")
    with turn:
        assert turn.path is None


def test_the_moving_window_counts_refuses_and_frees_room(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    window = MovingWindow(2, window_s=60)
    assert window.hit("a") and window.hit("a")
    assert not window.hit("a") and not window.test("a")
    assert window.hit("b")  # per key
    assert window.seconds_to_room("a") == pytest.approx(60)
    now[0] += 30
    assert window.seconds_to_room("a") == pytest.approx(30)
    now[0] += 30.001
    assert window.test("a") and window.hit("a")
    now[0] += 120  # idle keys are swept
    window.hit("c")
    assert set(window._hits) == {"c"}


def test_side_rows_take_plain_names_only() -> None:
    SideRows("ledger_recorded_events", ("event_id", "municipality_code"), [])
    with pytest.raises(ValueError):
        SideRows("t; DROP TABLE x", ("event_id",), [])
    with pytest.raises(ValueError):
        SideRows("t", ("event_id\n",), [])


def test_the_turn_is_reentrant_within_a_thread_and_exclusive_between_threads(tmp_path: Path) -> None:
    import threading

    turn = WritersInTurn(str(tmp_path / "events.sqlite"))
    other_entered = threading.Event()

    def other() -> None:
        with turn:
            other_entered.set()

    with turn:
        with turn:  # the group commit holds it, the recorder's insert takes it again
            pass
        thread = threading.Thread(target=other)
        thread.start()
        # still held after the inner exit: the other thread waits
        assert not other_entered.wait(0.2)
    assert other_entered.wait(5)
    thread.join(5)


def test_a_documented_answer_adds_no_call_to_the_view_and_leaves_the_view_as_it_was() -> None:
    blueprint = Blueprint("documented", __name__)

    def view(code: str, *, page: int = 1) -> str:
        return f"{code} {page}"

    documented = blueprint.alt_response(409, schema=ServiceErrorSchema, description="taken")(
        blueprint.alt_response(404, schema=ServiceErrorSchema, description="unknown")(view)
    )
    assert documented.__code__ is view.__code__  # the view's own code: nothing runs in between
    assert documented("GM0363", page=2) == "GM0363 2" and documented.__wrapped__ is not None
    answers = documented._apidoc["response"]["responses"]  # type: ignore[attr-defined]
    assert {404, 409} <= set(answers)
    assert answers[409][0]["description"] == "taken"
    assert not hasattr(view, "_apidoc")  # another route may decorate the same function differently

    async def coroutine() -> str:
        return "ok"

    # A coroutine keeps flask-smorest's wrapper: there ensure_sync does something.
    assert blueprint.alt_response(409, schema=ServiceErrorSchema)(coroutine).__code__ is not coroutine.__code__
