# shellcheck shell=bash
# What the test-service scripts (s3_server.sh, postgres_server.sh) share, sourced by them: the command line
# (`start DIR [--watch-pid PID]`, `stop DIR`, the internal `__watch DIR PID`), claiming DIR (absent, empty,
# or one of the script's own, whose running server is reused), PID files whose processes are only ever
# signalled when their command line names DIR, the stop (TERM or another signal, then KILL after a bounded
# wait), the watchdog that stops the server once the process that asked for it is gone, and the clean-up of
# a failed start.
#
# The sourcing script sets SELF (its own absolute path: the usage text is its header comment, and the
# watchdog runs it) and MARKER (the file that marks a DIR as the script's), then defines:
#   cmd_start          starts the server (`claim_dir` first; STARTED=1 once up); WATCH_PID is the
#                      --watch-pid argument, for `start_watchdog`
#   stop_all GRACE     stops every recorded process (`stop_recorded GRACE watch NAME[:SIGNAL]...`)
#   server_alive       whether the recorded server processes all run (`daemon_alive NAME`)
#   show_tail ARGS...  prints the relevant log tails; given what `die MESSAGE ARGS...` was given
#   service_cleanup    optional: more to undo when the script exits
# and calls `service_main "$@"` last. SERVICE_WORKDIR, when set, is the folder the script works from.

SERVICE="$(basename "$SELF" .sh)"
readonly SERVICE

log() { printf '[%s %(%H:%M:%S)T] %s\n' "$SERVICE" -1 "$*" >&2; }

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF" >&2
  exit 2
}

die() { # die MESSAGE [show_tail args...]
  local msg="$1"
  shift
  log "ERROR: $msg"
  show_tail "$@"
  exit 1
}

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

# A port nobody listens on; the kernel picks it when python3 is there.
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

# Is the recorded process $1 alive, and really ours?
daemon_alive() {
  local pid
  pid="$(pid_of "$1")"
  [[ -n "$pid" ]] || return 1
  owned_pid "$pid"
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

# stop_recorded GRACE NAME[:SIGNAL]...: stops the recorded processes one after the other (stop_pid, TERM
# unless another signal is named) and forgets them. Only PIDs recorded in DIR whose command line names DIR
# are touched, so a recycled PID is never hit; this shell's own PID (the watchdog, turned into `stop`) is
# skipped.
stop_recorded() {
  local grace="$1" entry name sig pid
  shift
  for entry in "$@"; do
    name="${entry%%:*}"
    sig=TERM
    if [[ "$entry" == *:* ]]; then sig="${entry#*:}"; fi
    pid="$(pid_of "$name")"
    if [[ -n "$pid" && "$pid" != "$$" ]]; then stop_pid "$pid" "$grace" "$sig"; fi
    rm -f "$DIR/pids/$name.pid"
  done
}

STARTED=0
on_exit() {
  local rc=$?
  if ((rc != 0)) && ((STARTED == 0)) && [[ -n "${DIR:-}" && -f "$DIR/$MARKER" ]]; then
    log "start failed (exit $rc); stopping what was started; logs kept in $DIR/log"
    stop_all 5 || true
  fi
  if declare -F service_cleanup >/dev/null; then service_cleanup || true; fi
  exit "$rc"
}

# Makes DIR the server's: reuses the running server of a DIR of this script (REUSED=1, its env printed),
# cleans a stale one, refuses anything else that is not empty. Otherwise (REUSED=0) DIR exists, holds the
# marker, and a failed start from here on stops what it started.
claim_dir() {
  # shellcheck disable=SC2034 # read by the sourcing script's cmd_start
  REUSED=0
  if [[ -e "$DIR" && ! -d "$DIR" ]]; then die "$DIR exists and is not a directory"; fi
  if [[ -d "$DIR" ]]; then
    if [[ -f "$DIR/$MARKER" ]]; then
      if [[ -s "$DIR/env" ]] && server_alive; then
        log "server in $DIR already running; reusing it"
        cat "$DIR/env"
        STARTED=1
        # shellcheck disable=SC2034
        REUSED=1
        return 0
      fi
      log "stale server state in $DIR; cleaning it"
      stop_all 5
      find "$DIR" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
    elif [[ -n "$(ls -A "$DIR")" ]]; then
      die "$DIR is not empty and not a directory made by this script"
    fi
  fi
  mkdir -p "$DIR"
  : >"$DIR/$MARKER"
  trap on_exit EXIT
}

# With --watch-pid: a watchdog that stops the server (and removes DIR) once process WATCH_PID is gone.
start_watchdog() {
  [[ -n "$WATCH_PID" ]] || return 0
  [[ "$WATCH_PID" =~ ^[0-9]+$ ]] || die "--watch-pid needs a number"
  # Started through the script itself so its command line names DIR (see owned_pid); when PID is gone it
  # turns into 'stop DIR' (exec keeps the pid, and stop skips its own pid).
  "$SELF" __watch "$DIR" "$WATCH_PID" </dev/null >>"$DIR/log/watch.out" 2>&1 &
  echo "$!" >"$DIR/pids/watch.pid"
}

cmd_stop() {
  [[ -d "$DIR" ]] || return 0
  if [[ ! -f "$DIR/$MARKER" ]]; then
    log "$DIR was not made by this script; not touching it"
    exit 1
  fi
  stop_all 10
  rm -rf "$DIR"
}

cmd_watch() { # internal: __watch DIR PID
  local watch="$1"
  while running "$watch"; do sleep 1; done
  [[ -d "$DIR" ]] || exit 0
  exec "$SELF" stop "$DIR"
}

service_main() {
  (($# >= 2)) || usage
  local cmd="$1"
  DIR="$(abs_dir "$2")"
  shift 2
  [[ "$DIR" != "/" && -n "$DIR" ]] || usage
  if [[ -n "${SERVICE_WORKDIR:-}" ]]; then cd "$SERVICE_WORKDIR" || exit 1; fi
  case "$cmd" in
    start)
      WATCH_PID=""
      while (($#)); do
        case "$1" in
          --watch-pid) WATCH_PID="${2:-}"; shift 2 || usage ;;
          *) usage ;;
        esac
      done
      cmd_start
      ;;
    stop) (($# == 0)) || usage; cmd_stop ;;
    __watch) cmd_watch "$@" ;;
    *) usage ;;
  esac
}
