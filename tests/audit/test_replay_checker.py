"""The replay's checker process (services/audit/checks.py): the same verdicts as checking in the replay's own
process, in order, and it ends by itself when the replay closes it, even while another forked process holds
copies of the pipes (it was killed after a 10 s wait, on every replay, before it was told the end)."""

from __future__ import annotations

import multiprocessing

from contracts.canonical import canonical_json
from contracts.message_check import MessageCheck
from services.audit.checks import MAX_IN_FLIGHT, Checks, check_batch
from tests.contracts.test_message_check import _recorded


def _batch(n: int) -> list[tuple[bytes | None, list[tuple[str, bytes]]]]:
    good = canonical_json(_recorded())
    return [(good if i % 3 else good.replace(b"Flyers", b"Posters"), []) for i in range(n)]


def test_the_checker_gives_the_replays_own_verdicts_in_order_and_ends_by_itself() -> None:
    check = MessageCheck()
    # more than MAX_IN_FLIGHT: whether the replay checks some itself depends on the checker's pace
    batches = [_batch(5 + i % 4) for i in range(MAX_IN_FLIGHT + 2)]
    expected = [check_batch(check, None, "t", batch) for batch in batches]
    checks = Checks(check, None, parallel=True)
    assert checks._checker is not None
    process = checks._checker._process
    got = []
    for key, batch in enumerate(batches):
        got += list(checks.put(key, "t", batch))
    got += list(checks.drain())
    bystander = multiprocessing.get_context("fork").Process(target=multiprocessing.Event().wait, args=(30,))
    bystander.start()  # holds forked copies of every descriptor of this process, the pipes' ends among them
    try:
        checks.close()
        assert process.exitcode == 0  # ended on its own, not killed (-9) after the join's timeout
    finally:
        bystander.kill()
        bystander.join()
    assert [key for key, _v in got] == list(range(len(batches)))
    assert [verdicts for _k, verdicts in got] == expected
    assert any(isinstance(v, str) and v.startswith("hash") for v in expected[0])
