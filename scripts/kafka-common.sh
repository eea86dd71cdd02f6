# Sourced by scripts/kafka.sh (one node) and scripts/kafka-cluster.sh (three nodes): what both need to
# run a KRaft node from the Maven jars of infra/kafka/pom.xml with SASL/SCRAM logins and ACLs. Written
# once here so the single node and the cluster cannot drift apart (same template, same format, same
# launch, same readiness wait, same stop).
#
# The caller sets before sourcing: KAFKA_HOST, CACHE_ROOT, KAFKA_CREDENTIALS_DIR, ADMIN_USER,
# CONTROLLER_USER, KAFKA_HEAP_OPTS, STOP_GRACE, LOG_NAME (the prefix of its messages).
# Messages go to stderr; no function here prints a secret.

KAFKA_COMMON_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$KAFKA_COMMON_DIR/.." && pwd)"
INFRA_DIR="$REPO_DIR/infra/kafka"
POM="$INFRA_DIR/pom.xml"
ADMIN_PASSWORD_FILE="$KAFKA_CREDENTIALS_DIR/$ADMIN_USER.password"

log() { echo "$LOG_NAME: $*" >&2; }
die() { echo "$LOG_NAME: $*" >&2; exit 1; }

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

# The pid in pid file $1.
read_pid_file() {
    [[ -f "$1" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"$1")"
    [[ -n "$pid" ]] || return 1
    echo "$pid"
}

# True if $1 is a live process that is a broker (guards against pid reuse).
is_our_broker() {
    local pid="$1"
    alive "$pid" || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 0   # cannot check; trust kill -0
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'kafka\.Kafka'
}

# The pid of the broker of pid file $1, if it runs.
running_pid_of() {
    local pid
    pid="$(read_pid_file "$1")" || return 1
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

# render_properties OUT DATA_DIR PORT CONTROLLER_PORT NODE_ID VOTERS REPLICATION MIN_ISR CONTROLLER_PASSWORD
# server.properties of one node from infra/kafka/server.properties.template. The secrets (the admin
# password for the inter-broker login, the controller listener's PLAIN password) are substituted by
# bash itself (no sed argument carries them); the file is written 0600 and moved into place.
render_properties() {
    local out="$1" data_dir="$2" port="$3" controller_port="$4" node_id="$5" voters="$6"
    local replication="$7" min_isr="$8" controller_pw="$9"
    local template admin_pw tmp
    template="$(<"$INFRA_DIR/server.properties.template")"
    admin_pw="$(read_admin_password)"
    template="${template//@KAFKA_HOST@/$KAFKA_HOST}"
    template="${template//@KAFKA_PORT@/$port}"
    template="${template//@KAFKA_CONTROLLER_PORT@/$controller_port}"
    template="${template//@KAFKA_NODE_ID@/$node_id}"
    template="${template//@KAFKA_QUORUM_VOTERS@/$voters}"
    template="${template//@KAFKA_REPLICATION_FACTOR@/$replication}"
    template="${template//@KAFKA_MIN_INSYNC_REPLICAS@/$min_isr}"
    template="${template//@KAFKA_DATA_DIR@/$data_dir}"
    template="${template//@KAFKA_ADMIN_USER@/$ADMIN_USER}"
    template="${template//@KAFKA_ADMIN_PASSWORD@/$admin_pw}"
    template="${template//@KAFKA_CONTROLLER_USER@/$CONTROLLER_USER}"
    template="${template//@KAFKA_CONTROLLER_PASSWORD@/$controller_pw}"
    tmp="$(umask 077 && mktemp "$(dirname "$out")/.server.properties.XXXXXX")"
    printf '%s\n' "$template" >"$tmp"
    mv -f "$tmp" "$out"
}

# format_storage PROPS DATA_DIR CLUSTER_ID
# Formats a data dir with the admin's SCRAM credential (KIP-900). The password goes to the JVM in a
# 0600 argument file (`java @file`), not on a command line other users could read in /proc.
format_storage() {
    local props="$1" data_dir="$2" cluster_id="$3" out argfile status=0
    rm -rf "$data_dir"
    mkdir -p "$data_dir"
    argfile="$(umask 077 && mktemp "$(dirname "$props")/.format-args.XXXXXX")"
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
        echo "\"$props\""
        echo "--add-scram"
        echo "SCRAM-SHA-512=[name=$ADMIN_USER,password=$(read_admin_password)]"
    } >"$argfile"
    out="$("$JAVA" "@$argfile" 2>&1)" || status=$?
    rm -f "$argfile"
    if ((status != 0)); then
        echo "$out" >&2
        die "formatting $data_dir failed (kafka.tools.StorageTool format)"
    fi
}

# launch_broker PID_FILE LOG_FILE PROPS LOGS_DIR: starts the JVM in the background and echoes its pid.
launch_broker() {
    local pid_file="$1" log_file="$2" props="$3" logs_dir="$4" pid
    rm -f "$pid_file"
    # Keep one previous log for post-mortems; readiness is grepped from the new one only.
    [[ -f "$log_file" ]] && mv -f "$log_file" "$log_file.prev"
    : >"$log_file"
    # setsid: own session, so the broker survives the caller's process group / terminal.
    # All fds are redirected (and fd 9, the caller's lock, closed): a caller that captures our stdout
    # (subprocess.run) must not wait on the broker. The inner shell writes its own pid, then
    # execs java (same pid).
    # shellcheck disable=SC2086
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pid_file" \
        "$JAVA" $KAFKA_HEAP_OPTS \
        -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$INFRA_DIR/log4j2.properties" \
        -Dkafka.logs.dir="$logs_dir" \
        -cp "$LIB_DIR/*" kafka.Kafka "$props" \
        </dev/null >>"$log_file" 2>&1 9>&- &
    # The pid file is written by the child; wait briefly for it.
    for _ in $(seq 1 100); do
        pid="$(read_pid_file "$pid_file")" && break
        sleep 0.05
    done
    pid="$(read_pid_file "$pid_file")" || fail_start "$log_file" "broker did not write its pid file $pid_file"
    echo "$pid"
}

# fail_start LOG_FILE REASON
fail_start() {
    local log_file="$1" reason="$2"
    if [[ -f "$log_file" ]]; then
        echo "----- last 50 lines of $log_file -----" >&2
        tail -n 50 "$log_file" >&2 || true
        echo "-----" >&2
    fi
    die "$reason"
}

# True once the broker of LOG_FILE answers on PORT and logged "Kafka Server started".
node_ready() {
    port_open "$1" && grep -q 'Kafka Server started' "$2" 2>/dev/null
}

# wait_ready PID PORT LOG_FILE PID_FILE TIMEOUT_S: until the port answers and the log says
# "Kafka Server started" (a combined node logs it only after it caught up with the metadata log,
# which needs a quorum leader); stops the node and fails if it exits or the time is up.
wait_ready() {
    local pid="$1" port="$2" log_file="$3" pid_file="$4" timeout_s="$5"
    local deadline=$((SECONDS + timeout_s))
    while :; do
        if ! alive "$pid"; then
            rm -f "$pid_file"
            fail_start "$log_file" "broker process $pid exited during startup (see log above)"
        fi
        node_ready "$port" "$log_file" && return 0
        if ((SECONDS >= deadline)); then
            log "not ready after ${timeout_s} s; stopping broker pid $pid"
            stop_pid "$pid" "$pid_file"
            fail_start "$log_file" "broker not ready after ${timeout_s} s on $KAFKA_HOST:$port (port open: $(port_open "$port" && echo yes || echo no), 'Kafka Server started' logged: $(grep -q 'Kafka Server started' "$log_file" && echo yes || echo no))"
        fi
        sleep 0.25
    done
}

# stop_pid PID PID_FILE: SIGTERM, wait up to STOP_GRACE s, then SIGKILL; removes the pid file.
stop_pid() {
    local pid="$1" pid_file="$2"
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
    rm -f "$pid_file"
}

# keep_data_option DEFAULT [ARGS...]: 1 if ARGS is --keep-data, else DEFAULT; any other option is refused.
keep_data_option() {
    local keep="$1"
    shift
    while (($#)); do
        case "$1" in
            --keep-data) keep=1 ;;
            *) die "unknown option for start: $1" ;;
        esac
        shift
    done
    echo "$keep"
}

# take_lock DIR TIMEOUT_S: serialise start/stop on one state dir (parallel test workers, CI retries).
take_lock() {
    mkdir -p "$1"
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>"$1/.lock"
    flock -w "$2" 9 || die "timed out waiting for the lock on $1"
}
