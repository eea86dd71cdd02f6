# Sourced by scripts/test.sh, tests/resilience/run.sh and bench/run.sh: starts Kafka and the PostgreSQL
# server named by PG_STATE_DIR, stops them on exit, and exports the TEST_* settings the pytest fixtures
# read. $1 names the caller in messages.
#
# Kafka is one of two, chosen by TEST_SERVERS_KAFKA:
#   single (default)  scripts/kafka.sh on KAFKA_PORT/KAFKA_CONTROLLER_PORT, state in KAFKA_STATE_DIR
#                     (`make test`, `make run`'s fast start, the bench);
#   cluster           scripts/kafka-cluster.sh: three nodes on KAFKA_CLUSTER_PORTS and
#                     KAFKA_CLUSTER_CONTROLLER_PORTS (three ports each), state in KAFKA_CLUSTER_STATE_DIR
#                     (`make resilience`). TEST_KAFKA_BOOTSTRAP is then the three addresses, and
#                     TEST_KAFKA_REPLICATION_FACTOR=3 / TEST_KAFKA_MIN_INSYNC_REPLICAS=2 are exported: the
#                     fixtures give them to the tests' topics and to every process the tests start.
# The broker takes SASL/SCRAM with ACLs; its admin password is made by the script under
# <state dir>/credentials (kept between runs, never printed), the other principals' by the
# tests' provisioning (tests/conftest.py) or the bench's, in the same directory.
start_test_servers() {
    local caller="$1" kafka_out pg_out kafka_script
    case "${TEST_SERVERS_KAFKA:-single}" in
        single)
            kafka_script=scripts/kafka.sh
            export KAFKA_CREDENTIALS_DIR="$KAFKA_STATE_DIR/credentials"
            unset TEST_KAFKA_REPLICATION_FACTOR TEST_KAFKA_MIN_INSYNC_REPLICAS
            ;;
        cluster)
            kafka_script=scripts/kafka-cluster.sh
            export KAFKA_CREDENTIALS_DIR="$KAFKA_CLUSTER_STATE_DIR/credentials"
            # The production settings of docs/operations.md, as scripts/kafka-cluster.sh sets them on the brokers.
            export TEST_KAFKA_REPLICATION_FACTOR=3 TEST_KAFKA_MIN_INSYNC_REPLICAS=2
            ;;
        *)
            echo "$caller: TEST_SERVERS_KAFKA must be single or cluster, not '${TEST_SERVERS_KAFKA}'" >&2
            exit 2
            ;;
    esac
    # shellcheck disable=SC2064  # the script is chosen now; stopping it must not depend on later changes
    trap "bash $kafka_script stop || true; bash scripts/postgres.sh stop || true" EXIT
    echo "== starting Kafka ($kafka_script)"
    if ! kafka_out="$(bash "$kafka_script" start)"; then
        echo "$caller: Kafka ($kafka_script) could not start (messages above); integration tests cannot run" >&2
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
    echo "$kafka_out"
    echo "$pg_out"
    unset POSTGRES_HOST POSTGRES_PORT POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DBNAME POSTGRES_URL
}
