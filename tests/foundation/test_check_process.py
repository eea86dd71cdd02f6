"""The projector's checker process (services/common/check_process.py): the same verdicts as checking in the
projector's own process, in the order the polls were sent, and it ends by itself when the projector closes
it, even while another forked process holds copies of the pipes."""

from __future__ import annotations

import multiprocessing

from contracts.canonical import canonical_json
from contracts.message_check import MessageCheck
from services.common.check_process import Batch, CheckProcess, check_messages
from tests.contracts.test_message_check import _recorded


def _poll(*sizes: int) -> list[Batch]:
    good = canonical_json(_recorded())
    bad = good.replace(b"Flyers", b"Posters")  # its hash no longer matches
    return [(f"t{n}", [(good if i % 3 else bad, []) for i in range(n)]) for n in sizes]


def test_the_checker_gives_the_projectors_own_verdicts_in_order_and_ends_by_itself() -> None:
    check = MessageCheck()
    polls = [_poll(5, 4), _poll(7), _poll(2, 6, 1)]
    expected = [[check_messages(check, None, topic, messages) for topic, messages in poll] for poll in polls]
    checker = CheckProcess(check, None)
    process = checker._process
    for poll in polls[:2]:
        checker.send(poll)
    got = [checker.receive()]
    checker.send(polls[2])
    got += [checker.receive(), checker.receive()]
    assert checker.in_flight == 0
    checker.send(polls[0])  # not taken: dropped on close
    bystander = multiprocessing.get_context("fork").Process(target=multiprocessing.Event().wait, args=(30,))
    bystander.start()  # holds forked copies of every descriptor of this process, the pipes' ends among them
    try:
        checker.close()
        assert process.exitcode == 0  # ended on its own, not killed after the join's timeout
    finally:
        bystander.kill()
        bystander.join()
    assert got == expected
    assert any(isinstance(v, str) and v.startswith("hash") for v in expected[0][0])
    assert any(isinstance(v, dict) for v in expected[0][0])
