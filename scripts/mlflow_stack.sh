#!/usr/bin/env bash
# layerlab's team tracking stack on this machine: a private PostgreSQL cluster
# as MLflow's backend store, and an MLflow tracking server in front of it that
# also serves the artifacts. Everything listens on 127.0.0.1 only.
#
#   scripts/mlflow_stack.sh start    install what is missing, start PostgreSQL, then MLflow; wait for /health
#   scripts/mlflow_stack.sh start --auth   the same, MLflow behind its basic-auth app (users, passwords, permissions)
#   scripts/mlflow_stack.sh adduser NAME   (--auth server) create user NAME with a generated password; prints its file
#   scripts/mlflow_stack.sh stop     stop MLflow, then PostgreSQL (fast shutdown: running transactions roll back)
#   scripts/mlflow_stack.sh status   what runs where; exit 0 when both run and MLflow is healthy, 3 otherwise
#   scripts/mlflow_stack.sh uri      print the tracking URI (for MLFLOW_TRACKING_URI or tracking.uri)
#
# Then: MLFLOW_TRACKING_URI=$(scripts/mlflow_stack.sh uri) python runner.py tracking=server ...
#
# State lives in .services/ (git-ignored): postgres/ (data folder and server log, owned by the
# database's OS user), pgpass and pg_*password (0600: the only places the passwords are kept),
# mlflow.log, mlflow.pid, mlartifacts/ (the artifact store the server writes to).
# With --auth also (all 0600): mlflow_admin_password (user `admin`), mlflow_secret_key (Flask's),
# mlflow_auth.ini (MLFLOW_AUTH_CONFIG_PATH: no password in it), mlflow_auth.db (users, password hashes,
# permissions), users/NAME.password (one per `adduser`), mlflow.auth (marks the running server as --auth).
# Passwords and the key reach the server through its environment, never its command line.
#
# Environment (all optional):
#   LAYERLAB_PG_PASSWORD           password of the database role `mlflow` (default: generated once, kept
#                                  in .services/pg_password); changing it takes effect at the next start
#   LAYERLAB_PG_PORT               PostgreSQL port (default: 55432, or the next free one; remembered)
#   LAYERLAB_MLFLOW_PORT           MLflow server port (default 5005)
#   LAYERLAB_MLFLOW_WORKERS        uvicorn workers of the MLflow server (default 2)
#   LAYERLAB_MLFLOW_START_TIMEOUT  seconds to wait for MLflow's /health (default 120)
#   LAYERLAB_SERVICES_DIR          state folder (default <project>/.services); tests use a temporary one
#   LAYERLAB_VENV                  virtualenv with mlflow (default <project>/.venv)
#   LAYERLAB_PG_BIN                folder of initdb/pg_ctl/psql (default: newest /usr/lib/postgresql/*/bin)
#   LAYERLAB_MLFLOW_AUTH           1: as `start --auth`
#   LAYERLAB_MLFLOW_DEFAULT_PERMISSION  (--auth) what a user may do with experiments that others created:
#                                  READ (default: read, not write), NO_PERMISSIONS, EDIT or MANAGE
#   LAYERLAB_MLFLOW_AUTH_CACHE_S   (--auth) seconds a server worker remembers a checked login (default 60;
#                                  0: check the password hash on every request). A changed password or a
#                                  deleted user may still work on another worker for this long.
#
# Exit status: 0 done, 1 failed (the message says why, with the log's tail), 2 usage, 3 `status`: not all
# up, 4 a prerequisite is missing and cannot be installed here (no PostgreSQL and not root, apt-get or pip
# failed, no virtualenv).
#
# As root, the cluster is owned by (and run as) the `postgres` OS user, so the state folder's parents
# must be traversable by that user; as any other user, the cluster runs as that user.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES="${LAYERLAB_SERVICES_DIR:-$ROOT/.services}"
VENV="${LAYERLAB_VENV:-$ROOT/.venv}"
HOST=127.0.0.1
MLFLOW_PORT="${LAYERLAB_MLFLOW_PORT:-5005}"
PG_PORT_DEFAULT=55432
START_TIMEOUT="${LAYERLAB_MLFLOW_START_TIMEOUT:-120}"
WORKERS="${LAYERLAB_MLFLOW_WORKERS:-2}"
DB_OS_USER=postgres          # only used when running as root
DB_NAME=mlflow
DB_ROLE=mlflow

PGDIR="$SERVICES/postgres"
PGDATA="$PGDIR/data"
PGLOG="$PGDIR/postgres.log"
PGPASS="$SERVICES/pgpass"
PW_FILE="$SERVICES/pg_password"
SU_PW_FILE="$SERVICES/pg_superuser_password"
PORT_FILE="$SERVICES/pg_port"
MLFLOW_LOG="$SERVICES/mlflow.log"
MLFLOW_PID="$SERVICES/mlflow.pid"
ARTIFACTS="$SERVICES/mlartifacts"
AUTH_MARK="$SERVICES/mlflow.auth"
AUTH_INI="$SERVICES/mlflow_auth.ini"
AUTH_DB="$SERVICES/mlflow_auth.db"
ADMIN_USER=admin
ADMIN_PW_FILE="$SERVICES/mlflow_admin_password"
SECRET_KEY_FILE="$SERVICES/mlflow_secret_key"
USERS_DIR="$SERVICES/users"
AUTH="${LAYERLAB_MLFLOW_AUTH:-0}"
DEFAULT_PERMISSION="${LAYERLAB_MLFLOW_DEFAULT_PERMISSION:-READ}"
# Checking a password costs the server a deliberately slow hash on every request (a median 0.8-1.0 s per
# request without the cache, 0.3-0.5 s with it, at a load average of about 20 on 2 cores: README, Scaling
# out); a worker may remember a good login this long instead.
AUTH_CACHE_S="${LAYERLAB_MLFLOW_AUTH_CACHE_S:-60}"

say() { printf 'mlflow_stack: %s\n' "$*"; }
die() { printf 'mlflow_stack: error: %s\n' "$*" >&2; exit 1; }
missing() { printf 'mlflow_stack: missing: %s\n' "$*" >&2; exit 4; }  # a prerequisite this machine cannot get

tail_log() {  # tail_log FILE: the end of a log, indented, on stderr
    if [[ -r "$1" ]]; then
        printf -- '--- last lines of %s ---\n' "$1" >&2
        tail -n "${2:-30}" "$1" | sed 's/^/  /' >&2
        printf -- '---\n' >&2
    fi
}

is_root() { [[ "$(id -u)" == 0 ]]; }

as_db_user() {  # run a command as the owner of the cluster
    if is_root; then
        runuser -u "$DB_OS_USER" -- "$@"
    else
        "$@"
    fi
}

valid_port() { [[ "$1" =~ ^[0-9]+$ ]] && (( $1 > 0 && $1 < 65536 )); }

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") >/dev/null 2>&1; }

random_password() { od -An -tx1 -N24 /dev/urandom | tr -d ' \n'; }

write_secret() {  # write_secret FILE VALUE: 0600, never echoed
    (umask 077; printf '%s\n' "$2" >"$1.tmp") && mv -f "$1.tmp" "$1"
}

find_pg_bin() {
    if [[ -n "${LAYERLAB_PG_BIN:-}" ]]; then
        [[ -x "$LAYERLAB_PG_BIN/initdb" ]] || die "LAYERLAB_PG_BIN=$LAYERLAB_PG_BIN has no initdb"
        printf '%s\n' "$LAYERLAB_PG_BIN"
        return
    fi
    local d
    d="$(printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V | tail -n 1 || true)"
    [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/psql" ]] && printf '%s\n' "$d"
    return 0
}

# ----------------------------------------------------------------- install
ensure_postgres_installed() {
    PGBIN="$(find_pg_bin)"
    [[ -n "$PGBIN" ]] && return
    is_root || missing "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); as root run: apt-get install -y postgresql"
    command -v apt-get >/dev/null || missing "PostgreSQL is not installed and there is no apt-get; install PostgreSQL and set LAYERLAB_PG_BIN"
    say "installing PostgreSQL (apt-get install postgresql)..."
    # Do not let the package create and start a system-wide cluster on port 5432: we run our own.
    if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
        mkdir -p /etc/postgresql-common
        printf 'create_main_cluster = false\n' >/etc/postgresql-common/createcluster.conf
    fi
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
               -o Dpkg::Options::=--force-confold postgresql)
    if ! "${apt[@]}" >"$SERVICES/apt.log" 2>&1; then
        apt-get update -qq >>"$SERVICES/apt.log" 2>&1 || true
        "${apt[@]}" >>"$SERVICES/apt.log" 2>&1 || { tail_log "$SERVICES/apt.log"; missing "apt-get install postgresql failed (log: $SERVICES/apt.log)"; }
    fi
    PGBIN="$(find_pg_bin)"
    [[ -n "$PGBIN" ]] || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb found"
}

ensure_psycopg2() {
    "$VENV/bin/python" -c '' >/dev/null 2>&1 \
        || missing "no usable virtualenv at $VENV for user $(id -un) (run \`make install\` first, or set LAYERLAB_VENV)"
    [[ -x "$VENV/bin/mlflow" ]] || missing "$VENV has no mlflow (run \`make install\`)"
    if ! "$VENV/bin/python" -c 'import psycopg2' >/dev/null 2>&1; then
        say "installing psycopg2-binary into $VENV (pip install -e '.[postgres]')..."
        "$VENV/bin/python" -m pip install --quiet -e "${ROOT}[postgres]" >"$SERVICES/pip.log" 2>&1 \
            || { tail_log "$SERVICES/pip.log"; missing "could not install the postgres extra (psycopg2-binary) into $VENV (log: $SERVICES/pip.log)"; }
        "$VENV/bin/python" -c 'import psycopg2' >/dev/null 2>&1 || missing "psycopg2 still not importable in $VENV"
    fi
}

ensure_auth_extra() {  # MLflow's basic-auth app needs Flask-WTF (mlflow[auth], in the postgres extra)
    if ! "$VENV/bin/python" -c 'import flask_wtf' >/dev/null 2>&1; then
        say "installing mlflow[auth] into $VENV (pip install -e '.[postgres]')..."
        "$VENV/bin/python" -m pip install --quiet -e "${ROOT}[postgres]" >"$SERVICES/pip.log" 2>&1 \
            || { tail_log "$SERVICES/pip.log"; missing "could not install mlflow[auth] into $VENV (log: $SERVICES/pip.log)"; }
        "$VENV/bin/python" -c 'import flask_wtf' >/dev/null 2>&1 || missing "flask_wtf still not importable in $VENV"
    fi
}

# ---------------------------------------------------------------- postgres
pg_running() { [[ -f "$PGDATA/PG_VERSION" ]] && as_db_user "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

running_pg_port() { sed -n 4p "$PGDATA/postmaster.pid" 2>/dev/null || true; }

choose_pg_port() {
    if pg_running; then
        PG_PORT="$(running_pg_port)"
    elif [[ -n "${LAYERLAB_PG_PORT:-}" ]]; then
        PG_PORT="$LAYERLAB_PG_PORT"
    elif [[ -s "$PORT_FILE" ]]; then
        PG_PORT="$(cat "$PORT_FILE")"
    else
        PG_PORT=""
        local p
        for ((p = PG_PORT_DEFAULT; p < PG_PORT_DEFAULT + 100; p++)); do
            port_in_use "$p" || { PG_PORT="$p"; break; }
        done
        [[ -n "$PG_PORT" ]] || die "no free port in $PG_PORT_DEFAULT-$((PG_PORT_DEFAULT + 99)); set LAYERLAB_PG_PORT"
    fi
    valid_port "$PG_PORT" || die "invalid PostgreSQL port '$PG_PORT' (LAYERLAB_PG_PORT or $PORT_FILE)"
    printf '%s\n' "$PG_PORT" >"$PORT_FILE"
}

pgpass_escape() { local s="${1//\\/\\\\}"; printf '%s' "${s//:/\\:}"; }

write_pgpass() {  # libpq reads the passwords from here: none on a command line, in a URI or in a log
    local su_pw pw
    su_pw="$(cat "$SU_PW_FILE")"
    pw="$(cat "$PW_FILE")"
    (umask 077
     printf '%s:*:*:postgres:%s\n' "$HOST" "$(pgpass_escape "$su_pw")" >"$PGPASS.tmp"
     printf '%s:*:%s:%s:%s\n' "$HOST" "$DB_NAME" "$DB_ROLE" "$(pgpass_escape "$pw")" >>"$PGPASS.tmp")
    mv -f "$PGPASS.tmp" "$PGPASS"
}

init_cluster() {
    [[ -f "$PGDATA/PG_VERSION" ]] && return
    say "initialising a private PostgreSQL cluster in $PGDATA"
    mkdir -p "$PGDIR"
    chmod 700 "$PGDIR"
    if is_root; then
        id "$DB_OS_USER" >/dev/null 2>&1 || die "no '$DB_OS_USER' OS user to own the cluster (it comes with the postgresql package)"
        chmod 711 "$SERVICES"   # the database user must traverse it, not read it
        chown "$DB_OS_USER:" "$PGDIR"
        as_db_user test -w "$PGDIR" || die "the '$DB_OS_USER' user cannot reach $PGDIR (a parent folder is not traversable by it); set LAYERLAB_SERVICES_DIR to a folder it can reach, e.g. under /srv"
    fi
    [[ -s "$SU_PW_FILE" ]] || write_secret "$SU_PW_FILE" "$(random_password)"
    local pwfile="$PGDIR/.initdb-pw"
    (umask 077; cat "$SU_PW_FILE" >"$pwfile")
    is_root && chown "$DB_OS_USER:" "$pwfile"
    if ! as_db_user "$PGBIN/initdb" -D "$PGDATA" -U postgres --pwfile="$pwfile" --auth-local=scram-sha-256 \
            --auth-host=scram-sha-256 --encoding=UTF8 --locale=C >"$SERVICES/initdb.log" 2>&1; then
        rm -f "$pwfile"
        tail_log "$SERVICES/initdb.log"
        die "initdb failed"
    fi
    rm -f "$pwfile"
    # TCP on 127.0.0.1 only; no Unix socket (its path could be too long, and it is not needed).
    as_db_user tee -a "$PGDATA/postgresql.conf" >/dev/null <<'CONF'

# --- layerlab (scripts/mlflow_stack.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 50
shared_buffers = 64MB
CONF
}

start_postgres() {
    if pg_running; then
        say "PostgreSQL already running on $HOST:$PG_PORT"
        return
    fi
    if port_in_use "$PG_PORT"; then
        die "port $PG_PORT is taken by another program; set LAYERLAB_PG_PORT to a free port"
    fi
    say "starting PostgreSQL on $HOST:$PG_PORT"
    if ! as_db_user "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGLOG" -w -t 60 -o "-p $PG_PORT" start >/dev/null 2>&1 9>&-; then
        tail_log "$PGLOG"
        die "PostgreSQL did not start (log: $PGLOG)"
    fi
}

psql_su() {
    PGPASSFILE="$PGPASS" PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 \
        -h "$HOST" -p "$PG_PORT" -U postgres -d postgres "$@"
}

ensure_role_and_db() {
    local pw
    if [[ -n "${LAYERLAB_PG_PASSWORD:-}" ]]; then
        pw="$LAYERLAB_PG_PASSWORD"
        [[ -s "$PW_FILE" && "$(cat "$PW_FILE")" == "$pw" ]] || write_secret "$PW_FILE" "$pw"
    elif [[ -s "$PW_FILE" ]]; then
        pw="$(cat "$PW_FILE")"
    else
        pw="$(random_password)"
        write_secret "$PW_FILE" "$pw"
    fi
    write_pgpass
    # Through stdin, with statement logging off for this session: the password reaches no log and no `ps`.
    local sql_pw="${pw//\'/\'\'}"
    psql_su -f - >/dev/null <<SQL || die "could not create the database role '$DB_ROLE' (see $PGLOG)"
SET log_min_error_statement = panic;
SET log_statement = 'none';
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_ROLE') THEN CREATE ROLE $DB_ROLE LOGIN; END IF;
END \$\$;
ALTER ROLE $DB_ROLE WITH LOGIN PASSWORD '$sql_pw';
SQL
    if [[ -z "$(psql_su -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]]; then
        say "creating database '$DB_NAME' owned by '$DB_ROLE'"
        psql_su -c "CREATE DATABASE $DB_NAME OWNER $DB_ROLE" >/dev/null || die "could not create database '$DB_NAME'"
    fi
}

stop_postgres() {
    [[ -f "$PGDATA/PG_VERSION" ]] || { say "PostgreSQL: no cluster in $PGDATA"; return 0; }
    PGBIN="$(find_pg_bin)"
    [[ -n "$PGBIN" ]] || die "cannot stop PostgreSQL: no pg_ctl found (set LAYERLAB_PG_BIN)"
    if pg_running; then
        say "stopping PostgreSQL"
        as_db_user "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null \
            || { tail_log "$PGLOG"; die "PostgreSQL did not stop"; }
    else
        say "PostgreSQL not running"
    fi
}

# ------------------------------------------------------------------ mlflow
alive() {  # alive PID: running and not a zombie (a dead child waits here until init reaps it)
    local state
    state="$(ps -o stat= -p "$1" 2>/dev/null || true)"
    [[ -n "$state" && "$state" != Z* ]]
}

group_alive() {  # group_alive PGID: some live process left in that process group
    ps -eo pgid=,stat= 2>/dev/null | awk -v g="$1" '$1 == g && $2 !~ /^Z/ {found = 1} END {exit !found}'
}

mlflow_pid() {  # the recorded server pid, if that process is still our mlflow server
    local pid
    pid="$(cat "$MLFLOW_PID" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'mlflow' || return 1
    printf '%s\n' "$pid"
}

healthy() {
    local body
    if command -v curl >/dev/null; then
        body="$(curl -fsS --max-time 3 "http://$HOST:$MLFLOW_PORT/health" 2>/dev/null)" || return 1
    else
        body="$("$VENV/bin/python" - "http://$HOST:$MLFLOW_PORT/health" 2>/dev/null <<'PY'
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())
PY
)" || return 1
    fi
    [[ "$body" == *OK* ]]
}

prepare_auth() {  # the secrets (generated once, 0600) and the ini of MLflow's basic-auth app
    case "$DEFAULT_PERMISSION" in
        READ|USE|EDIT|MANAGE|NO_PERMISSIONS) ;;
        *) die "LAYERLAB_MLFLOW_DEFAULT_PERMISSION='$DEFAULT_PERMISSION' is not one of READ, USE, EDIT, MANAGE, NO_PERMISSIONS" ;;
    esac
    [[ "$AUTH_CACHE_S" =~ ^[0-9]+$ ]] || die "LAYERLAB_MLFLOW_AUTH_CACHE_S='$AUTH_CACHE_S' is not a number of seconds"
    [[ -s "$ADMIN_PW_FILE" ]] || write_secret "$ADMIN_PW_FILE" "$(random_password)"
    [[ -s "$SECRET_KEY_FILE" ]] || write_secret "$SECRET_KEY_FILE" "$(random_password)"
    [[ -e "$AUTH_DB" ]] || (umask 077; : >"$AUTH_DB")  # SQLite keeps the mode of an existing (empty) file
    # No password in the ini: the admin's comes from the environment (MLFLOW_AUTH_ADMIN_PASSWORD), and
    # only counts at the first start, when MLflow creates the admin user in the empty user store.
    (umask 077; cat >"$AUTH_INI.tmp" <<INI
[mlflow]
default_permission = $DEFAULT_PERMISSION
database_uri = sqlite:///$AUTH_DB
admin_username = $ADMIN_USER
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = $AUTH_CACHE_S
INI
    ) && mv -f "$AUTH_INI.tmp" "$AUTH_INI"
}

start_mlflow() {
    local pid
    if pid="$(mlflow_pid)"; then
        if [[ "$AUTH" == 1 && ! -e "$AUTH_MARK" ]]; then
            die "the MLflow server (pid $pid) runs without authentication; \`$0 stop\` it first, then \`$0 start --auth\`"
        fi
        if healthy; then
            say "MLflow server already running (pid $pid) at http://$HOST:$MLFLOW_PORT"
            return
        fi
        say "MLflow server (pid $pid) is running but not healthy yet; waiting"
    else
        valid_port "$MLFLOW_PORT" || die "invalid LAYERLAB_MLFLOW_PORT '$MLFLOW_PORT'"
        port_in_use "$MLFLOW_PORT" && die "port $MLFLOW_PORT is taken by another program; stop it or set LAYERLAB_MLFLOW_PORT"
        mkdir -p "$ARTIFACTS"
        local app=()
        rm -f "$AUTH_MARK"
        if [[ "$AUTH" == 1 ]]; then
            prepare_auth
            app=(--app-name basic-auth)
            : >"$AUTH_MARK"
        fi
        say "starting MLflow server on http://$HOST:$MLFLOW_PORT${app:+ with authentication (basic-auth)} (log: $MLFLOW_LOG)"
        printf '\n=== %s start ===\n' "$(date -Is)" >>"$MLFLOW_LOG"
        # Own session (setsid): `stop` ends the server and its uvicorn workers as one process group.
        # No password in the URI: libpq reads it from $PGPASSFILE. The driver is named: SQLAlchemy 2.1
        # maps a bare postgresql:// to psycopg 3, while the `postgres` extra installs psycopg2.
        # With --auth, the admin password and Flask's key go in the environment (not in `ps`).
        (cd "$SERVICES"
         if [[ "$AUTH" == 1 ]]; then
             MLFLOW_AUTH_CONFIG_PATH="$AUTH_INI"
             MLFLOW_AUTH_ADMIN_PASSWORD="$(cat "$ADMIN_PW_FILE")"
             MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat "$SECRET_KEY_FILE")"
             export MLFLOW_AUTH_CONFIG_PATH MLFLOW_AUTH_ADMIN_PASSWORD MLFLOW_FLASK_SERVER_SECRET_KEY
         fi
         PGPASSFILE="$PGPASS" PGCONNECT_TIMEOUT=10 exec setsid "$VENV/bin/mlflow" server "${app[@]}" \
            --backend-store-uri "postgresql+psycopg2://$DB_ROLE@$HOST:$PG_PORT/$DB_NAME" \
            --artifacts-destination "$ARTIFACTS" \
            --host "$HOST" --port "$MLFLOW_PORT" --workers "$WORKERS" \
            </dev/null >>"$MLFLOW_LOG" 2>&1) 9>&- &
        pid=$!
        printf '%s\n' "$pid" >"$MLFLOW_PID"
    fi
    local deadline=$((SECONDS + START_TIMEOUT))
    until healthy; do
        if ! alive "$pid"; then
            rm -f "$MLFLOW_PID"
            tail_log "$MLFLOW_LOG" 40
            die "the MLflow server exited during start-up (log: $MLFLOW_LOG)"
        fi
        if ((SECONDS >= deadline)); then
            tail_log "$MLFLOW_LOG" 40
            die "the MLflow server did not answer GET http://$HOST:$MLFLOW_PORT/health within ${START_TIMEOUT}s (still running as pid $pid; \`$0 stop\` ends it)"
        fi
        sleep 1
    done
    say "MLflow server healthy (pid $pid)"
}

stop_mlflow() {
    local pid
    if ! pid="$(mlflow_pid)"; then
        rm -f "$MLFLOW_PID"
        say "MLflow server not running"
        return 0
    fi
    say "stopping MLflow server (pid $pid)"
    # The server leads its own process group (setsid): TERM reaches it and its uvicorn workers.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 40; i++)); do
        group_alive "$pid" || alive "$pid" || break
        sleep 0.5
    done
    if group_alive "$pid" || alive "$pid"; then
        say "MLflow server did not stop within 20 s; killing its process group"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$MLFLOW_PID" "$AUTH_MARK"
}

add_user() {  # add_user NAME: a user of the --auth server, created by the admin through MLflow's REST API
    local name="$1" pw file
    [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$ ]] \
        || { printf 'mlflow_stack: error: user name %q: use letters, digits and _ . @ - (at most 64)\n' "$name" >&2; exit 2; }
    mlflow_pid >/dev/null && healthy || die "the MLflow server is not running; start it with \`$0 start --auth\`"
    [[ -e "$AUTH_MARK" && -s "$ADMIN_PW_FILE" ]] \
        || die "the MLflow server runs without authentication; \`$0 stop\`, then \`$0 start --auth\`"
    (umask 077; mkdir -p "$USERS_DIR")
    file="$USERS_DIR/$name.password"
    [[ -e "$file" ]] && die "$file exists already: user '$name' was created before (delete the file only if the user is gone)"
    pw="$(random_password)"
    # Every secret through the environment; the REST call is MLflow's own client (AuthServiceClient).
    if ! MLFLOW_TRACKING_USERNAME="$ADMIN_USER" MLFLOW_TRACKING_PASSWORD="$(cat "$ADMIN_PW_FILE")" \
            LAYERLAB_NEW_USER_PASSWORD="$pw" "$VENV/bin/python" -W ignore - "http://$HOST:$MLFLOW_PORT" "$name" <<'PY'
import os
import sys

from mlflow.exceptions import MlflowException
from mlflow.server.auth.client import AuthServiceClient

try:
    AuthServiceClient(sys.argv[1]).create_user(sys.argv[2], os.environ["LAYERLAB_NEW_USER_PASSWORD"])
except MlflowException as exc:
    sys.exit(f"mlflow_stack: error: could not create user {sys.argv[2]!r}: {exc.message}")
PY
    then
        exit 1
    fi
    write_secret "$file" "$pw"
    say "created user '$name'; password in $file (mode 0600). The user sets MLFLOW_TRACKING_USERNAME=$name and MLFLOW_TRACKING_PASSWORD=<that file's content> in the environment"
}

# --------------------------------------------------------------- commands
lock() {  # fd 9 holds the lock: servers started from here get it closed (9>&-), or they would keep it
    mkdir -p "$SERVICES"
    exec 9>"$SERVICES/.lock"
    flock -w 120 9 || die "another mlflow_stack.sh holds $SERVICES/.lock"
}

cmd_start() {
    (umask 077; mkdir -p "$SERVICES")
    lock
    ensure_postgres_installed
    ensure_psycopg2
    [[ "$AUTH" == 1 ]] && ensure_auth_extra
    init_cluster
    choose_pg_port
    start_postgres
    ensure_role_and_db
    start_mlflow
    say "ready: MLFLOW_TRACKING_URI=http://$HOST:$MLFLOW_PORT (backend postgresql on $HOST:$PG_PORT, artifacts in $ARTIFACTS)"
    if [[ -e "$AUTH_MARK" ]]; then
        say "authentication on: admin user '$ADMIN_USER', password in $ADMIN_PW_FILE; add users with \`$0 adduser NAME\`"
    fi
}

cmd_stop() {
    [[ -d "$SERVICES" ]] || { say "nothing to stop ($SERVICES does not exist)"; return 0; }
    lock
    stop_mlflow
    stop_postgres
}

cmd_status() {
    local ok=0 pid
    PGBIN="$(find_pg_bin)"
    if [[ -n "$PGBIN" ]] && pg_running; then
        say "PostgreSQL: running on $HOST:$(running_pg_port) (data $PGDATA)"
    elif [[ -f "$PGDATA/PG_VERSION" ]]; then
        say "PostgreSQL: stopped (data $PGDATA)"; ok=3
    else
        say "PostgreSQL: no cluster yet (run: $0 start)"; ok=3
    fi
    if pid="$(mlflow_pid)"; then
        if healthy; then
            say "MLflow: running (pid $pid), http://$HOST:$MLFLOW_PORT/health OK, artifacts in $ARTIFACTS"
            [[ -e "$AUTH_MARK" ]] && say "MLflow: authentication on (basic-auth; admin password in $ADMIN_PW_FILE)"
        else
            say "MLflow: pid $pid alive but http://$HOST:$MLFLOW_PORT/health does not answer (log: $MLFLOW_LOG)"; ok=3
        fi
    else
        say "MLflow: not running"; ok=3
    fi
    return "$ok"
}

usage() { printf 'usage: %s start [--auth]|stop|status|uri|adduser NAME\n' "$0" >&2; exit 2; }

case "${1:-}" in
    start)
        case "${2:-}" in
            "") ;;
            --auth) AUTH=1 ;;
            *) usage ;;
        esac
        cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    uri) printf 'http://%s:%s\n' "$HOST" "$MLFLOW_PORT" ;;
    adduser) [[ $# == 2 ]] || usage; lock; add_user "$2" ;;
    *) usage ;;
esac
