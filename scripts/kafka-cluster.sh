#!/usr/bin/env bash
# Local three-broker Apache Kafka cluster (KRaft): three combined broker+controller nodes on 127.0.0.1,
# from the same Maven jars, template and SASL/SCRAM + ACL set-up as the single node (scripts/kafka.sh;
# the shared code is scripts/kafka-common.sh), with the production settings of docs/operations.md:
# default replication factor 3, min.insync.replicas=2, unclean leader election off, the consumer
# offsets and transaction state topics replicated 3 times. For `make resilience` and fault tests;
# `make run` and `make test` keep the single node (it starts in a third of the time).
#
# Usage: scripts/kafka-cluster.sh COMMAND
#   start [--keep-data]  Start the nodes not running and wait until all three are ready and the controller
#                        quorum has a leader. A new cluster (data wiped, formatted with a new cluster id)
#                        unless --keep-data (or KAFKA_KEEP_DATA=1) and it is already formatted.
#                        On success prints KAFKA_BOOTSTRAP=127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>.
#   start NODE           Start node 1, 2 or 3 on its kept data and wait until it is ready (after stop/kill).
#   stop [NODE]          All three (at once: SIGTERM, up to 30 s grace, then SIGKILL; every node is
#                        stopped whatever happens to another), or one. Exit 0 if nothing runs.
#   kill NODE            SIGKILL one node at once (a crash; fault tests).
#   wipe NODE            A lost disk: stop the node, delete its log dir, format it again with the
#                        cluster's id, start it and wait until it is ready (it re-replicates from the others).
#   status               Exit 0 if all three run (prints KAFKA_BOOTSTRAP=...), 3 if not; the state of
#                        each node and the quorum leader on stderr.
#   leader               Prints the node id of the controller quorum's leader (from the nodes' logs).
#   pid NODE             Prints the pid of a running node (exit 3 if it does not run).
#
# Environment:
#   KAFKA_CLUSTER_STATE_DIR          default <repo>/var/kafka-cluster: cluster-id, cluster.env (the ports),
#                                    controller.password (0600), credentials/, node-1..3/ (data/, kafka.pid,
#                                    kafka.log, server.properties 0600)
#   KAFKA_CLUSTER_PORTS              client ports of nodes 1,2,3, default 9192,9194,9196
#   KAFKA_CLUSTER_CONTROLLER_PORTS   controller ports of nodes 1,2,3, default 9193,9195,9197
#                                    (a formatted cluster keeps the ports it was formatted with)
#   KAFKA_CREDENTIALS_DIR            default $KAFKA_CLUSTER_STATE_DIR/credentials (ido-admin.password made
#                                    on first start; `ido kafka provision` adds the other principals')
#   KAFKA_KEEP_DATA=1                start: keep an already formatted cluster
#   KAFKA_START_TIMEOUT              seconds to wait for readiness, default 180
#   KAFKA_CLUSTER_HEAP_OPTS          per node, default "-Xms512m -Xmx512m -XX:+AlwaysPreTouch": 1.5 GiB of
#                                    heap for the three, committed and touched at start (a restarted node's
#                                    memory does not creep up while its heap grows, which `make soak` judges);
#                                    with metaspace, threads and buffers the three stay under 3 GiB in all
#                                    (tests/cluster/test_cluster.py measures their RSS)
#   IDO_CACHE_DIR, JAVA_HOME         as scripts/kafka.sh
#
# Messages go to stderr and start with "kafka-cluster: "; stdout carries only KAFKA_BOOTSTRAP=... (or
# the answer of `leader` / `pid`).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_HOST=127.0.0.1
NODES=(1 2 3)
KAFKA_CLUSTER_STATE_DIR="${KAFKA_CLUSTER_STATE_DIR:-$(cd "$SCRIPT_DIR/.." && pwd)/var/kafka-cluster}"
KAFKA_CREDENTIALS_DIR="${KAFKA_CREDENTIALS_DIR:-$KAFKA_CLUSTER_STATE_DIR/credentials}"
KAFKA_KEEP_DATA="${KAFKA_KEEP_DATA:-0}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-180}"
KAFKA_HEAP_OPTS="${KAFKA_CLUSTER_HEAP_OPTS:--Xms512m -Xmx512m -XX:+AlwaysPreTouch}"
CACHE_ROOT="${IDO_CACHE_DIR:-${HOME:-/root}/.cache/ido-ledger}"
STOP_GRACE=30
ADMIN_USER=ido-admin
CONTROLLER_USER=ido-controller
LOG_NAME=kafka-cluster
REPLICATION_FACTOR=3
MIN_INSYNC_REPLICAS=2
# shellcheck source=scripts/kafka-common.sh
source "$SCRIPT_DIR/kafka-common.sh"

STATE="$KAFKA_CLUSTER_STATE_DIR"
CLUSTER_ENV="$STATE/cluster.env"
CLUSTER_ID_FILE="$STATE/cluster-id"
CONTROLLER_PASSWORD_FILE="$STATE/controller.password"

node_dir() { echo "$STATE/node-$1"; }
pid_file() { echo "$STATE/node-$1/kafka.pid"; }
log_file() { echo "$STATE/node-$1/kafka.log"; }
props_file() { echo "$STATE/node-$1/server.properties"; }
data_dir() { echo "$STATE/node-$1/data"; }

check_node() {
    [[ "${1:-}" =~ ^[123]$ ]] || die "NODE must be 1, 2 or 3, got '${1:-}'"
}

# PORTS and CONTROLLER_PORTS (arrays indexed by node id): those the cluster was formatted with, else
# the environment's or the defaults.
load_ports() {
    local ports="${KAFKA_CLUSTER_PORTS:-9192,9194,9196}"
    local controller_ports="${KAFKA_CLUSTER_CONTROLLER_PORTS:-9193,9195,9197}"
    if [[ -f "$CLUSTER_ENV" && "${1:-}" != fresh ]]; then
        local saved_ports saved_controller
        saved_ports="$(sed -n 's/^KAFKA_CLUSTER_PORTS=//p' "$CLUSTER_ENV")"
        saved_controller="$(sed -n 's/^KAFKA_CLUSTER_CONTROLLER_PORTS=//p' "$CLUSTER_ENV")"
        if [[ -n "${KAFKA_CLUSTER_PORTS:-}${KAFKA_CLUSTER_CONTROLLER_PORTS:-}" \
            && "$ports,$controller_ports" != "$saved_ports,$saved_controller" ]]; then
            log "this cluster was formatted with ports $saved_ports / controllers $saved_controller; using those"
        fi
        ports="$saved_ports"
        controller_ports="$saved_controller"
    fi
    local -a p c
    IFS=, read -r -a p <<<"$ports"
    IFS=, read -r -a c <<<"$controller_ports"
    ((${#p[@]} == 3 && ${#c[@]} == 3)) \
        || die "KAFKA_CLUSTER_PORTS and KAFKA_CLUSTER_CONTROLLER_PORTS must each name 3 ports, got '$ports' and '$controller_ports'"
    PORTS=([1]="${p[0]}" [2]="${p[1]}" [3]="${p[2]}")
    CONTROLLER_PORTS=([1]="${c[0]}" [2]="${c[1]}" [3]="${c[2]}")
    local all
    all="$(printf '%s\n' "${p[@]}" "${c[@]}")"
    [[ "$(sort -u <<<"$all" | wc -l)" == 6 ]] || die "the six cluster ports must differ: $ports / $controller_ports"
    grep -qvE '^[0-9]+$' <<<"$all" && die "ports must be numbers: $ports / $controller_ports"
    return 0
}

bootstrap() {
    echo "$KAFKA_HOST:${PORTS[1]},$KAFKA_HOST:${PORTS[2]},$KAFKA_HOST:${PORTS[3]}"
}

voters() {
    echo "1@$KAFKA_HOST:${CONTROLLER_PORTS[1]},2@$KAFKA_HOST:${CONTROLLER_PORTS[2]},3@$KAFKA_HOST:${CONTROLLER_PORTS[3]}"
}

formatted() {
    [[ -f "$CLUSTER_ID_FILE" && -f "$CLUSTER_ENV" ]] || return 1
    local n
    for n in "${NODES[@]}"; do
        [[ -f "$(data_dir "$n")/meta.properties" ]] || return 1
    done
}

# The controllers log in to each other on the controller listener: one password for the three,
# made with the cluster and kept (a node restarted alone must still log in), mode 0600.
ensure_controller_password() {
    [[ -s "$CONTROLLER_PASSWORD_FILE" ]] && return 0
    (umask 077 && new_password >"$CONTROLLER_PASSWORD_FILE")
}

render_node() {
    local n="$1"
    mkdir -p "$(node_dir "$n")"
    render_properties "$(props_file "$n")" "$(data_dir "$n")" "${PORTS[$n]}" "${CONTROLLER_PORTS[$n]}" "$n" \
        "$(voters)" "$REPLICATION_FACTOR" "$MIN_INSYNC_REPLICAS" "$(tr -d '[:space:]' <"$CONTROLLER_PASSWORD_FILE")"
}

# A new cluster: every node's data wiped and formatted with one new cluster id (and the admin's
# SCRAM credential, so it exists before anyone can log in).
format_cluster() {
    local cluster_id n
    cluster_id="$(new_cluster_id)"
    rm -f "$CONTROLLER_PASSWORD_FILE"
    ensure_controller_password
    for n in "${NODES[@]}"; do
        render_node "$n"
        format_storage "$(props_file "$n")" "$(data_dir "$n")" "$cluster_id"
    done
    echo "$cluster_id" >"$CLUSTER_ID_FILE"
    cat >"$CLUSTER_ENV" <<EOF
KAFKA_CLUSTER_PORTS=${PORTS[1]},${PORTS[2]},${PORTS[3]}
KAFKA_CLUSTER_CONTROLLER_PORTS=${CONTROLLER_PORTS[1]},${CONTROLLER_PORTS[2]},${CONTROLLER_PORTS[3]}
KAFKA_BOOTSTRAP=$(bootstrap)
KAFKA_CREDENTIALS_DIR=$KAFKA_CREDENTIALS_DIR
EOF
    log "formatted a new cluster $cluster_id in $STATE"
}

# Launches node $1 if it does not run; echoes its pid.
launch_node() {
    local n="$1" pid p
    if pid="$(running_pid_of "$(pid_file "$n")")"; then
        echo "$pid"
        return 0
    fi
    for p in "${PORTS[$n]}" "${CONTROLLER_PORTS[$n]}"; do
        port_open "$p" && die "port $KAFKA_HOST:$p of node $n is in use by another process; stop it or choose other ports"
    done
    render_node "$n"
    launch_broker "$(pid_file "$n")" "$(log_file "$n")" "$(props_file "$n")" "$(node_dir "$n")"
}

# The node id of the quorum's leader, from the running nodes' logs: each node's latest raft transition
# ("Completed transition to Leader(...)" on the leader, "...FollowerState(..., leader=N, ...)" on a
# follower; a Candidate or Unattached node knows none); the newest of those wins.
quorum_leader() {
    local n best_line="" best_leader="" line leader
    for n in "${NODES[@]}"; do
        running_pid_of "$(pid_file "$n")" >/dev/null || continue
        line="$(grep -E 'RaftManager id=[0-9]+\] Completed transition to ' "$(log_file "$n")" 2>/dev/null | tail -n1)" || true
        case "$line" in
            *"Completed transition to Leader("*) leader="$n" ;;
            *"Completed transition to FollowerState("*)
                leader="$(sed -n 's/.*FollowerState([^)]*, leader=\([0-9]*\),.*/\1/p' <<<"$line" | head -n1)" ;;
            *) leader="" ;;
        esac
        [[ -n "$leader" ]] || continue
        # The timestamps "[yyyy-mm-dd hh:mm:ss,ms]" sort as text: the newest line wins.
        if [[ -z "$best_line" || "${line:0:25}" > "${best_line:0:25}" ]]; then
            best_line="$line"
            best_leader="$leader"
        fi
    done
    [[ -n "$best_leader" ]] || return 1
    echo "$best_leader"
}

wait_for_leader() {
    local deadline=$((SECONDS + $1)) leader
    while ((SECONDS < deadline)); do
        if leader="$(quorum_leader)"; then
            echo "$leader"
            return 0
        fi
        sleep 0.25
    done
    return 1
}

wait_node_ready() {
    local n="$1" pid="$2"
    wait_ready "$pid" "${PORTS[$n]}" "$(log_file "$n")" "$(pid_file "$n")" "$KAFKA_START_TIMEOUT"
}

cmd_start_all() {
    local keep
    keep="$(keep_data_option "$KAFKA_KEEP_DATA" "$@")"
    mkdir -p "$STATE"
    local n any_running=0
    for n in "${NODES[@]}"; do
        running_pid_of "$(pid_file "$n")" >/dev/null && any_running=1
    done
    if [[ "$any_running" == 1 ]]; then
        keep=1   # never wipe a cluster that (partly) runs: start the missing nodes on their data
    fi
    ensure_java
    ensure_jars
    ensure_admin_password
    if [[ "$keep" == 1 ]] && formatted; then
        load_ports
        log "keeping the cluster $(cat "$CLUSTER_ID_FILE") in $STATE"
        [[ -s "$ADMIN_PASSWORD_FILE" ]] || die "the admin password $ADMIN_PASSWORD_FILE is missing: restore it or start without --keep-data"
        ensure_controller_password
    else
        [[ "$any_running" == 0 ]] || die "nodes run but the cluster in $STATE is not fully formatted: stop it first"
        load_ports fresh
        format_cluster
    fi
    local start=$SECONDS
    local -A pids
    # A cluster this call started does not outlive its failed start.
    [[ "$any_running" == 1 ]] || trap 'log "start failed; stopping the nodes"; cmd_stop_all || true' EXIT
    # All three first: each waits for a quorum, which needs two of them.
    for n in "${NODES[@]}"; do
        pids[$n]="$(launch_node "$n")"
    done
    for n in "${NODES[@]}"; do
        wait_node_ready "$n" "${pids[$n]}"
    done
    local leader
    leader="$(wait_for_leader 30)" || fail_start "$(log_file 1)" "the three nodes run but no controller quorum leader was logged within 30 s"
    trap - EXIT
    log "started (pids ${pids[1]} ${pids[2]} ${pids[3]}) in $((SECONDS - start)) s; quorum leader: node $leader; logs: $STATE/node-*/kafka.log"
    echo "KAFKA_BOOTSTRAP=$(bootstrap)"
}

cmd_start_node() {
    local n="$1" pid
    formatted || die "no formatted cluster in $STATE: run start first"
    load_ports
    ensure_java
    ensure_jars
    ensure_controller_password
    pid="$(launch_node "$n")"
    wait_node_ready "$n" "$pid"
    log "node $n ready (pid $pid) on $KAFKA_HOST:${PORTS[$n]}"
}

stop_node() {
    local n="$1" pid
    if ! pid="$(read_pid_file "$(pid_file "$n")")"; then
        return 0
    fi
    if is_our_broker "$pid"; then
        stop_pid "$pid" "$(pid_file "$n")"
        log "node $n stopped (pid $pid)"
    else
        rm -f "$(pid_file "$n")"
    fi
}

# All three at once: one by one, the last would wait its whole grace for a quorum that is gone.
cmd_stop_all() {
    local n
    local -a waits=()
    for n in "${NODES[@]}"; do
        stop_node "$n" &
        waits+=($!)
    done
    local status=0 w
    for w in "${waits[@]}"; do
        wait "$w" || status=1
    done
    # Whatever a stopper reported, no node may outlive `stop`.
    for n in "${NODES[@]}"; do
        local pid
        if pid="$(running_pid_of "$(pid_file "$n")")"; then
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$(pid_file "$n")"
            status=1
        fi
    done
    return "$status"
}

cmd_kill() {
    local n="$1" pid
    pid="$(running_pid_of "$(pid_file "$n")")" || die "node $n does not run"
    kill -KILL "$pid"
    local tries=0
    while alive "$pid" && ((tries++ < 100)); do sleep 0.1; done
    alive "$pid" && die "node $n (pid $pid) still alive 10 s after SIGKILL"
    rm -f "$(pid_file "$n")"
    log "node $n killed (pid $pid)"
}

cmd_wipe() {
    local n="$1"
    formatted || die "no formatted cluster in $STATE: run start first"
    stop_node "$n"
    load_ports
    ensure_java
    ensure_jars
    ensure_controller_password
    render_node "$n"
    # Same cluster id; its topics' replicas come back from the other two nodes.
    format_storage "$(props_file "$n")" "$(data_dir "$n")" "$(cat "$CLUSTER_ID_FILE")"
    log "node $n: log dir deleted and formatted again"
    local pid
    pid="$(launch_node "$n")"
    wait_node_ready "$n" "$pid"
    log "node $n ready (pid $pid) on $KAFKA_HOST:${PORTS[$n]}"
}

cmd_status() {
    [[ -f "$CLUSTER_ENV" ]] || { log "no cluster in $STATE"; return 3; }
    load_ports
    local n pid up=0
    for n in "${NODES[@]}"; do
        if pid="$(running_pid_of "$(pid_file "$n")")" && node_ready "${PORTS[$n]}" "$(log_file "$n")"; then
            log "node $n running (pid $pid) on $KAFKA_HOST:${PORTS[$n]}"
            up=$((up + 1))
        else
            log "node $n not running"
        fi
    done
    local leader
    leader="$(quorum_leader)" && log "quorum leader: node $leader"
    if ((up == 3)); then
        echo "KAFKA_BOOTSTRAP=$(bootstrap)"
        return 0
    fi
    return 3
}

main() {
    local cmd="${1:-}"
    (($#)) && shift
    case "$cmd" in
        start | stop | wipe) take_lock "$STATE" $((KAFKA_START_TIMEOUT * 2 + STOP_GRACE + 60)) ;;
    esac
    case "$cmd" in
        start)
            if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
                check_node "$1"
                cmd_start_node "$1"
            else
                cmd_start_all "$@"
            fi
            ;;
        stop)
            if (($#)); then
                check_node "$1"
                stop_node "$1"
            else
                cmd_stop_all
            fi
            ;;
        kill) check_node "${1:-}"; cmd_kill "$1" ;;
        wipe) check_node "${1:-}"; cmd_wipe "$1" ;;
        status) cmd_status ;;
        leader) quorum_leader || { log "no quorum leader logged by a running node"; exit 3; } ;;
        pid) check_node "${1:-}"; running_pid_of "$(pid_file "$1")" || exit 3 ;;
        *)
            echo "usage: $0 start [--keep-data] | start NODE | stop [NODE] | kill NODE | wipe NODE | status | leader | pid NODE" >&2
            exit 2
            ;;
    esac
}

main "$@"
