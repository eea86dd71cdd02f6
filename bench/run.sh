#!/usr/bin/env bash
# `make bench`: the benchmark with its own Kafka broker and PostgreSQL server (own ports and state
# dirs, so `make run` on 9092 and `make test` on 19092 are not touched). Flags go to `python -m bench`:
#   make bench BENCH_ARGS="--replay-events 1000000 --memory-sizes 100000,1000000"
# Environment: BENCH_KAFKA_PORT (29592), BENCH_KAFKA_CONTROLLER_PORT (29593), BENCH_PG_PORT (29594),
#   BENCH_PG_FSYNC=off to keep scripts/postgres.sh's throw-away settings (fsync off) instead of durable commits.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv

export KAFKA_PORT="${BENCH_KAFKA_PORT:-29592}"
export KAFKA_CONTROLLER_PORT="${BENCH_KAFKA_CONTROLLER_PORT:-29593}"
export KAFKA_STATE_DIR="$PWD/var/bench/kafka"
export PG_STATE_DIR="$PWD/var/bench/postgres"
export PG_PORT="${BENCH_PG_PORT:-29594}"
unset KAFKA_KEEP_DATA
# The broker's heap at its full size from the start (-Xms = -Xmx), as Kafka's operations guide runs brokers
# (scripts/kafka.sh's default lets it grow from 256 MiB): while G1 grew the heap, the broker spent 30-46 µs of
# CPU a message in the first rows instead of 6-16, on the same two cores as the rows (bench/README.md, sixteenth
# round). BENCH_KAFKA_HEAP_OPTS overrides it; the JSON's meta.kafka_heap_opts says what ran.
export KAFKA_HEAP_OPTS="${BENCH_KAFKA_HEAP_OPTS:--Xms768m -Xmx768m}"

# Row 1's load generator: wrk from Debian when it can be had, else the Python one in bench/load.py.
if ! command -v wrk >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing wrk (Debian package)"
        (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq wrk) >&2 \
            || echo "make bench: wrk could not be installed; the Python load generator is used" >&2
    else
        echo "make bench: wrk not found (not root); the Python load generator is used" >&2
    fi
fi

# shellcheck source=scripts/test-servers.sh
source scripts/test-servers.sh
start_test_servers "make bench"
# the benchmark's topics (~1 GB at 10^6 events) go with the broker; they are wiped at start anyway
trap 'bash scripts/kafka.sh stop || true; bash scripts/postgres.sh stop || true; rm -rf "$KAFKA_STATE_DIR/data"' EXIT
if [[ "${BENCH_PG_FSYNC:-on}" != off ]]; then
    # scripts/postgres.sh runs a throw-away server without fsync; a durable commit needs it back on.
    "$PG_BIN_DIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$TEST_POSTGRES_HOST" -p "$TEST_POSTGRES_PORT" \
        -U "$TEST_POSTGRES_USER" -d postgres \
        -c "ALTER SYSTEM SET fsync = on" -c "ALTER SYSTEM SET synchronous_commit = on" \
        -c "ALTER SYSTEM SET full_page_writes = on" -c "SELECT pg_reload_conf()" >/dev/null
fi
export BENCH_KAFKA_BOOTSTRAP="$TEST_KAFKA_BOOTSTRAP" BENCH_KAFKA_CREDENTIALS_DIR="$TEST_KAFKA_CREDENTIALS_DIR"
export BENCH_POSTGRES_HOST="$TEST_POSTGRES_HOST" BENCH_POSTGRES_PORT="$TEST_POSTGRES_PORT"
export BENCH_POSTGRES_USER="$TEST_POSTGRES_USER" BENCH_POSTGRES_PASSWORD="$TEST_POSTGRES_PASSWORD"

echo "== bench"
$VENV/bin/python -m bench "$@"
