#!/usr/bin/env bash
# Throw-away local PostgreSQL server for tests and benchmarks (no Docker, no system cluster).
#
# Usage: scripts/postgres.sh start | stop | status
#
#   start   Stops a server left by an earlier start (same state dir), wipes and re-creates
#           the data dir (initdb --auth=trust), starts it on 127.0.0.1:<port>, waits until
#           pg_isready answers, creates role ido (superuser, password ido) and database ido.
#           Prints POSTGRES_URL=postgresql://ido:ido@127.0.0.1:<port>/ido on stdout and
#           writes "export ..." lines to <state>/env (source it) and the port to <state>/port.
#   stop    pg_ctl stop -m fast. Exits 0 if nothing is running.
#   status  Exit 0 if running (prints POSTGRES_URL=...), 3 if not.
#
# Environment:
#   PG_STATE_DIR        default <repo>/var/postgres
#   PG_PORT             default: a free port chosen at start (written to <state>/port)
#   PG_START_TIMEOUT    seconds to wait for readiness, default 60
#
# Binaries: initdb/pg_ctl from PATH, else the newest /usr/lib/postgresql/*/bin. If missing and
# running as root, `apt-get install -y postgresql` is tried once.
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user
# (created if missing). If that user cannot reach <state> (or the socket path would be too
# long), the data dir, socket and server log go to /tmp/ido-pg-<port> instead; <state>/env
# always says where (PG_DATA_DIR, PG_SOCKET_DIR, PG_LOG_FILE).
#
# Messages go to stderr and start with "postgres: "; stdout carries only POSTGRES_URL=...
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"

PG_HOST=127.0.0.1
PG_STATE_DIR="${PG_STATE_DIR:-$REPO_DIR/var/postgres}"
PG_START_TIMEOUT="${PG_START_TIMEOUT:-60}"
PG_DB=ido
PG_USER=ido
PG_PASSWORD=ido
PG_SUPERUSER=postgres   # bootstrap superuser created by initdb
ENV_FILE="$PG_STATE_DIR/env"
PORT_FILE="$PG_STATE_DIR/port"

export LC_ALL=C          # initdb must not trip over an unset/unknown locale
unset PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSERVICE PGOPTIONS || true

log() { echo "postgres: $*" >&2; }
die() { echo "postgres: $*" >&2; exit 1; }

IS_ROOT=0
[[ "$(id -u)" == 0 ]] && IS_ROOT=1

# ---------------------------------------------------------------- binaries

find_bindir() {
    local p d
    if p="$(command -v pg_ctl 2>/dev/null)" && command -v initdb >/dev/null 2>&1; then
        d="$(dirname "$(readlink -f "$p")")"
        if [[ -x "$d/initdb" && -x "$d/postgres" ]]; then echo "$d"; return 0; fi
    fi
    # Newest version first.
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5,5 -V -r); do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then echo "$d"; return 0; fi
    done
    return 1
}

ensure_binaries() {
    if ! PG_BIN_DIR="$(find_bindir)"; then
        if [[ "$IS_ROOT" == 1 ]] && command -v apt-get >/dev/null 2>&1; then
            log "initdb/pg_ctl not found; installing postgresql with apt-get"
            (export DEBIAN_FRONTEND=noninteractive
             apt-get update && apt-get install -y postgresql) >&2 \
                || die "apt-get install postgresql failed"
            PG_BIN_DIR="$(find_bindir)" \
                || die "initdb/pg_ctl still not found after apt-get install postgresql"
        else
            die "initdb/pg_ctl not found in PATH or /usr/lib/postgresql/*/bin; install PostgreSQL (apt-get install postgresql)"
        fi
    fi
    INITDB="$PG_BIN_DIR/initdb"
    PG_CTL="$PG_BIN_DIR/pg_ctl"
    PSQL="$PG_BIN_DIR/psql";          [[ -x "$PSQL" ]] || PSQL="$(command -v psql)" || die "psql not found"
    PG_ISREADY="$PG_BIN_DIR/pg_isready"
    [[ -x "$PG_ISREADY" ]] || PG_ISREADY="$(command -v pg_isready)" || die "pg_isready not found"
}

# ---------------------------------------------------------------- users

# The OS user that owns the data dir and runs the server.
run_user() {
    if [[ "$IS_ROOT" == 1 ]]; then echo postgres; else id -un; fi
}

ensure_pg_user() {
    [[ "$IS_ROOT" == 1 ]] || return 0
    id -u postgres >/dev/null 2>&1 && return 0
    log "creating system user postgres"
    useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home \
        --shell /bin/bash --comment "PostgreSQL administrator" postgres \
        || die "useradd postgres failed"
}

# Run a command as the server's OS user, from a directory it can enter. fd 9 (our lock) is
# closed so the postmaster that pg_ctl spawns does not hold the lock for its whole life.
as_pg() {
    if [[ "$IS_ROOT" == 1 ]]; then
        if command -v runuser >/dev/null 2>&1; then
            (cd / && runuser -u postgres -- "$@" 9>&-)
        else
            (cd / && su -s /bin/sh postgres -c "$(printf '%q ' "$@")" 9>&-)
        fi
    else
        (cd / && "$@" 9>&-)
    fi
}

# ---------------------------------------------------------------- helpers

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/$PG_HOST/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    die "could not find a free port; set PG_PORT"
}

# Load PG_DATA_DIR etc. of the previous start (if any) without clobbering our settings.
load_previous() {
    OLD_DATA_DIR="" OLD_RUN_DIR="" OLD_PORT=""
    [[ -f "$ENV_FILE" ]] || return 0
    OLD_DATA_DIR="$(sed -n 's/^export PG_DATA_DIR=//p' "$ENV_FILE" | head -n1)"
    OLD_RUN_DIR="$(sed -n 's/^export PG_RUN_DIR=//p' "$ENV_FILE" | head -n1)"
    OLD_PORT="$(sed -n 's/^export PG_PORT=//p' "$ENV_FILE" | head -n1)"
    # Values are written with printf %q; eval undoes the quoting.
    [[ -n "$OLD_DATA_DIR" ]] && eval "OLD_DATA_DIR=$OLD_DATA_DIR"
    [[ -n "$OLD_RUN_DIR" ]] && eval "OLD_RUN_DIR=$OLD_RUN_DIR"
    return 0
}

# True if pid $1 exists and is not a zombie (pid 1 here may reap exited children late).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local st
    st="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 0
    [[ "$st" != Z ]]
}

url() { echo "postgresql://$PG_USER:$PG_PASSWORD@$PG_HOST:$1/$PG_DB"; }

# True if a postmaster is running on data dir $1.
pg_running() {
    local data="$1"
    [[ -n "$data" && -f "$data/postmaster.pid" ]] || return 1
    local pid
    pid="$(head -n1 "$data/postmaster.pid" 2>/dev/null | tr -dc '0-9')"
    [[ -n "$pid" ]] && alive "$pid" || return 1
    # Guard against a reused pid (e.g. after a reboot left a stale postmaster.pid).
    [[ -r "/proc/$pid/comm" ]] || return 0
    [[ "$(cat "/proc/$pid/comm")" == postgres* ]]
}

# Stop the server on data dir $1 (fast, then immediate). Returns 1 only if it survives.
stop_datadir() {
    local data="$1"
    pg_running "$data" || return 0
    as_pg "$PG_CTL" -D "$data" stop -m fast -w -t 30 >/dev/null 2>&1 && return 0
    pg_running "$data" || return 0
    log "fast shutdown did not finish in 30 s; trying immediate"
    as_pg "$PG_CTL" -D "$data" stop -m immediate -w -t 15 >/dev/null 2>&1 || true
    ! pg_running "$data"
}

# Remove a runtime dir we created earlier (only paths we own by construction).
wipe_run_dir() {
    local dir="$1"
    [[ -n "$dir" ]] || return 0
    case "$dir" in
        "$PG_STATE_DIR"/run | /tmp/ido-pg-[0-9]*) rm -rf -- "$dir" ;;
        *) log "not removing unexpected runtime dir $dir" ;;
    esac
}

fail_start() {
    local reason="$1"
    if [[ -n "${PG_LOG_FILE:-}" && -f "$PG_LOG_FILE" ]]; then
        echo "----- last 50 lines of $PG_LOG_FILE -----" >&2
        tail -n 50 "$PG_LOG_FILE" >&2 || true
        echo "-----" >&2
    fi
    die "$reason"
}

write_env() {
    local port="$1" tmp="$ENV_FILE.tmp"
    {
        printf 'export PG_PORT=%q\n' "$port"
        printf 'export PG_HOST=%q\n' "$PG_HOST"
        printf 'export PG_STATE_DIR=%q\n' "$PG_STATE_DIR"
        printf 'export PG_RUN_DIR=%q\n' "$PG_RUN_DIR"
        printf 'export PG_DATA_DIR=%q\n' "$PG_DATA_DIR"
        printf 'export PG_SOCKET_DIR=%q\n' "$PG_RUN_DIR"
        printf 'export PG_LOG_FILE=%q\n' "$PG_LOG_FILE"
        printf 'export PG_BIN_DIR=%q\n' "$PG_BIN_DIR"
        printf 'export POSTGRES_URL=%q\n' "$(url "$port")"
        printf 'export POSTGRES_HOST=%q\n' "$PG_HOST"
        printf 'export POSTGRES_PORT=%q\n' "$port"
        printf 'export POSTGRES_USER=%q\n' "$PG_USER"
        printf 'export POSTGRES_PASSWORD=%q\n' "$PG_PASSWORD"
        printf 'export POSTGRES_DBNAME=%q\n' "$PG_DB"
    } >"$tmp"
    mv -f "$tmp" "$ENV_FILE"
    echo "$port" >"$PORT_FILE"
}

# ---------------------------------------------------------------- commands

cmd_start() {
    mkdir -p "$PG_STATE_DIR"
    PG_STATE_DIR="$(cd "$PG_STATE_DIR" && pwd)"
    ENV_FILE="$PG_STATE_DIR/env"; PORT_FILE="$PG_STATE_DIR/port"
    if [[ "$PG_STATE_DIR" == "$REPO_DIR/var/"* && ! -e "$REPO_DIR/var/.gitignore" ]]; then
        echo '*' >"$REPO_DIR/var/.gitignore"
    fi

    ensure_binaries
    ensure_pg_user

    # Throw-away semantics: stop whatever an earlier start left running, then wipe it.
    load_previous
    if [[ -n "$OLD_DATA_DIR" ]] && pg_running "$OLD_DATA_DIR"; then
        log "stopping server left from a previous start (port ${OLD_PORT:-?})"
        stop_datadir "$OLD_DATA_DIR" || die "could not stop the old server on $OLD_DATA_DIR"
    fi
    wipe_run_dir "$OLD_RUN_DIR"
    wipe_run_dir "$PG_STATE_DIR/run"
    rm -f "$ENV_FILE" "$PORT_FILE"

    local port="${PG_PORT:-}"
    [[ -n "$port" ]] || port="$(free_port)"
    [[ "$port" =~ ^[0-9]+$ ]] || die "PG_PORT must be a number, got '$port'"
    if (exec 3<>"/dev/tcp/$PG_HOST/$port") 2>/dev/null; then
        die "port $PG_HOST:$port is already in use; set PG_PORT to another port or unset it"
    fi

    # Where the server's files live: inside the state dir if the server user can reach it
    # and the unix socket path stays below the 107-byte limit; else /tmp/ido-pg-<port>.
    PG_RUN_DIR="$PG_STATE_DIR/run"
    local sock_len=$(( ${#PG_RUN_DIR} + ${#port} + 10 ))
    if ! as_pg test -x "$PG_STATE_DIR" || (( sock_len > 100 )); then
        PG_RUN_DIR="/tmp/ido-pg-$port"
        log "$(run_user) cannot use $PG_STATE_DIR (permissions or socket path length); using $PG_RUN_DIR"
    fi
    wipe_run_dir "$PG_RUN_DIR"
    mkdir -p "$PG_RUN_DIR"
    chmod 755 "$PG_RUN_DIR"   # data/ itself is 0700 (initdb); the socket stays reachable
    [[ "$IS_ROOT" == 1 ]] && chown postgres: "$PG_RUN_DIR"
    PG_DATA_DIR="$PG_RUN_DIR/data"
    PG_LOG_FILE="$PG_RUN_DIR/postgres.log"

    local start=$SECONDS out
    if ! out="$(as_pg "$INITDB" -D "$PG_DATA_DIR" -U "$PG_SUPERUSER" --auth=trust \
            --encoding=UTF8 --locale=C --no-sync 2>&1)"; then
        echo "$out" >&2
        die "initdb failed for $PG_DATA_DIR"
    fi
    as_pg tee -a "$PG_DATA_DIR/postgresql.conf" >/dev/null <<EOF

# ---- scripts/postgres.sh: throw-away test/benchmark server ----
listen_addresses = '$PG_HOST'
port = $port
unix_socket_directories = '$PG_RUN_DIR'
max_connections = 200
fsync = off
full_page_writes = off
synchronous_commit = off
logging_collector = off
log_min_messages = warning
EOF

    if ! as_pg "$PG_CTL" -D "$PG_DATA_DIR" -l "$PG_LOG_FILE" -w -t "$PG_START_TIMEOUT" start >/dev/null 2>&1; then
        stop_datadir "$PG_DATA_DIR" || true
        fail_start "server did not start on $PG_HOST:$port within ${PG_START_TIMEOUT} s (pg_ctl start failed)"
    fi

    local deadline=$((start + PG_START_TIMEOUT))
    until "$PG_ISREADY" -q -h "$PG_HOST" -p "$port" -d postgres -t 2; do
        if ! pg_running "$PG_DATA_DIR"; then
            fail_start "server exited during startup"
        fi
        if ((SECONDS >= deadline)); then
            stop_datadir "$PG_DATA_DIR" || true
            fail_start "pg_isready did not answer on $PG_HOST:$port within ${PG_START_TIMEOUT} s"
        fi
        sleep 0.2
    done

    if ! out="$("$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$PG_RUN_DIR" -p "$port" -U "$PG_SUPERUSER" -d postgres \
            -c "CREATE ROLE $PG_USER LOGIN SUPERUSER PASSWORD '$PG_PASSWORD'" \
            -c "CREATE DATABASE $PG_DB OWNER $PG_USER" 2>&1)"; then
        echo "$out" >&2
        stop_datadir "$PG_DATA_DIR" || true
        fail_start "could not create role/database $PG_USER/$PG_DB"
    fi

    write_env "$port"
    log "started on $PG_HOST:$port in $((SECONDS - start)) s (data $PG_DATA_DIR, log $PG_LOG_FILE)"
    echo "POSTGRES_URL=$(url "$port")"
}

cmd_stop() {
    load_previous
    local data="$OLD_DATA_DIR"
    [[ -n "$data" ]] || data="$PG_STATE_DIR/run/data"
    if ! pg_running "$data"; then
        log "not running"
        return 0
    fi
    ensure_binaries
    if stop_datadir "$data"; then
        log "stopped (port ${OLD_PORT:-?})"
    else
        die "server on $data did not stop"
    fi
}

cmd_status() {
    load_previous
    local data="$OLD_DATA_DIR"
    [[ -n "$data" ]] || data="$PG_STATE_DIR/run/data"
    if pg_running "$data"; then
        log "running on $PG_HOST:${OLD_PORT:-?} (data $data)"
        [[ -n "$OLD_PORT" ]] && echo "POSTGRES_URL=$(url "$OLD_PORT")"
        return 0
    fi
    log "not running"
    return 3
}

# Serialise start/stop on one state dir (parallel test workers, CI retries).
take_lock() {
    mkdir -p "$PG_STATE_DIR"
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>"$PG_STATE_DIR/.lock"
    flock -w $((PG_START_TIMEOUT + 60)) 9 || die "timed out waiting for the lock on $PG_STATE_DIR"
}

case "${1:-}" in
    start) take_lock; cmd_start ;;
    stop) take_lock; cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 start | stop | status" >&2
        exit 2
        ;;
esac
