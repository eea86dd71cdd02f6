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

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
INFRA_DIR="$REPO_DIR/infra/kafka"
POM="$INFRA_DIR/pom.xml"

KAFKA_HOST=127.0.0.1
PORTS_FROM_ENV="${KAFKA_PORT:+1}${KAFKA_CONTROLLER_PORT:+1}"   # non-empty if the caller chose ports
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_STATE_DIR="${KAFKA_STATE_DIR:-$REPO_DIR/var/kafka}"
KAFKA_CREDENTIALS_DIR="${KAFKA_CREDENTIALS_DIR:-$KAFKA_STATE_DIR/credentials}"
KAFKA_KEEP_DATA="${KAFKA_KEEP_DATA:-0}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
CACHE_ROOT="${IDO_CACHE_DIR:-${HOME:-/root}/.cache/ido-ledger}"
STOP_GRACE=30

DATA_DIR="$KAFKA_STATE_DIR/data"
PID_FILE="$KAFKA_STATE_DIR/kafka.pid"
LOG_FILE="$KAFKA_STATE_DIR/kafka.log"
PROPS_FILE="$KAFKA_STATE_DIR/server.properties"
ENV_FILE="$KAFKA_STATE_DIR/env"
ADMIN_USER=ido-admin
CONTROLLER_USER=ido-controller
ADMIN_PASSWORD_FILE="$KAFKA_CREDENTIALS_DIR/$ADMIN_USER.password"
SASL_MARKER="$KAFKA_STATE_DIR/formatted-with-sasl"   # data formatted with the admin's SCRAM credential

log() { echo "kafka: $*" >&2; }
die() { echo "kafka: $*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

kafka_version() {
    local v
    v="$(sed -n 's:.*<kafka.version>\([^<]*\)</kafka.version>.*:\1:p' "$POM" | head -n1)"
    [[ -n "$v" ]] || die "cannot read <kafka.version> from $POM"
    echo "$v"
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/$KAFKA_HOST/$1") 2>/dev/null
}

# True if pid $1 exists and is not a zombie (pid 1 here may reap exited children late).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local st
    st="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 0
    [[ "$st" != Z ]]
}

read_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"$PID_FILE")"
    [[ -n "$pid" ]] || return 1
    echo "$pid"
}

# True if $1 is a live process that is our broker (guards against pid reuse).
is_our_broker() {
    local pid="$1"
    alive "$pid" || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 0   # cannot check; trust kill -0
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'kafka\.Kafka'
}

running_pid() {
    local pid
    pid="$(read_pid)" || return 1
    is_our_broker "$pid" || return 1
    echo "$pid"
}

ensure_java() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        JAVA="$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        JAVA="$(command -v java)"
    elif [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "java not found; installing openjdk-17-jre-headless with apt-get"
        (export DEBIAN_FRONTEND=noninteractive
         apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless) >&2 \
            || die "apt-get install openjdk-17-jre-headless failed"
        JAVA="$(command -v java)" || die "java still not found after apt-get install"
    else
        die "java (17+) not found; install a JDK/JRE 17 or set JAVA_HOME"
    fi
    local major
    major="$("$JAVA" -XshowSettings:properties -version 2>&1 \
        | sed -n 's/^ *java\.specification\.version = \([0-9.]*\).*/\1/p' | head -n1)"
    major="${major#1.}"; major="${major%%.*}"
    if [[ -n "$major" && "$major" -lt 17 ]]; then
        die "Kafka 4.x needs Java 17+, but $JAVA is Java $major (set JAVA_HOME)"
    fi
}

ensure_maven() {
    command -v mvn >/dev/null 2>&1 && return 0
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "mvn not found; installing maven with apt-get"
        (export DEBIAN_FRONTEND=noninteractive
         apt-get update -qq && apt-get install -y -qq maven) >&2 \
            || die "apt-get install maven failed"
        command -v mvn >/dev/null 2>&1 || die "mvn still not found after apt-get install"
    else
        die "mvn (Maven 3) not found; it is needed once to fetch the Kafka jars"
    fi
}

# Sets LIB_DIR; resolves the jars with Maven on first use (or when pom.xml changed).
ensure_jars() {
    local version pom_sum
    version="$(kafka_version)"
    LIB_DIR="$CACHE_ROOT/kafka-lib-$version"
    pom_sum="$(sha256sum "$POM" | cut -d' ' -f1)"
    if [[ -f "$LIB_DIR/.complete" && "$(cat "$LIB_DIR/.complete")" == "$pom_sum" ]] \
        && compgen -G "$LIB_DIR/kafka_2.13-*.jar" >/dev/null; then
        return 0
    fi
    ensure_maven
    mkdir -p "$CACHE_ROOT"
    local tmp mvn_log start
    tmp="$(mktemp -d "$CACHE_ROOT/.kafka-lib-$version.XXXXXX")"
    mvn_log="$tmp.mvn.log"
    start=$SECONDS
    log "resolving Kafka $version jars with Maven (first run downloads ~45 MB) ..."
    if ! mvn -B -q -f "$POM" -Dkafka.lib.dir="$tmp" package >"$mvn_log" 2>&1; then
        tail -n 50 "$mvn_log" >&2 || true
        rm -rf "$tmp" "$mvn_log"
        die "Maven could not resolve the Kafka jars (see output above; registry reachable?)"
    fi
    compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null \
        || { rm -rf "$tmp" "$mvn_log"; die "Maven ran but no kafka_2.13 jar appeared in $tmp"; }
    echo "$pom_sum" >"$tmp/.complete"
    # Swap in atomically-ish so a concurrent run never sees a half-filled lib dir.
    rm -rf "$LIB_DIR.old"
    [[ -e "$LIB_DIR" ]] && mv "$LIB_DIR" "$LIB_DIR.old"
    mv "$tmp" "$LIB_DIR"
    rm -rf "$LIB_DIR.old" "$mvn_log"
    log "jars cached in $LIB_DIR ($((SECONDS - start)) s)"
}

# Kafka's Uuid.randomUuid(): 16 random bytes, URL-safe base64 without padding, not starting
# with '-'. Done in python3 when available (saves one JVM start), else via StorageTool.
new_cluster_id() {
    if command -v python3 >/dev/null 2>&1; then
        python3 - <<'PY'
import base64, os
while True:
    s = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not s.startswith("-") and s != "AAAAAAAAAAAAAAAAAAAAAA":
        print(s)
        break
PY
    else
        "$JAVA" -Dlog4j2.configurationFile="$INFRA_DIR/tools-log4j2.properties" \
            -cp "$LIB_DIR/*" kafka.tools.StorageTool random-uuid
    fi
}

# A random password (48 hex digits) on stdout; only ever captured into a variable or a 0600 file.
new_password() {
    od -An -tx1 -N24 /dev/urandom | tr -d ' \n'
}

# The admin's password file: made once, atomically (a 0600 temp file linked into place, so a
# concurrent start never sees a half-written file and never overwrites one), then reused.
ensure_admin_password() {
    (umask 077 && mkdir -p "$KAFKA_CREDENTIALS_DIR")
    chmod 700 "$KAFKA_CREDENTIALS_DIR"
    [[ -s "$ADMIN_PASSWORD_FILE" ]] && return 0
    local tmp
    tmp="$(umask 077 && mktemp "$KAFKA_CREDENTIALS_DIR/.$ADMIN_USER.XXXXXX")"
    new_password >"$tmp"
    if ! ln "$tmp" "$ADMIN_PASSWORD_FILE" 2>/dev/null && [[ ! -s "$ADMIN_PASSWORD_FILE" ]]; then
        rm -f "$tmp"
        die "cannot create $ADMIN_PASSWORD_FILE"
    fi
    rm -f "$tmp"
    log "made the $ADMIN_USER password in $KAFKA_CREDENTIALS_DIR (mode 0600)"
}

read_admin_password() {
    local pw
    pw="$(tr -d '[:space:]' <"$ADMIN_PASSWORD_FILE")"
    [[ "$pw" =~ ^[A-Za-z0-9._~-]{16,}$ ]] \
        || die "$ADMIN_PASSWORD_FILE must hold one password of 16+ characters [A-Za-z0-9._~-]"
    printf '%s' "$pw"
}

# server.properties with the secrets (admin password for the inter-broker login, a per-start
# password of the controller listener's static PLAIN user) substituted by bash itself (no sed
# argument carries them), written 0600 and moved into place.
render_properties() {
    local template admin_pw controller_pw tmp
    template="$(<"$INFRA_DIR/server.properties.template")"
    admin_pw="$(read_admin_password)"
    controller_pw="$(new_password)"
    template="${template//@KAFKA_HOST@/$KAFKA_HOST}"
    template="${template//@KAFKA_PORT@/$KAFKA_PORT}"
    template="${template//@KAFKA_CONTROLLER_PORT@/$KAFKA_CONTROLLER_PORT}"
    template="${template//@KAFKA_DATA_DIR@/$DATA_DIR}"
    template="${template//@KAFKA_ADMIN_USER@/$ADMIN_USER}"
    template="${template//@KAFKA_ADMIN_PASSWORD@/$admin_pw}"
    template="${template//@KAFKA_CONTROLLER_USER@/$CONTROLLER_USER}"
    template="${template//@KAFKA_CONTROLLER_PASSWORD@/$controller_pw}"
    tmp="$(umask 077 && mktemp "$KAFKA_STATE_DIR/.server.properties.XXXXXX")"
    printf '%s\n' "$template" >"$tmp"
    mv -f "$tmp" "$PROPS_FILE"
}

# Formats the data dir with the admin's SCRAM credential (KIP-900). The password goes to the JVM
# in a 0600 argument file (`java @file`), not on a command line other users could read in /proc.
format_storage() {
    local cluster_id out argfile status=0
    rm -rf "$DATA_DIR"
    mkdir -p "$DATA_DIR"
    cluster_id="$(new_cluster_id)"
    argfile="$(umask 077 && mktemp "$KAFKA_STATE_DIR/.format-args.XXXXXX")"
    {
        echo "-Xmx256m"
        echo "-Dlog4j2.configurationFile=$INFRA_DIR/tools-log4j2.properties"
        echo "-cp"
        echo "\"$LIB_DIR/*\""
        echo "kafka.tools.StorageTool"
        echo "format"
        echo "-t"
        echo "$cluster_id"
        echo "-c"
        echo "\"$PROPS_FILE\""
        echo "--add-scram"
        echo "SCRAM-SHA-512=[name=$ADMIN_USER,password=$(read_admin_password)]"
    } >"$argfile"
    out="$("$JAVA" "@$argfile" 2>&1)" || status=$?
    rm -f "$argfile"
    if ((status != 0)); then
        echo "$out" >&2
        die "formatting $DATA_DIR failed (kafka.tools.StorageTool format)"
    fi
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

fail_start() {
    local reason="$1"
    if [[ -f "$LOG_FILE" ]]; then
        echo "----- last 50 lines of $LOG_FILE -----" >&2
        tail -n 50 "$LOG_FILE" >&2 || true
        echo "-----" >&2
    fi
    die "$reason"
}

# Wait until the port answers and the log says "Kafka Server started".
wait_ready() {
    local pid="$1" deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    while :; do
        if ! alive "$pid"; then
            rm -f "$PID_FILE"
            fail_start "broker process $pid exited during startup (see log above)"
        fi
        if port_open "$KAFKA_PORT" && grep -q 'Kafka Server started' "$LOG_FILE" 2>/dev/null; then
            return 0
        fi
        if ((SECONDS >= deadline)); then
            log "not ready after ${KAFKA_START_TIMEOUT} s; stopping broker pid $pid"
            stop_pid "$pid"
            fail_start "broker not ready after ${KAFKA_START_TIMEOUT} s on $KAFKA_HOST:$KAFKA_PORT (port open: $(port_open "$KAFKA_PORT" && echo yes || echo no), 'Kafka Server started' logged: $(grep -q 'Kafka Server started' "$LOG_FILE" && echo yes || echo no))"
        fi
        sleep 0.25
    done
}

# ---------------------------------------------------------------- commands

cmd_start() {
    local keep="$KAFKA_KEEP_DATA"
    while (($#)); do
        case "$1" in
            --keep-data) keep=1 ;;
            *) die "unknown option for start: $1" ;;
        esac
        shift
    done

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
        wait_ready "$pid"
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
    render_properties

    if [[ "$keep" == 1 && -f "$DATA_DIR/meta.properties" ]]; then
        log "keeping existing data in $DATA_DIR (cluster $(cat "$KAFKA_STATE_DIR/cluster-id" 2>/dev/null || echo '?'))"
    else
        format_storage
    fi

    # Keep one previous log for post-mortems; readiness is grepped from the new one only.
    [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.prev"
    : >"$LOG_FILE"

    write_env_file
    local start=$SECONDS
    # setsid: own session, so the broker survives the caller's process group / terminal.
    # All fds are redirected (and fd 9, our lock, closed): a caller that captures our stdout
    # (subprocess.run) must not wait on the broker. The inner shell writes its own pid, then
    # execs java (same pid).
    # shellcheck disable=SC2086
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
        "$JAVA" $KAFKA_HEAP_OPTS \
        -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$INFRA_DIR/log4j2.properties" \
        -Dkafka.logs.dir="$KAFKA_STATE_DIR" \
        -cp "$LIB_DIR/*" kafka.Kafka "$PROPS_FILE" \
        </dev/null >>"$LOG_FILE" 2>&1 9>&- &

    # The pid file is written by the child; wait briefly for it.
    for _ in $(seq 1 100); do
        pid="$(read_pid)" && break
        sleep 0.05
    done
    pid="$(read_pid)" || fail_start "broker did not write its pid file $PID_FILE"

    wait_ready "$pid"
    log "started (pid $pid) in $((SECONDS - start)) s; log: $LOG_FILE"
    print_bootstrap
}

# SIGTERM, wait up to STOP_GRACE s, then SIGKILL; removes the pid file.
stop_pid() {
    local pid="$1"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_GRACE))
    while alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if alive "$pid"; then
        log "pid $pid still alive after ${STOP_GRACE} s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        local n=0
        while alive "$pid" && ((n++ < 100)); do sleep 0.1; done
    fi
    rm -f "$PID_FILE"
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
    stop_pid "$pid"
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

# Serialise start/stop/restart on one state dir (parallel test workers, CI retries).
take_lock() {
    mkdir -p "$KAFKA_STATE_DIR"
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>"$KAFKA_STATE_DIR/.lock"
    flock -w $((KAFKA_START_TIMEOUT + STOP_GRACE + 60)) 9 || die "timed out waiting for the lock on $KAFKA_STATE_DIR"
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
        start | stop | restart-keep-data) take_lock ;;
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
