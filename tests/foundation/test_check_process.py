"""The projector's checker process (services/common/check_process.py): the same verdicts as checking in the
projector's own process, in the order the polls were sent, and it ends by itself when the projector closes
it, even while another forked process holds copies of the pipes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from contracts.canonical import canonical_json
from contracts.message_check import MessageCheck
from contracts.provenance import PROOF_HEADER, SEAL_HEADER
from contracts.topics import EXPENDITURES
from services.common.check_process import Batch, CheckProcess, check_messages
from services.common.config import load_settings
from services.common.signing import build_provenance_check, seal_envelopes
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


def test_across_the_pipe_a_seal_is_judged_on_the_headers_the_projector_read(tmp_path: Path) -> None:
    """The checker gets of each message only its value, seal and proof (``compact_batches``): a message whose seal
    headers come twice, come empty, are missing or belong to another message gets the verdict it gets in
    the projector's own process (the last header of each name counts, as ``ProvenanceCheck.check`` reads)."""
    settings = load_settings({"IDO_DATA_DIR": str(tmp_path), "IDO_KEYS_DIR": str(tmp_path / "keys")})
    topic = EXPENDITURES.name
    envelopes = [_recorded(amount_cents=1000 + i, reference=f"INV-{i}") for i in range(6)]
    seals = seal_envelopes(settings, topic, envelopes, batch_size=3)
    values = [canonical_json(envelope) for envelope in envelopes]
    labels = [("event_type", b"ExpenditureRecorded"), ("event_id", b"x")]
    seal, proof = seals[0]
    messages = [
        (values[0], [*labels, *seals[0]]),  # genuine
        (values[1], [*seals[1], (SEAL_HEADER, b"{}"), (PROOF_HEADER, b"0:")]),  # a second, forged pair counts
        (values[2], [(SEAL_HEADER, b"{}"), (PROOF_HEADER, b"0:"), *seals[2]]),  # the genuine pair comes last
        (values[3], [seal, proof]),  # another message's seal and proof
        (values[4], [seals[4][0]]),  # no proof
        (values[5], [(SEAL_HEADER, None), seals[5][1]]),  # an empty seal header
        (values[5], []),
        (None, [*seals[5]]),
    ]
    check, provenance = MessageCheck(), build_provenance_check(settings)
    expected = check_messages(check, provenance, settings.topic(topic), messages)
    checker = CheckProcess(check, provenance)
    try:
        checker.send([(settings.topic(topic), messages)])
        got = checker.receive()[0]
    finally:
        checker.close()
    assert got == expected
    assert [isinstance(verdict, dict) for verdict in got] == [True, False, True, False, False, False, False, False]


def test_an_envelope_only_parse_message_accepts_crosses_the_pipe_as_parse_message_read_it() -> None:
    """The checker sends back None for an envelope that passed the fast check, and the projector reads its
    value again with orjson; an envelope the fast check left to ``parse_message`` comes back as
    ``parse_message`` read it. Here one whose unknown field orjson would read as a float (2**70) and one
    with a UUID without dashes (marshmallow takes it, the JSON Schema's format does not)."""
    import json

    from contracts.canonical import compute_hash

    def forged(envelope: dict[str, object]) -> bytes:
        envelope.pop("hash")
        envelope["hash"] = compute_hash(envelope)
        return json.dumps(envelope).encode()

    big = _recorded()
    big["payload"]["unknown"] = 2**70  # type: ignore[index]
    undashed = _recorded()
    undashed["event_id"] = str(undashed["event_id"]).replace("-", "")
    messages = [(forged(big), []), (canonical_json(_recorded()), []), (forged(undashed), [])]
    check = MessageCheck()
    assert [check.judge(value)[1] for value, _ in messages] == [False, True, False]
    checker = CheckProcess(check, None)
    try:
        checker.send([("t", messages)])
        (got,) = checker.receive()
    finally:
        checker.close()
    assert got == check_messages(check, None, "t", messages)
    assert got[0]["payload"]["unknown"] == 2**70 and type(got[0]["payload"]["unknown"]) is int  # type: ignore[index]
    assert got[2]["event_id"] == undashed["event_id"]  # type: ignore[index]
