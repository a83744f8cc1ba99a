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
readonly MARKER=".lakerun-postgres-server"
readonly PG_MAJOR=15
readonly PG_USER="postgres"
readonly DATABASE="lakerun"
readonly START_TIMEOUT="${POSTGRES_SERVER_START_TIMEOUT:-60}"
readonly NOT_FOUND="PostgreSQL $PG_MAJOR server not found: apt-get install postgresql-$PG_MAJOR"

log() { printf '[postgres_server %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF" >&2
  exit 2
}

# ---------------------------------------------------------------------------------------------------
# helpers

now() { date +%s; }

abs_dir() { # make DIR absolute without requiring it to exist
  case "$1" in
    /*) printf '%s\n' "${1%/}" ;;
    *) printf '%s/%s\n' "$(pwd -P)" "${1%/}" ;;
  esac
}

# Is something listening on 127.0.0.1:$1 ?
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A port nobody listens on (the kernel picks it when python3 is there).
free_port() {
  local p i
  if command -v python3 >/dev/null 2>&1; then
    for i in 1 2 3 4 5; do
      p="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null)" || p=""
      if [[ -n "$p" ]] && ! port_in_use "$p"; then
        printf '%s\n' "$p"
        return 0
      fi
      : "$i"
    done
  fi
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    if ! port_in_use "$p"; then
      printf '%s\n' "$p"
      return 0
    fi
    : "$i"
  done
  return 1
}

pid_of() { # pid recorded for process $1 (empty if none)
  local f="$DIR/pids/$1.pid"
  if [[ -s "$f" ]]; then cat "$f"; fi
}

# Does process $1 exist and is it not a zombie? A test process killed by a parent that has not reaped
# it yet is a zombie: `kill -0` still succeeds on it.
running() {
  local stat
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" != [ZX] ]]
}

# Is process $1 alive and really ours (its command line names our DIR)? A zombie counts as gone, and a
# recycled PID does not name DIR. One that is exiting has already lost its command line (an empty one):
# it counts as alive until it is a zombie or reaped.
owned_pid() {
  local pid="$1" arg args=()
  running "$pid" || return 1
  mapfile -d '' args <"/proc/$pid/cmdline" 2>/dev/null || return 1
  ((${#args[@]})) || return 0
  for arg in "${args[@]}"; do
    [[ "$arg" == "$DIR" || "$arg" == "$DIR/"* ]] && return 0
  done
  return 1
}

server_alive() {
  local pid
  pid="$(pid_of postgres)"
  [[ -n "$pid" ]] && owned_pid "$pid"
}

# Stop one process: signal $3 (default TERM), wait up to $2 seconds, then KILL (and wait a little).
stop_pid() {
  local pid="$1" grace="$2" sig="${3:-TERM}" deadline
  owned_pid "$pid" || return 0
  kill -"$sig" "$pid" 2>/dev/null || true
  deadline=$(($(now) + grace))
  while owned_pid "$pid" && (($(now) < deadline)); do sleep 0.1; done
  if owned_pid "$pid"; then
    log "pid $pid did not stop after ${grace}s: KILL"
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$(($(now) + 5))
    while owned_pid "$pid" && (($(now) < deadline)); do sleep 0.1; done
  fi
}

# The watchdog first (unless that is us), then the postmaster: SIGINT is PostgreSQL's fast shutdown
# (backends are told to exit, no waiting for clients); the cluster is thrown away, so KILL after a
# bounded wait is fine too: the backends notice the postmaster's death and exit on their own.
kill_processes() {
  local grace="${1:-10}" pid
  pid="$(pid_of watch)"
  if [[ -n "$pid" && "$pid" != "$$" ]]; then stop_pid "$pid" 5; fi
  rm -f "$DIR/pids/watch.pid"
  pid="$(pid_of postgres)"
  if [[ -n "$pid" ]]; then stop_pid "$pid" "$grace" INT; fi
  rm -f "$DIR/pids/postgres.pid"
}

show_tail() {
  local f
  for f in "$DIR/log/postgres.log" "$DIR/log/setup.out"; do
    if [[ -s "$f" ]]; then
      printf '\n----- last lines of %s -----\n' "$f" >&2
      tail -n 30 "$f" >&2 || true
    fi
  done
}

die() { # die MESSAGE [show-logs]
  log "ERROR: $1"
  if [[ "${2:-}" == logs ]]; then show_tail; fi
  exit 1
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

STARTED=0
on_exit() {
  local rc=$?
  if ((rc != 0)) && ((STARTED == 0)) && [[ -n "${DIR:-}" && -f "$DIR/$MARKER" ]]; then
    log "start failed (exit $rc); stopping what was started; logs kept in $DIR/log"
    kill_processes 5 || true
  fi
  rm -f "${PWFILE:-}" 2>/dev/null || true
  exit "$rc"
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
      kill_processes 5
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

start_watchdog() {
  local watch="$1"
  [[ "$watch" =~ ^[0-9]+$ ]] || die "--watch-pid needs a number"
  # Started through this script itself so its command line names DIR (see owned_pid); when PID is
  # gone it turns into 'stop DIR' (exec keeps the pid, and stop skips its own pid).
  "$SELF" __watch "$DIR" "$watch" </dev/null >>"$DIR/log/watch.out" 2>&1 &
  echo "$!" >"$DIR/pids/watch.pid"
}

cmd_start() {
  local watch=""
  while (($#)); do
    case "$1" in
      --watch-pid) watch="${2:-}"; shift 2 || usage ;;
      *) usage ;;
    esac
  done
  local t0
  t0=$(now)
  DEADLINE=$((t0 + START_TIMEOUT))
  find_binaries

  if [[ -e "$DIR" && ! -d "$DIR" ]]; then die "$DIR exists and is not a directory"; fi
  if [[ -d "$DIR" ]]; then
    if [[ -f "$DIR/$MARKER" ]]; then
      if [[ -s "$DIR/env" ]] && server_alive; then
        log "server in $DIR already running; reusing it"
        cat "$DIR/env"
        STARTED=1
        return 0
      fi
      log "stale server state in $DIR; cleaning it"
      kill_processes 5
      find "$DIR" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
    elif [[ -n "$(ls -A "$DIR")" ]]; then
      die "$DIR is not empty and not a directory made by this script"
    fi
  fi
  mkdir -p "$DIR"
  : >"$DIR/$MARKER"
  trap on_exit EXIT
  make_layout
  PASSWORD="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  PORT=0

  [[ -z "$watch" ]] || start_watchdog "$watch"
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

cmd_stop() {
  [[ -d "$DIR" ]] || return 0
  if [[ ! -f "$DIR/$MARKER" ]]; then
    log "$DIR was not made by this script; not touching it"
    exit 1
  fi
  kill_processes 10
  rm -rf "$DIR"
}

cmd_watch() { # internal: __watch DIR PID
  local watch="$1"
  while running "$watch"; do sleep 1; done
  [[ -d "$DIR" ]] || exit 0
  exec "$SELF" stop "$DIR"
}

main() {
  (($# >= 2)) || usage
  local cmd="$1"
  DIR="$(abs_dir "$2")"
  shift 2
  [[ "$DIR" != "/" && -n "$DIR" ]] || usage
  # The server's user may not be allowed into the caller's working folder.
  cd /
  case "$cmd" in
    start) cmd_start "$@" ;;
    stop) (($# == 0)) || usage; cmd_stop ;;
    __watch) cmd_watch "$@" ;;
    *) usage ;;
  esac
}

main "$@"
