#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller) for tests and benchmarks.
# No Docker, no tarball: the broker jars come from Maven Central via infra/kafka/pom.xml.
#
# Usage: scripts/kafka.sh start [--keep-data] | stop | status | restart-keep-data
#
#   start              Start the broker in the background and wait until it is ready.
#                      The data dir is wiped and formatted with a new cluster id, unless
#                      KAFKA_KEEP_DATA=1 (or --keep-data) and it already holds meta.properties.
#                      If a broker from this state dir is already up, says so and exits 0.
#                      On success prints KAFKA_BOOTSTRAP=127.0.0.1:<port> on stdout.
#   stop               SIGTERM, up to 30 s grace, then SIGKILL. Exits 0 if nothing runs.
#   status             Exit 0 if running (prints KAFKA_BOOTSTRAP=...), 3 if not.
#   restart-keep-data  stop, then start without reformatting (same data, same cluster id).
#
# Environment:
#   KAFKA_PORT             client port (SASL_PLAINTEXT, SCRAM-SHA-512), default 9092
#   KAFKA_CONTROLLER_PORT  KRaft controller port (SASL_PLAINTEXT, PLAIN, broker-internal), default 9093
#   KAFKA_STATE_DIR        default <repo>/var/kafka (data/, kafka.pid, kafka.log, env, ...)
#   KAFKA_CREDENTIALS_DIR  default $KAFKA_STATE_DIR/credentials: ido-admin.password (the super user,
#                          made here on first start, mode 0600) and, after `ido kafka provision`,
#                          one <principal>.password per client principal. Never printed.
#   KAFKA_KEEP_DATA=1      start: keep an already formatted data dir; then, unless KAFKA_PORT /
#                          KAFKA_CONTROLLER_PORT are set, the ports of the previous start are reused
#   KAFKA_START_TIMEOUT    seconds to wait for readiness, default 120
#   KAFKA_HEAP_OPTS        default "-Xms256m -Xmx768m"
#   IDO_CACHE_DIR          default ~/.cache/ido-ledger (jars in kafka-lib-<version>/)
#   JAVA_HOME              optional; otherwise `java` from PATH
#
# Messages from this script go to stderr and start with "kafka: "; stdout carries only
# the KAFKA_BOOTSTRAP=... line, so callers can parse it.
set -euo pipefail

KAFKA_HOST=127.0.0.1
PORTS_FROM_ENV="${KAFKA_PORT:+1}${KAFKA_CONTROLLER_PORT:+1}"   # non-empty if the caller chose ports
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_STATE_DIR="${KAFKA_STATE_DIR:-$(cd "$SCRIPT_DIR/.." && pwd)/var/kafka}"
KAFKA_CREDENTIALS_DIR="${KAFKA_CREDENTIALS_DIR:-$KAFKA_STATE_DIR/credentials}"
KAFKA_KEEP_DATA="${KAFKA_KEEP_DATA:-0}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
CACHE_ROOT="${IDO_CACHE_DIR:-${HOME:-/root}/.cache/ido-ledger}"
STOP_GRACE=30
ADMIN_USER=ido-admin
CONTROLLER_USER=ido-controller
LOG_NAME=kafka
# shellcheck source=scripts/kafka-common.sh
source "$SCRIPT_DIR/kafka-common.sh"

DATA_DIR="$KAFKA_STATE_DIR/data"
PID_FILE="$KAFKA_STATE_DIR/kafka.pid"
LOG_FILE="$KAFKA_STATE_DIR/kafka.log"
PROPS_FILE="$KAFKA_STATE_DIR/server.properties"
ENV_FILE="$KAFKA_STATE_DIR/env"
SASL_MARKER="$KAFKA_STATE_DIR/formatted-with-sasl"   # data formatted with the admin's SCRAM credential

# ---------------------------------------------------------------- helpers

read_pid() { read_pid_file "$PID_FILE"; }
running_pid() { running_pid_of "$PID_FILE"; }

# One node: a quorum of its own, replication factor 1 (throw-away local settings); the controller
# listener's password is new at every start (nobody else logs in there).
render_node_properties() {
    render_properties "$PROPS_FILE" "$DATA_DIR" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" 1 \
        "1@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT" 1 1 "$(new_password)"
}

format_node() {
    local cluster_id
    cluster_id="$(new_cluster_id)"
    format_storage "$PROPS_FILE" "$DATA_DIR" "$cluster_id"
    echo "$cluster_id" >"$KAFKA_STATE_DIR/cluster-id"
    echo "$ADMIN_USER" >"$SASL_MARKER"
}

print_bootstrap() {
    echo "KAFKA_BOOTSTRAP=$KAFKA_HOST:$KAFKA_PORT"
}

write_env_file() {
    cat >"$ENV_FILE" <<EOF
export KAFKA_PORT=$KAFKA_PORT
export KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT
export KAFKA_BOOTSTRAP=$KAFKA_HOST:$KAFKA_PORT
export KAFKA_BOOTSTRAP_SERVERS=$KAFKA_HOST:$KAFKA_PORT
export KAFKA_CREDENTIALS_DIR=$KAFKA_CREDENTIALS_DIR
EOF
}

# ---------------------------------------------------------------- commands

cmd_start() {
    local keep
    keep="$(keep_data_option "$KAFKA_KEEP_DATA" "$@")"

    mkdir -p "$KAFKA_STATE_DIR"
    # A default state dir inside the repo must never be committed.
    if [[ "$KAFKA_STATE_DIR" == "$REPO_DIR/var/"* && ! -e "$REPO_DIR/var/.gitignore" ]]; then
        echo '*' >"$REPO_DIR/var/.gitignore"
    fi

    # Keeping data: come back on the same ports as before unless the caller chose ports.
    if [[ "$keep" == 1 && -z "$PORTS_FROM_ENV" && -f "$DATA_DIR/meta.properties" && -f "$ENV_FILE" ]]; then
        KAFKA_PORT="$(running_port)"
        KAFKA_CONTROLLER_PORT="$(sed -n 's/^export KAFKA_CONTROLLER_PORT=//p' "$ENV_FILE" | head -n1)"
        KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
    fi

    local pid
    if pid="$(running_pid)"; then
        KAFKA_PORT="$(running_port)"
        if port_open "$KAFKA_PORT"; then
            log "already running (pid $pid) on $KAFKA_HOST:$KAFKA_PORT"
            print_bootstrap
            return 0
        fi
        log "broker pid $pid is up but $KAFKA_HOST:$KAFKA_PORT does not answer yet; waiting"
        wait_ready "$pid" "$KAFKA_PORT" "$LOG_FILE" "$PID_FILE" "$KAFKA_START_TIMEOUT"
        print_bootstrap
        return 0
    fi
    rm -f "$PID_FILE"

    local p
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
        if port_open "$p"; then
            die "port $KAFKA_HOST:$p is already in use by another process (not started from $KAFKA_STATE_DIR); stop it or set KAFKA_PORT/KAFKA_CONTROLLER_PORT"
        fi
    done
    [[ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" ]] \
        || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"

    if [[ "$keep" == 1 && -f "$DATA_DIR/meta.properties" ]]; then
        # Kept data needs the admin credential it was formatted with: nobody could log in otherwise.
        [[ -f "$SASL_MARKER" ]] || die "$DATA_DIR was formatted before the broker took SASL logins (no admin user in it); remove $KAFKA_STATE_DIR (and the event stores whose positions refer to its topics, e.g. var/data) or start without --keep-data"
        [[ -s "$ADMIN_PASSWORD_FILE" ]] || die "$DATA_DIR is kept but the admin password $ADMIN_PASSWORD_FILE is missing: restore it (or set KAFKA_CREDENTIALS_DIR), or start without --keep-data"
    fi

    ensure_java
    ensure_jars
    ensure_admin_password
    render_node_properties

    if [[ "$keep" == 1 && -f "$DATA_DIR/meta.properties" ]]; then
        log "keeping existing data in $DATA_DIR (cluster $(cat "$KAFKA_STATE_DIR/cluster-id" 2>/dev/null || echo '?'))"
    else
        format_node
    fi

    write_env_file
    local start=$SECONDS
    pid="$(launch_broker "$PID_FILE" "$LOG_FILE" "$PROPS_FILE" "$KAFKA_STATE_DIR")"
    wait_ready "$pid" "$KAFKA_PORT" "$LOG_FILE" "$PID_FILE" "$KAFKA_START_TIMEOUT"
    log "started (pid $pid) in $((SECONDS - start)) s; log: $LOG_FILE"
    print_bootstrap
}

cmd_stop() {
    local pid
    if ! pid="$(read_pid)"; then
        log "not running (no pid file in $KAFKA_STATE_DIR)"
        return 0
    fi
    if ! is_our_broker "$pid"; then
        log "not running (stale pid file, pid $pid); removing it"
        rm -f "$PID_FILE"
        return 0
    fi
    stop_pid "$pid" "$PID_FILE"
    log "stopped (pid $pid)"
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        KAFKA_PORT="$(running_port)"
        if port_open "$KAFKA_PORT"; then
            log "running (pid $pid) on $KAFKA_HOST:$KAFKA_PORT"
        else
            log "process running (pid $pid) but $KAFKA_HOST:$KAFKA_PORT not answering (starting?)"
        fi
        print_bootstrap
        return 0
    fi
    log "not running"
    return 3
}

# The port a running broker actually uses (from its env file), for start/status reports.
running_port() {
    local p=""
    [[ -f "$ENV_FILE" ]] && p="$(sed -n 's/^export KAFKA_PORT=//p' "$ENV_FILE" | head -n1)"
    echo "${p:-$KAFKA_PORT}"
}

main() {
    local cmd="${1:-}"
    (($#)) && shift
    case "$cmd" in
        start | stop | restart-keep-data) take_lock "$KAFKA_STATE_DIR" $((KAFKA_START_TIMEOUT + STOP_GRACE + 60)) ;;
    esac
    case "$cmd" in
        start) cmd_start "$@" ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        restart-keep-data)
            cmd_stop
            KAFKA_KEEP_DATA=1 cmd_start --keep-data
            ;;
        *)
            echo "usage: $0 start [--keep-data] | stop | status | restart-keep-data" >&2
            exit 2
            ;;
    esac
}

main "$@"
