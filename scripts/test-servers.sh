# Sourced by scripts/test.sh and tests/resilience/run.sh: starts the Kafka broker and the PostgreSQL
# server named by KAFKA_PORT/KAFKA_CONTROLLER_PORT/KAFKA_STATE_DIR and PG_STATE_DIR, stops them on
# exit, and exports the TEST_* settings the pytest fixtures read. $1 names the caller in messages.
start_test_servers() {
    local caller="$1" kafka_out pg_out
    trap 'bash scripts/kafka.sh stop || true; bash scripts/postgres.sh stop || true' EXIT
    echo "== starting Kafka"
    if ! kafka_out="$(bash scripts/kafka.sh start)"; then
        echo "$caller: the Kafka broker could not start (messages above); integration tests cannot run" >&2
        exit 1
    fi
    echo "== starting PostgreSQL"
    if ! pg_out="$(bash scripts/postgres.sh start)"; then
        echo "$caller: the PostgreSQL server could not start (messages above); integration tests cannot run" >&2
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
}
