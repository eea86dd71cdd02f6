"""Issue 19: the faults of the three-broker cluster, each a function of a ``FaultRun`` (``cluster_faults.py``)
that injects it under the paced load and returns when the cluster is whole again (three copies in sync). The
fault tests (``test_cluster_*.py``) inject one each; the soak (``soak.py``) draws them at random from
``FAULTS``. What each fault checks while it is on is asserted here, so it is checked wherever it is injected.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.resilience.cluster_faults import FaultRun, led_without
from tests.resilience.support import wait_for
from tests.support.kafka_cluster import NODES

LEADER_DOWN_S = 10
"""How long a killed leader stays down (the load then runs on two brokers)."""
TWO_DOWN_S = 30
"""How long two brokers stay down: the default ``IDO_OUTBOX_STALL_S`` (15 s) of postings held in the outbox, then
writes refused."""
ELECTION_TIMEOUT_S = 60
PARTITIONS = 3


def kill_the_leader(run: FaultRun, times: int = 1) -> None:
    """The broker leading most partitions of the written topic SIGKILLed, kept down ``LEADER_DOWN_S`` seconds
    while the other two lead, and started again on its data; ``times`` times."""
    for _ in range(times):
        victim = run.written_leader()
        with run.fault("SIGKILL the Kafka leader of the written partitions (cluster)", f"node {victim} killed"):
            run.cluster.kill_node(victim)
            wait_for(lambda v=victim: led_without(run.cluster, [run.written], v), 60,
                     f"the leaders to move off node {victim}")
            run.hold(LEADER_DOWN_S)  # the load runs on two brokers
            run.cluster.start_node(victim)


def restart_one_at_a_time(run: FaultRun) -> None:
    """A rolling restart: each broker stopped gracefully (it hands its leaderships over) and started on its
    data; the next once every partition has three copies in sync."""
    for node in NODES:
        with run.fault("rolling restart: one Kafka broker stopped gracefully and started (cluster)",
                       f"node {node} restarted"):
            run.cluster.stop_node(node)
            run.cluster.start_node(node)


def _log_bytes(run: FaultRun, node: int) -> dict[str, int | None]:
    """Bytes of the log segments the node holds, per partition of the stack's topics (None: no replica
    directory; a partition no posting's key hashes to is empty on every node)."""
    data = run.cluster.state_dir / f"node-{node}" / "data"
    return {f"{topic}-{p}": (sum(f.stat().st_size for f in (data / f"{topic}-{p}").glob("*.log"))
                             if (data / f"{topic}-{p}").is_dir() else None)
            for topic in run.topics for p in range(PARTITIONS)}


def _written_bytes(run: FaultRun, sizes: dict[str, int | None]) -> int:
    return sum(size or 0 for partition, size in sizes.items() if partition.startswith(run.written))


def wipe_the_leader(run: FaultRun) -> None:
    """The leader of the written partitions loses its log directory (stopped, deleted, formatted again with the
    cluster's id, started): it re-replicates until three copies are in sync, and its new log directory holds a
    replica of every partition again, with at least as much of the written topic as before."""
    victim = run.written_leader()
    before = _log_bytes(run, victim)
    assert _written_bytes(run, before) > 0, f"node {victim} held no log of {run.written} before the wipe: {before}"
    with run.fault("one Kafka broker's log directory deleted and the broker restarted (cluster)",
                   f"node {victim} wiped"):
        run.cluster.wipe_node(victim)
    # Three copies in sync (the window's end) with replication factor 3 include the wiped node; its disk shows it.
    after = _log_bytes(run, victim)
    missing = [partition for partition, size in after.items() if size is None]
    assert not missing, f"node {victim} has no replica of {missing} after it re-replicated"
    assert _written_bytes(run, after) >= _written_bytes(run, before), (
        f"node {victim} holds less of {run.written} than before the wipe: {before} -> {after}")


def _other_leader(run: FaultRun, old: int) -> int:
    try:
        leader = run.cluster.quorum_leader()
    except AssertionError:  # no node's log names a leader yet: asked again
        return 0
    return leader if leader != old else 0


def stop_the_quorum_leader(run: FaultRun) -> None:
    """The controller quorum's leader stopped: the other two elect a new leader and postings accepted after the
    stop reach the view (writes go on); then it is started again on its data."""
    old = run.cluster.quorum_leader()
    with run.fault("the Kafka controller quorum's leader stopped (cluster)", f"quorum leader node {old} stopped"):
        run.cluster.stop_node(old)
        new = wait_for(lambda: _other_leader(run, old), ELECTION_TIMEOUT_S, f"a quorum leader other than node {old}")
        assert new != old
        accepted_before = run.accepted_ids()
        wait_for(lambda: (run.accepted_ids() - accepted_before) & run.view_applied(), ELECTION_TIMEOUT_S,
                 f"a posting accepted under quorum leader {new} to reach the view")
        run.cluster.start_node(old)


def lose_two_brokers(run: FaultRun) -> None:
    """The leader of the written partitions and a second broker SIGKILLed for ``TWO_DOWN_S`` seconds: one copy
    is left, below min.insync.replicas, and no quorum. Writes are first answered 201 and kept in the stores (the
    outbox) while none reaches the view, then, once a relay has published nothing for ``IDO_OUTBOX_STALL_S``,
    answered 503 with Retry-After; both come back on their data and everything held reaches the view."""
    leader = run.written_leader()
    second = next(node for node in NODES if node != leader)
    with run.fault("two of three Kafka brokers SIGKILLed (cluster)", f"nodes {leader} and {second} killed"):
        run.cluster.kill_node(leader)
        run.cluster.kill_node(second)
        accepted_at_kill = run.accepted_ids()
        refused_at_kill = run.paced.stats.by_status.get(503, 0)
        run.hold(TWO_DOWN_S)  # the two stay down
        held = run.accepted_ids() - accepted_at_kill
        refused = run.paced.stats.by_status.get(503, 0) - refused_at_kill
        reached = held & run.view_applied()
        assert held, "no posting was accepted while two brokers were down"
        assert not reached, f"{len(reached)} postings reached the view with one broker left"
        assert refused > 0, "no posting was answered 503 while the relay could publish nothing"
        # the harness fails the test on any other 5xx, and on a 503 without Retry-After
        run.cluster.start_keeping_data()  # both at once: one alone has no quorum to join
        wait_for(lambda: held <= run.view_applied(), 180, "the postings held in the outbox to reach the view")


FAULTS: dict[str, Callable[[FaultRun], None]] = {
    "leader SIGKILL": kill_the_leader,
    "rolling restart": restart_one_at_a_time,
    "two brokers lost": lose_two_brokers,
    "quorum leader lost": stop_the_quorum_leader,
    "disk lost": wipe_the_leader,
}
"""The faults of issue 19, Must show 2, by a short name (the soak draws from them)."""

REFUSES_WRITES = frozenset({"two brokers lost"})
"""Faults during which writes are refused by design (503 once the relay has published nothing for
``IDO_OUTBOX_STALL_S``: services/common/outbox_gate.py), so the writes accepted a second cannot hold half the
capacity; the load offered still does, and every write must be accepted in the end."""
