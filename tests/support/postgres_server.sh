#!/usr/bin/env bash
# A throw-away PostgreSQL 15 cluster on loopback for lakerun's tests.
#
# Usage:
#   postgres_server.sh start DIR [--watch-pid PID]
#       Creates a cluster under DIR (data/, sockets in run/, logs in log/), starts it on 127.0.0.1 on a
#       free port with scram-sha-256 password authentication (TCP and socket alike), a superuser
#       `postgres` with a password generated for this run, and a database `lakerun`. Writes DIR/env
#       (mode 600) and prints the same lines on stdout:
#           PGHOST=127.0.0.1
#           PGPORT=PORT
#           PGUSER=postgres
#           PGPASSWORD=...
#           PGDATABASE=lakerun
#       Progress goes to stderr. DIR must be absent, empty, or a DIR of this script (a server that is
#       already up there is reused). As root, the server binaries run as the `postgres` user (initdb
#       refuses root) and DIR is made searchable (mode 711) for it. On failure: what was started is
#       stopped, the tail of the server log is printed on stderr, DIR is kept for inspection, exit
#       status non-zero.
#       --watch-pid PID: also stop the server (and remove DIR) as soon as process PID is gone.
#   postgres_server.sh stop DIR
#       Stops the server by its PID (fast shutdown, then KILL after a bounded wait) and removes DIR.
#       A no-op when DIR does not exist.
#
# The binaries (initdb, pg_ctl, postgres, psql) are taken from PATH when that is PostgreSQL 15, else
# from /usr/lib/postgresql/15/bin. Tunables (environment): POSTGRES_SERVER_START_TIMEOUT (seconds,
# default 60), POSTGRES_SERVER_PORT (default: a free port).
set -euo pipefail
# Everything the PostgreSQL tools read is passed explicitly; a caller's PG* settings must not leak in.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^PG' || true)

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/$(basename "${BASH_SOURCE[0]}")"
readonly SELF
# shellcheck source=service.sh
source "$(dirname "$SELF")/service.sh"
readonly MARKER=".lakerun-postgres-server"
readonly PG_MAJOR=15
readonly PG_USER="postgres"
readonly DATABASE="lakerun"
readonly START_TIMEOUT="${POSTGRES_SERVER_START_TIMEOUT:-60}"
readonly NOT_FOUND="PostgreSQL $PG_MAJOR server not found: apt-get install postgresql-$PG_MAJOR"
# The server's user may not be allowed into the caller's working folder.
readonly SERVICE_WORKDIR="/"

# ---------------------------------------------------------------------------------------------------
# helpers

# The watchdog first (unless that is us), then the postmaster: SIGINT is PostgreSQL's fast shutdown
# (backends are told to exit, no waiting for clients); the cluster is thrown away, so KILL after a
# bounded wait is fine too: the backends notice the postmaster's death and exit on their own.
stop_all() {
  stop_recorded 5 watch
  stop_recorded "${1:-10}" postgres:INT
}

server_alive() {
  daemon_alive postgres
}

show_tail() { # show_tail [logs]: the server's log tails, when asked for
  local f
  [[ "${1:-}" == logs ]] || return 0
  for f in "$DIR/log/postgres.log" "$DIR/log/setup.out"; do
    if [[ -s "$f" ]]; then
      printf '\n----- last lines of %s -----\n' "$f" >&2
      tail -n 30 "$f" >&2 || true
    fi
  done
}

# Runs a server binary as the `postgres` user when we are root (initdb and postgres refuse root).
as_pg() {
  if ((EUID == 0)); then
    runuser -u "$PG_USER" -- "$@"
  else
    "$@"
  fi
}

is_pg15_dir() { # does folder $1 hold a PostgreSQL 15 initdb, pg_ctl and postgres?
  local d="$1" b
  for b in initdb pg_ctl postgres; do
    [[ -x "$d/$b" ]] || return 1
  done
  [[ "$("$d/postgres" --version 2>/dev/null)" =~ \(PostgreSQL\)\ $PG_MAJOR\. ]]
}

find_binaries() {
  local on_path
  PGBIN=""
  on_path="$(command -v pg_ctl 2>/dev/null || true)"
  if [[ -n "$on_path" ]]; then
    on_path="$(dirname "$(readlink -f "$on_path")")"
    if is_pg15_dir "$on_path"; then PGBIN="$on_path"; fi
  fi
  if [[ -z "$PGBIN" ]] && is_pg15_dir "/usr/lib/postgresql/$PG_MAJOR/bin"; then
    PGBIN="/usr/lib/postgresql/$PG_MAJOR/bin"
  fi
  [[ -n "$PGBIN" ]] || die "$NOT_FOUND"
  if [[ -x "$PGBIN/psql" ]]; then
    PSQL="$PGBIN/psql"
  else
    PSQL="$(command -v psql 2>/dev/null)" || die "psql not found: apt-get install postgresql-client-$PG_MAJOR"
  fi
  if ((EUID == 0)); then
    command -v runuser >/dev/null 2>&1 || die "running as root needs runuser (util-linux) to run PostgreSQL as $PG_USER"
    id -u "$PG_USER" >/dev/null 2>&1 ||
      die "running as root needs a '$PG_USER' user to run PostgreSQL as (initdb refuses root): apt-get install postgresql-$PG_MAJOR"
  fi
}

# ---------------------------------------------------------------------------------------------------
# start

service_cleanup() {
  rm -f "${PWFILE:-}" 2>/dev/null || true
}

# Makes DIR's layout: DIR itself stays the caller's (env holds the password, mode 600); data/, run/
# (sockets) and log/ belong to the server's user.
make_layout() {
  mkdir -p "$DIR"/{pids,data,run,log}
  chmod 700 "$DIR/data" "$DIR/run"
  if ((EUID == 0)); then
    chmod 711 "$DIR"
    chown "$PG_USER:" "$DIR/data" "$DIR/run" "$DIR/log"
    as_pg test -w "$DIR/data" ||
      die "user $PG_USER cannot reach $DIR/data: a parent folder of $DIR is not searchable by others (use a DIR under /tmp)"
  fi
  # A socket path is limited to 107 bytes: DIR/run/.s.PGSQL.PORT must fit.
  ((${#DIR} <= 80)) || die "DIR is too long for a Unix socket path (${#DIR} > 80 characters): $DIR"
}

init_cluster() {
  PWFILE="$DIR/pwfile"
  (umask 077 && printf '%s\n' "$PASSWORD" >"$PWFILE")
  if ((EUID == 0)); then chown "$PG_USER:" "$PWFILE"; fi
  as_pg "$PGBIN/initdb" -D "$DIR/data" -U "$PG_USER" --pwfile="$PWFILE" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C --no-sync --no-instructions >>"$DIR/log/setup.out" 2>&1 ||
    die "initdb failed" logs
  rm -f "$PWFILE"
  # Everything that is not the port (passed on the command line, so a retry can change it).
  cat >>"$DIR/data/postgresql.conf" <<EOF

# --- lakerun test cluster (tests/support/postgres_server.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR/run'
password_encryption = scram-sha-256
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 100
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  cat >"$DIR/data/pg_hba.conf" <<'EOF'
# lakerun test cluster: a password for everyone, over the socket and over loopback TCP.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
EOF
}

start_server() {
  local attempt left
  for attempt in 1 2 3; do
    if ((attempt == 1)) && [[ -n "${POSTGRES_SERVER_PORT:-}" ]]; then
      PORT="$POSTGRES_SERVER_PORT"
    else
      PORT="$(free_port)" || die "no free port for PostgreSQL"
    fi
    left=$((DEADLINE - $(now)))
    ((left > 0)) || die "no time left to start PostgreSQL" logs
    # pg_ctl detaches the postmaster (own session, stdio on the log file) and -w waits until it
    # accepts connections, or reports its early death.
    if as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/log/postgres.log" -o "-p $PORT" -w -t "$left" -s \
      start >>"$DIR/log/setup.out" 2>&1; then
      head -n 1 "$DIR/data/postmaster.pid" >"$DIR/pids/postgres.pid"
      log "PostgreSQL up on 127.0.0.1:$PORT (pid $(pid_of postgres))"
      return 0
    fi
    if [[ -s "$DIR/data/postmaster.pid" ]]; then # pg_ctl gave up waiting on a live server
      head -n 1 "$DIR/data/postmaster.pid" >"$DIR/pids/postgres.pid"
    fi
    if grep -qs 'could not bind\|Address already in use' "$DIR/log/postgres.log"; then
      log "port $PORT taken; trying another"
      stop_all 5
      mv "$DIR/log/postgres.log" "$DIR/log/postgres.attempt$attempt.log"
      continue
    fi
    die "PostgreSQL did not start" logs
  done
  die "PostgreSQL could not bind a port" logs
}

create_database() {
  PGPASSWORD="$PASSWORD" PGCONNECT_TIMEOUT=10 "$PSQL" -X -q -h 127.0.0.1 -p "$PORT" -U "$PG_USER" \
    -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE $DATABASE" >>"$DIR/log/setup.out" 2>&1 ||
    die "CREATE DATABASE $DATABASE over TCP with the password failed" logs
}

cmd_start() {
  local t0
  t0=$(now)
  DEADLINE=$((t0 + START_TIMEOUT))
  find_binaries

  claim_dir
  if ((REUSED)); then return 0; fi
  make_layout
  PASSWORD="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  PORT=0

  start_watchdog
  init_cluster
  start_server
  create_database

  (
    umask 077
    {
      echo "PGHOST=127.0.0.1"
      echo "PGPORT=$PORT"
      echo "PGUSER=$PG_USER"
      echo "PGPASSWORD=$PASSWORD"
      echo "PGDATABASE=$DATABASE"
    } >"$DIR/env.tmp"
  )
  mv "$DIR/env.tmp" "$DIR/env"
  STARTED=1
  log "PostgreSQL ready at 127.0.0.1:$PORT (database $DATABASE) in $(($(now) - t0)) s"
  cat "$DIR/env"
}

service_main "$@"
