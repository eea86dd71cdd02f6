# Sourced by scripts/test.sh, tests/resilience/run.sh and bench/run.sh: starts the Kafka broker and the
# PostgreSQL server named by KAFKA_PORT/KAFKA_CONTROLLER_PORT/KAFKA_STATE_DIR and PG_STATE_DIR, stops
# them on exit, and exports the TEST_* settings the pytest fixtures read. $1 names the caller in messages.
# The broker takes SASL/SCRAM with ACLs; its admin password is made by kafka.sh under
# $KAFKA_STATE_DIR/credentials (kept between runs, never printed), the other principals' by the
# tests' provisioning (tests/conftest.py) or the bench's, in the same directory.
start_test_servers() {
    local caller="$1" kafka_out pg_out
    trap 'bash scripts/kafka.sh stop || true; bash scripts/postgres.sh stop || true' EXIT
    export KAFKA_CREDENTIALS_DIR="$KAFKA_STATE_DIR/credentials"
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
    export TEST_KAFKA_BOOTSTRAP="${kafka_out#KAFKA_BOOTSTRAP=}" TEST_KAFKA_CREDENTIALS_DIR="$KAFKA_CREDENTIALS_DIR"
    unset KAFKA_CREDENTIALS_DIR  # brokers the tests start themselves keep their own
    export TEST_POSTGRES_HOST="$POSTGRES_HOST" TEST_POSTGRES_PORT="$POSTGRES_PORT"
    export TEST_POSTGRES_USER="$POSTGRES_USER" TEST_POSTGRES_PASSWORD="$POSTGRES_PASSWORD"
    export TEST_POSTGRES_DBNAME="$POSTGRES_DBNAME"
    echo "$pg_out"
    unset POSTGRES_HOST POSTGRES_PORT POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DBNAME POSTGRES_URL
}
