#!/usr/bin/env bash
# `make resilience`: the whole resilience suite (fast and slow parts) against a Kafka broker and a
# PostgreSQL server started here, on their own ports and state dirs (so `make test` and `make run`
# are not touched), then tests/resilience/README.md is rendered from the figures of this run.
# The fault tests start (and stop, and restart) brokers and servers of their own besides these.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv

free_port() { $VENV/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
# Free ports unless chosen: other developers' brokers may hold any fixed pair.
export KAFKA_PORT="${RESILIENCE_KAFKA_PORT:-$(free_port)}"
export KAFKA_CONTROLLER_PORT="${RESILIENCE_KAFKA_CONTROLLER_PORT:-$(free_port)}"
export KAFKA_STATE_DIR="$PWD/var/resilience/kafka"
export PG_STATE_DIR="$PWD/var/resilience/postgres"
export IDO_RESILIENCE_FIGURES="$PWD/var/resilience/figures.json"
unset PG_PORT KAFKA_KEEP_DATA

# shellcheck source=scripts/test-servers.sh
source scripts/test-servers.sh
start_test_servers "make resilience"

echo "== pytest tests/resilience and tests/cluster (fast and slow; the cluster tests start their own three brokers)"
status=0
$VENV/bin/pytest tests/resilience tests/cluster -p no:cacheprovider "$@" || status=$?
if [[ -f "$IDO_RESILIENCE_FIGURES" ]]; then
    echo "== tests/resilience/README.md from $IDO_RESILIENCE_FIGURES"
    $VENV/bin/python -m tests.resilience.render_figures "$IDO_RESILIENCE_FIGURES" tests/resilience/README.md
fi
exit "$status"
