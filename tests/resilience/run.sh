#!/usr/bin/env bash
# `make resilience`: the whole resilience suite (fast and slow parts) against Kafka and a PostgreSQL server
# started here, on their own ports and state dirs (so `make test` and `make run` are not touched), then
# tests/resilience/README.md is rendered from the figures of this run. Extra arguments go to pytest
# (`bash tests/resilience/run.sh -k test_crashes`).
#
# Kafka is the three-broker cluster (scripts/kafka-cluster.sh: replication factor 3, min.insync.replicas 2;
# issue 19) unless RESILIENCE_KAFKA=single (the single node of `make test`). Its ports: six free ones unless
# RESILIENCE_KAFKA_CLUSTER_PORTS and RESILIENCE_KAFKA_CLUSTER_CONTROLLER_PORTS (three each, comma-separated)
# name them; the single node's: RESILIENCE_KAFKA_PORT and RESILIENCE_KAFKA_CONTROLLER_PORT.
# The fault tests start (and stop, and restart) brokers, clusters and servers of their own besides these.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv

# Free ports unless chosen: other developers' brokers may hold any fixed port. Held open together so they differ.
free_ports() {
    $VENV/bin/python -c 'import socket, sys
probes = [socket.socket() for _ in range(int(sys.argv[1]))]
for probe in probes: probe.bind(("127.0.0.1", 0))
print(",".join(str(probe.getsockname()[1]) for probe in probes))' "$1"
}
export TEST_SERVERS_KAFKA="${RESILIENCE_KAFKA:-cluster}"
case "$TEST_SERVERS_KAFKA" in
    cluster)
        ports="$(free_ports 6)"
        export KAFKA_CLUSTER_PORTS="${RESILIENCE_KAFKA_CLUSTER_PORTS:-$(cut -d, -f1-3 <<<"$ports")}"
        export KAFKA_CLUSTER_CONTROLLER_PORTS="${RESILIENCE_KAFKA_CLUSTER_CONTROLLER_PORTS:-$(cut -d, -f4-6 <<<"$ports")}"
        export KAFKA_CLUSTER_STATE_DIR="$PWD/var/resilience/kafka-cluster"
        ;;
    single)
        ports="$(free_ports 2)"
        export KAFKA_PORT="${RESILIENCE_KAFKA_PORT:-${ports%,*}}"
        export KAFKA_CONTROLLER_PORT="${RESILIENCE_KAFKA_CONTROLLER_PORT:-${ports#*,}}"
        export KAFKA_STATE_DIR="$PWD/var/resilience/kafka"
        ;;
    *)
        echo "make resilience: RESILIENCE_KAFKA must be cluster (the default) or single, not '$TEST_SERVERS_KAFKA'" >&2
        exit 2
        ;;
esac
export PG_STATE_DIR="$PWD/var/resilience/postgres"
export IDO_RESILIENCE_FIGURES="$PWD/var/resilience/figures.json"
unset PG_PORT KAFKA_KEEP_DATA

# shellcheck source=scripts/test-servers.sh
source scripts/test-servers.sh
start_test_servers "make resilience"

echo "== pytest tests/resilience and tests/cluster (fast and slow; Kafka: $TEST_SERVERS_KAFKA; the cluster tests start their own three brokers)"
status=0
$VENV/bin/pytest tests/resilience tests/cluster -p no:cacheprovider "$@" || status=$?
if [[ -f "$IDO_RESILIENCE_FIGURES" ]]; then
    echo "== tests/resilience/README.md from $IDO_RESILIENCE_FIGURES"
    $VENV/bin/python -m tests.resilience.render_figures "$IDO_RESILIENCE_FIGURES" tests/resilience/README.md
fi
exit "$status"
