#!/usr/bin/env bash
# `make test`: lint and type checks, then the whole suite against a real Kafka broker and a real
# PostgreSQL server started here (own ports and state dirs, so a running `make run` is not touched).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv

export KAFKA_PORT="${TEST_KAFKA_PORT:-19092}"
export KAFKA_CONTROLLER_PORT="${TEST_KAFKA_CONTROLLER_PORT:-19093}"
export KAFKA_STATE_DIR="$PWD/var/test/kafka"
export PG_STATE_DIR="$PWD/var/test/postgres"
unset PG_PORT

cleanup() {
    bash scripts/kafka.sh stop || true
    bash scripts/postgres.sh stop || true
}
trap cleanup EXIT

echo "== ruff"
$VENV/bin/ruff check .
echo "== mypy"
$VENV/bin/mypy

echo "== starting Kafka"
if ! kafka_out="$(bash scripts/kafka.sh start)"; then
    echo "make test: the Kafka broker could not start (messages above); integration tests cannot run" >&2
    exit 1
fi
echo "== starting PostgreSQL"
if ! pg_out="$(bash scripts/postgres.sh start)"; then
    echo "make test: the PostgreSQL server could not start (messages above); integration tests cannot run" >&2
    exit 1
fi
# shellcheck disable=SC1091
source "$PG_STATE_DIR/env"
export TEST_KAFKA_BOOTSTRAP="${kafka_out#KAFKA_BOOTSTRAP=}"
export TEST_POSTGRES_HOST="$POSTGRES_HOST" TEST_POSTGRES_PORT="$POSTGRES_PORT"
export TEST_POSTGRES_USER="$POSTGRES_USER" TEST_POSTGRES_PASSWORD="$POSTGRES_PASSWORD"
export TEST_POSTGRES_DBNAME="$POSTGRES_DBNAME"
echo "$pg_out"
unset POSTGRES_HOST POSTGRES_PORT POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DBNAME POSTGRES_URL

echo "== pytest"
$VENV/bin/pytest "$@"
