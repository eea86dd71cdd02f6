"""The soak's writes (issue 19, Must show 4): all three services written to, in a fixed mix, each write with an
Idempotency-Key (``capacity.py`` retries an unknown answer with it).

Of every ``TURNS`` writes one is an advance (payments, the six awarded grants in turn), one a bridge payment
(``LIBRARIES`` in turn) and the rest postings of expenditures (the ledger, the six municipalities in turn).
Advances and bridge payments are spread over six grants and six libraries so that no aggregate grows without
bound (docs/DEVELOPING.md: keep aggregates small): a grant or library gets one write in 120. Each pays its grant
or library a unique amount (the i-th payment of a run's tag ``i + 1`` cents, above the tag's base), which is how
``stack.verify`` tells a payment stored twice.
"""

from __future__ import annotations

from tests.resilience.capacity import Postings, Write
from tests.resilience.load import payment_event
from tests.resilience.stack import MUNICIPALITIES, YEAR
from tests.resilience.support import StackEnv

TURNS = 20
ADVANCE_TURN = 0
BRIDGE_TURN = TURNS // 2
LIBRARIES = tuple(f"NL-KVK-5000000{index}" for index in range(len(MUNICIPALITIES)))
AMOUNT_BASE_CENTS = {"capacity": 0, "fill": 1_000, "paced": 2_000}
"""The amounts of a tag start above this: the capacity burst (at most 100,000 writes: 834 payments per grant or
library), the bursts that fill each service's threads (at most 5,000 writes of one service: 834 per grant or
library) and the paced writes never pay the same amount to the same grant."""
SHARES = {"payments": 1 / TURNS, "bridge": 1 / TURNS, "ledger": (TURNS - 2) / TURNS}
"""The share of the writes (and of the events: one per write) each service gets."""


class ThreeServices:
    def __init__(self, stack: StackEnv, ports: dict[str, int]):
        self.ports = ports
        self.postings = Postings(stack, ports["ledger"])
        self.ministry = stack.headers("ministry")
        self.kb = stack.headers("kb")

    def write(self, n: int, tag: str) -> Write:
        turn, round_ = n % TURNS, n // TURNS
        which = round_ % len(MUNICIPALITIES)
        amount = AMOUNT_BASE_CENTS[tag] + round_ // len(MUNICIPALITIES) + 1
        key = {"Idempotency-Key": f"{tag}-{n}"}
        if turn == ADVANCE_TURN:
            return Write(self.ports["payments"], f"/v1/years/{YEAR}/grants/{MUNICIPALITIES[which]}/advances",
                         {"amount_cents": amount, "paid_on": "2024-01-31"}, {**self.ministry, **key},
                         lambda body: str(body["last_event_id"]), "POST advances")
        if turn == BRIDGE_TURN:
            return Write(self.ports["bridge"], f"/bridge/libraries/{LIBRARIES[which]}/payments",
                         {"amount_cents": amount, "paid_on": "2022-12-01"}, {**self.kb, **key},
                         lambda body: payment_event(body, amount) or "", "POST bridge payments")
        return self.postings.write(n, tag)


class OneService:
    """The writes of the mix that go to one service (the bursts that fill each service's threads)."""

    def __init__(self, mix: ThreeServices, service: str):
        self.mix = mix
        self.turn = {"payments": ADVANCE_TURN, "bridge": BRIDGE_TURN, "ledger": 1}[service]

    def write(self, n: int, tag: str) -> Write:
        return self.mix.write(n * TURNS + self.turn, tag)
