#!/usr/bin/env bash
# `make run`: Kafka, then the three services with their relays, the ledger's projector and the
# checkpoint process, on the embedded SQLite stores under var/data. Illustrative demo data is loaded
# on the first start. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
IDO=.venv/bin/ido
export IDO_DATA_DIR="${IDO_DATA_DIR:-$PWD/var/data}"
export IDO_KEYS_DIR="${IDO_KEYS_DIR:-$PWD/var/keys}"
export KAFKA_PORT="${KAFKA_PORT:-9092}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
export KAFKA_STATE_DIR="${KAFKA_STATE_DIR:-$PWD/var/kafka}"
# Kafka passwords (one file per principal, 0600), beside the token keys; never printed.
export IDO_KAFKA_CREDENTIALS_DIR="${IDO_KAFKA_CREDENTIALS_DIR:-$IDO_KEYS_DIR/kafka}"
export KAFKA_CREDENTIALS_DIR="$IDO_KAFKA_CREDENTIALS_DIR"
# The broker keeps its data between runs, as the event stores do: the topics must match the stores.
export KAFKA_KEEP_DATA=1
LOG_DIR="$PWD/var/log"
mkdir -p "$LOG_DIR" "$IDO_DATA_DIR"

pids=()
shutdown() {
    trap - INT TERM EXIT
    trap '' INT  # a second Ctrl-C must not cut the clean stop short
    echo
    echo "stopping ..."
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    bash scripts/kafka.sh stop || true
    echo "stopped."
    exit 0
}
trap shutdown INT TERM EXIT

kafka_out="$(bash scripts/kafka.sh start)"
export KAFKA_BOOTSTRAP_SERVERS="${kafka_out#KAFKA_BOOTSTRAP=}"
# As ido-admin: the topics, a SCRAM user per principal, and the ACLs (idempotent: every start).
$IDO kafka provision

$IDO tokens init-keys >/dev/null
for service in payments bridge; do
    $IDO demo "$service"
done

start() {  # name, command...
    local name="$1"; shift
    "$@" >>"$LOG_DIR/$name.log" 2>&1 &
    pids+=("$!")
}
for service in payments bridge ledger; do
    start "$service" $IDO serve "$service"
    start "relay-$service" $IDO relay "$service"
done
start projector $IDO project
# The checkpoint process alone holds the checkpoint signing key (var/keys/checkpoint_private.pem):
# a signed tree head of every store and topic partition every IDO_CHECKPOINT_EVERY_S seconds.
start checkpointer $IDO audit checkpoint --every "${IDO_CHECKPOINT_EVERY_S:-60}"

wait_http() {  # url
    for _ in $(seq 1 100); do
        curl -fsS "$1" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "make run: $1 did not answer; see $LOG_DIR" >&2
    return 1
}
for port in 8001 8002 8003; do wait_http "http://127.0.0.1:$port/healthz"; done
# The ledger books spending only into a year whose award it knows: its demo waits (bounded) until the
# projector has brought the payments demo's awards into its view, then posts through its own commands.
$IDO demo ledger || echo "make run: the ledger's illustrative spending was not loaded (see above); the rest runs" >&2

cat <<INFO

The IDO grant ledger is running (logs in $LOG_DIR, data in $IDO_DATA_DIR):
  payments  http://127.0.0.1:8001   (API documents: /docs, /openapi.json)
  bridge    http://127.0.0.1:8002   (/docs)
  ledger    http://127.0.0.1:8003   (/docs; dashboard: http://127.0.0.1:8003/dashboard/)
  Kafka     $KAFKA_BOOTSTRAP_SERVERS   (topics ido.grants.v1, ido.bridge.v1, ido.expenditures.v1;
            SASL_PLAINTEXT, SCRAM-SHA-512; passwords in $IDO_KAFKA_CREDENTIALS_DIR; ido-finance reads)
  signed checkpoints every ${IDO_CHECKPOINT_EVERY_S:-60} s in ${IDO_CHECKPOINT_DIR:-$IDO_DATA_DIR/checkpoints}
    (verify: .venv/bin/ido audit verify --since <checkpoint>; see docs/audit.md)

Demo tokens (12 hours, for the services each role uses; issue more with:
  .venv/bin/ido tokens issue --role ROLE --audience SERVICE [--audience SERVICE ...] [--subject CLIENT]):
INFO
demo_token() {  # label, role, audiences..., [-- extra arguments]
    local label="$1" role="$2"; shift 2
    local args=(--role "$role" --quiet)
    while [ $# -gt 0 ]; do
        if [ "$1" = "--municipality" ]; then args+=(--municipality "$2"); shift 2; continue; fi
        args+=(--audience "$1"); shift
    done
    printf '  %-22s %s\n' "$label" "$($IDO tokens issue "${args[@]}")"
}
demo_token ministry ministry payments bridge ledger
demo_token kb kb bridge ledger  # ledger: the bridging subsidy's page on the dashboard (issue 18)
demo_token auditor auditor payments bridge ledger
demo_token finance finance payments bridge ledger
demo_token "municipality GM0363" municipality payments ledger --municipality GM0363
cat <<INFO

Try:  curl -H "Authorization: Bearer <ministry token>" http://127.0.0.1:8001/v1/years/2024/grants
Press Ctrl-C to stop.
INFO
wait -n "${pids[@]}" || true
echo "make run: a process stopped unexpectedly; see $LOG_DIR" >&2
exit 1
