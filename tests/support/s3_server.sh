#!/usr/bin/env bash
# A throw-away, real S3 server on loopback for lakerun's tests:
# a one-node Ceph (ceph-mon + ceph-osd on memstore, no auth) with radosgw (beast) in front.
#
# Usage:
#   s3_server.sh start DIR [--watch-pid PID]
#       Installs the Debian packages when missing, creates everything under DIR (conf, keyring,
#       mon/osd data, logs, admin sockets, pid files), starts the daemons, creates an S3 user and
#       waits until authenticated S3 requests work. Writes DIR/env and prints the same lines on stdout:
#           AWS_ENDPOINT_URL=http://127.0.0.1:PORT
#           AWS_ACCESS_KEY_ID=...
#           AWS_SECRET_ACCESS_KEY=...
#           AWS_REGION=us-east-1
#       Progress goes to stderr. DIR must be absent, empty, or a DIR of this script (a server that is
#       already up there is reused). On failure: daemons are stopped, the tail of the relevant log is
#       printed on stderr, DIR is kept for inspection, exit status non-zero.
#       --watch-pid PID: also stop the server (and remove DIR) as soon as process PID is gone.
#   s3_server.sh stop DIR
#       Stops the daemons by their PIDs (TERM, then KILL after a bounded wait) and removes DIR.
#       A no-op when DIR does not exist.
#
# Tunables (environment): S3_SERVER_START_TIMEOUT (seconds, default 90), S3_SERVER_MON_PORT
# (default: 6789 when free), S3_SERVER_RGW_PORT (default: a free port), S3_SERVER_ACCESS_KEY,
# S3_SERVER_SECRET_KEY, S3_SERVER_FAULT=osd (kill the first OSD, to test the restart path).
set -euo pipefail
# Everything the ceph tools read is passed explicitly; a caller's settings must not leak in.
unset CEPH_ARGS CEPH_CONF

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/$(basename "${BASH_SOURCE[0]}")"
readonly SELF
# shellcheck source=service.sh
source "$(dirname "$SELF")/service.sh"
readonly MARKER=".lakerun-s3-server"
readonly ACCESS_KEY="${S3_SERVER_ACCESS_KEY:-LAKERUNTESTACCESSKEY}"
readonly SECRET_KEY="${S3_SERVER_SECRET_KEY:-lakerunTestSecretKey0123456789abcdefghij}"
readonly REGION="us-east-1"
readonly RGW_NAME="client.rgw.lakerun"
readonly START_TIMEOUT="${S3_SERVER_START_TIMEOUT:-90}"
readonly DAEMONS=(rgw osd mon) # stop order

# ---------------------------------------------------------------------------------------------------
# helpers

# Run a daemon in the foreground mode of ceph, in the background of this shell, logging to DIR/log.
spawn() {
  local name="$1"
  shift
  "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
  echo "$!" >"$DIR/pids/$name.pid"
}

ceph_cli() {
  timeout 20 ceph -c "$CONF" --connect-timeout 5 "$@" 2>>"$DIR/log/cli.err"
}

logfile_of() {
  case "$1" in
    mon) echo "$DIR/log/mon.a.log" ;;
    osd) echo "$DIR/log/osd.0.log" ;;
    rgw) echo "$DIR/log/$RGW_NAME.log" ;;
    *) echo "$DIR/log/$1" ;;
  esac
}

show_tail() { # show_tail daemon...
  local d f
  for d in "$@"; do
    for f in "$(logfile_of "$d")" "$DIR/log/$d.out"; do
      if [[ -s "$f" ]]; then
        printf '\n----- last lines of %s -----\n' "$f" >&2
        tail -n 40 "$f" >&2 || true
      fi
    done
  done
  if [[ -s "$DIR/log/cli.err" ]]; then
    printf '\n----- last lines of %s -----\n' "$DIR/log/cli.err" >&2
    tail -n 10 "$DIR/log/cli.err" >&2 || true
  fi
}

# Stop our daemons one after the other, radosgw first, then the OSD, then the monitor (stopped all
# at once, radosgw waits ~5 s for the vanished cluster); the watchdog first.
stop_all() {
  stop_recorded "${1:-10}" watch "${DAEMONS[@]}"
}

server_alive() {
  daemon_alive mon && daemon_alive osd && daemon_alive rgw
}

# ---------------------------------------------------------------------------------------------------
# packages

ensure_packages() {
  local missing=() cmd pkg
  local -A pkg_of=(
    [ceph-mon]=ceph-mon [monmaptool]=ceph-mon [ceph-authtool]=ceph-mon [ceph]=ceph-mon
    [ceph-osd]=ceph-osd [radosgw]=radosgw [radosgw-admin]=radosgw [uuidgen]=uuid-runtime
    [curl]=curl [timeout]=coreutils
  )
  for cmd in "${!pkg_of[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_of[$cmd]}")
  done
  ((${#missing[@]})) || return 0
  # always the full set the brief names, plus whatever else is missing
  local pkgs=(ceph-mon ceph-osd radosgw uuid-runtime)
  for pkg in "${missing[@]}"; do
    [[ " ${pkgs[*]} " == *" $pkg "* ]] || pkgs+=("$pkg")
  done
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || {
      log "missing packages (${pkgs[*]}) and not root, no sudo"
      exit 1
    }
    sudo=(sudo)
  fi
  log "installing ${pkgs[*]}"
  local t0 t1
  t0=$(now)
  # Lock timeout: another apt run (a parallel job) may hold the dpkg lock.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "${pkgs[@]}" >&2
  t1=$(now)
  for cmd in "${!pkg_of[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd is still missing after installing ${pkgs[*]}"
  done
  log "packages installed in $((t1 - t0)) s"
}

# ---------------------------------------------------------------------------------------------------
# start

write_conf() {
  cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon host = [v1:127.0.0.1:$MON_PORT]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr2 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $DIR/run/\$cluster-\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = true
crash dir = $DIR/crash
mon data = $DIR/mon/\$cluster-\$id
mon cluster log file = $DIR/log/cluster.log
mon data avail warn = 2
mon data avail crit = 1
mon allow pool size one = true
mon warn on insecure global id reclaim allowed = false
mon warn on insecure global id reclaim = false
paxos propose interval = ${S3_SERVER_PAXOS_INTERVAL:-0.1}
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = ${LAKERUN_S3_MEMSTORE_BYTES:-4294967296}
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
# The OSD's own start-up mon commands (set-device-class, create-or-move) race with its first monmap
# in 16.2.x and are refused with 'wrong fsid' (EPERM), which kills the OSD. The crush entry is made
# by this script instead.
osd class update on start = false
osd crush update on start = false

[$RGW_NAME]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $DIR/rgw
rgw enable usage log = false
rgw thread pool size = 64
EOF
}

remaining() { echo $((DEADLINE - $(now))); }

# wait_for SECONDS DESCRIPTION "DAEMON..." CHECK...: poll CHECK until it succeeds (0). Returns 1 when
# time ran out (bounded by both SECONDS and the overall deadline), 2 when one of the DAEMONs died,
# 3 when CHECK returned 3 (a hopeless condition it recognised, e.g. a port conflict).
wait_for() {
  local secs="$1" daemons="$3" d rc # $2: a description, for the reader
  shift 3
  local until=$(($(now) + secs))
  ((until <= DEADLINE)) || until=$DEADLINE
  while true; do
    rc=0
    "$@" || rc=$?
    ((rc == 0 || rc == 3)) && return "$rc"
    for d in $daemons; do
      daemon_alive "$d" || return 2
    done
    (($(now) < until)) || return 1
    sleep 0.3
  done
}

# Our monitor answers: `ceph fsid` must give OUR fsid, because with auth off the CLI happily talks to
# any other cluster's monitor that won a race for the same port.
mon_ready() {
  if grep -qs 'unable to bind' "$(logfile_of mon)" "$DIR/log/mon.out"; then return 3; fi
  [[ "$(ceph_cli fsid 2>/dev/null)" == "$FSID" ]]
}
# This OSD process booted (its own log says so) and the monitor counts it as up.
osd_up() {
  grep -qs 'state: booting -> active' "$(logfile_of osd)" || return 1
  ceph_cli osd stat -f json 2>/dev/null | grep -q '"num_up_osds":1\b' || return 1
  daemon_alive osd
}

# HTTP status of a signed S3 request (curl's own SigV4), body in DIR/run/s3.body
s3_curl() { # METHOD PATH [curl args...]
  local method="$1" path="$2"
  shift 2
  curl -sS -o "$DIR/run/s3.body" -w '%{http_code}' --max-time 10 -X "$method" \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    "$@" "http://127.0.0.1:$RGW_PORT$path" 2>>"$DIR/log/cli.err" || echo 000
}

rgw_http_up() { # any HTTP answer at all
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$RGW_PORT/" 2>/dev/null || true)"
  [[ "$code" =~ ^[1-5][0-9][0-9]$ ]]
}

s3_list_ok() {
  [[ "$(s3_curl GET /)" == 200 ]] && grep -q 'ListAllMyBucketsResult' "$DIR/run/s3.body"
}

start_mon() {
  local attempt f rc
  for attempt in 1 2 3; do
    if [[ -n "${S3_SERVER_MON_PORT:-}" ]]; then
      MON_PORT="$S3_SERVER_MON_PORT"
    elif ((attempt == 1)) && ! port_in_use 6789; then
      MON_PORT=6789
    else
      MON_PORT="$(free_port)" || die "no free port for the monitor"
    fi
    write_conf
    rm -rf "$DIR/mon" && mkdir -p "$DIR/mon/ceph-a"
    for f in "$(logfile_of mon)" "$DIR/log/mon.out"; do
      if [[ -e "$f" ]]; then mv "$f" "$f.attempt$((attempt - 1))"; fi
    done
    monmaptool --create --clobber --fsid "$FSID" --addv a "[v1:127.0.0.1:$MON_PORT]" \
      "$DIR/run/monmap" >>"$DIR/log/setup.out" 2>&1 || die "monmaptool failed" setup.out
    ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/run/monmap" --keyring "$DIR/keyring" \
      >>"$DIR/log/setup.out" 2>&1 || die "ceph-mon --mkfs failed" setup.out mon
    spawn mon ceph-mon -c "$CONF" -i a -f
    rc=0
    wait_for 30 "monitor" mon mon_ready || rc=$?
    if ((rc == 0)); then
      log "monitor up on 127.0.0.1:$MON_PORT"
      return 0
    fi
    if ((rc == 3)) || grep -qs 'unable to bind' "$(logfile_of mon)" "$DIR/log/mon.out"; then
      log "monitor port $MON_PORT taken; trying another"
      stop_all 3
      continue
    fi
    die "the monitor did not come up (rc $rc)" mon
  done
  die "the monitor could not bind a port" mon
}

start_osd() {
  local attempt rc
  [[ -s "$DIR/run/osd.id" ]] || {
    # a monitor still settling may refuse its first commands ("EPERM problem getting command descriptions",
    # seen on a loaded machine): retry; an attempt that made the OSD without saying so left it in the map
    for attempt in 1 2 3 4 5; do
      if ((attempt == 1)) && [[ "${S3_SERVER_FAULT:-}" == osd-create ]]; then # exercises the retry
        ceph_cli osd create >/dev/null # made, but said as a failure
      elif ceph_cli osd create >"$DIR/run/osd.id"; then
        break
      fi
      if [[ "$(ceph_cli osd ls 2>/dev/null)" == 0 ]]; then
        echo 0 >"$DIR/run/osd.id"
        break
      fi
      ((attempt < 5)) || die "ceph osd create failed" cli.err mon
      sleep 1
    done
  }
  [[ "$(cat "$DIR/run/osd.id")" == 0 ]] || die "unexpected osd id $(cat "$DIR/run/osd.id")" mon
  # the monitor may still be settling its first maps (seen once in ~40 runs on a loaded machine): retry;
  # adding an OSD already placed there succeeds
  for attempt in 1 2 3 4 5; do
    ceph_cli osd crush add osd.0 1.0 root=default host=lakerun >>"$DIR/log/setup.out" 2>&1 && break
    ((attempt < 5)) || die "ceph osd crush add failed" setup.out cli.err mon
    sleep 1
  done
  for attempt in 1 2 3 4 5 6; do
    rm -rf "$DIR/osd/ceph-0" && mkdir -p "$DIR/osd/ceph-0"
    ceph-osd -c "$CONF" -i 0 --mkfs >>"$DIR/log/setup.out" 2>&1 || die "ceph-osd --mkfs failed" setup.out osd
    spawn osd ceph-osd -c "$CONF" -i 0 -f
    if ((attempt == 1)) && [[ "${S3_SERVER_FAULT:-}" == osd ]]; then # exercises the restart path
      kill -KILL "$(pid_of osd)"
    fi
    rc=0
    wait_for 30 "osd" "osd mon" osd_up || rc=$?
    if ((rc == 0)); then
      OSD_RESTARTS=$((attempt - 1))
      log "osd up (attempt $attempt)"
      return 0
    fi
    local why="timed out"
    ((rc == 2)) && why="its process died"
    if grep -q 'wrong fsid' "$(logfile_of osd)" "$DIR/log/osd.out" 2>/dev/null; then why="$why, 'wrong fsid'"; fi
    log "osd attempt $attempt failed ($why); restarting it"
    cp "$(logfile_of osd)" "$DIR/log/osd.0.attempt$attempt.log" 2>/dev/null || true
    : >"$(logfile_of osd)"
    local pid
    pid="$(pid_of osd)"
    if [[ -n "$pid" ]] && owned_pid "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
    (($(remaining) > 15)) || die "no time left to restart the osd" "osd.0.attempt$attempt.log" mon
  done
  die "the osd did not come up after 6 attempts" "osd.0.attempt6.log" mon
}

start_rgw() {
  local attempt rc
  for attempt in 1 2 3; do
    # A radosgw that dies on a taken port leaves watches behind on the control objects, and the next
    # one's first writes then wait ~30 s for them to time out: check the port before starting.
    if ((attempt == 1)) && [[ -n "${S3_SERVER_RGW_PORT:-}" ]] && ! port_in_use "$S3_SERVER_RGW_PORT"; then
      RGW_PORT="$S3_SERVER_RGW_PORT"
    else
      RGW_PORT="$(free_port)" || die "no free port for radosgw"
    fi
    write_conf
    spawn rgw radosgw -c "$CONF" -n "$RGW_NAME" -f
    rc=0
    wait_for 60 "radosgw" "rgw osd mon" rgw_http_up || rc=$?
    if ((rc == 0)); then
      log "radosgw answers on 127.0.0.1:$RGW_PORT"
      return 0
    fi
    if ((rc == 2)) && grep -qi 'address already in use\|failed to bind' "$(logfile_of rgw)" "$DIR/log/rgw.out" 2>/dev/null; then
      log "rgw port $RGW_PORT taken; trying another"
      continue
    fi
    die "radosgw did not answer HTTP (rc $rc)" rgw osd
  done
  die "radosgw could not bind a port" rgw
}

create_user() {
  timeout 30 radosgw-admin -c "$CONF" user create --uid=lakerun-test --display-name="lakerun tests" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >>"$DIR/log/setup.out" 2>&1 ||
    die "radosgw-admin user create failed" setup.out rgw
}

# Proves authenticated reads and writes work end to end (and pays the slow first bucket/object
# creation here rather than in the first test).
warm_up() {
  local b="lakerun-warmup-$RANDOM$RANDOM" code
  code="$(s3_curl PUT "/$b")"
  [[ "$code" == 200 ]] || die "warm-up CreateBucket answered $code: $(head -c 400 "$DIR/run/s3.body" 2>/dev/null)" rgw
  code="$(s3_curl PUT "/$b/hello.txt" --data-binary "hello lakerun" -H 'Content-Type: text/plain')"
  [[ "$code" == 200 ]] || die "warm-up PutObject answered $code: $(head -c 400 "$DIR/run/s3.body" 2>/dev/null)" rgw
  code="$(s3_curl GET "/$b/hello.txt")"
  [[ "$code" == 200 && "$(cat "$DIR/run/s3.body")" == "hello lakerun" ]] ||
    die "warm-up GetObject answered $code: $(head -c 400 "$DIR/run/s3.body" 2>/dev/null)" rgw
  s3_curl DELETE "/$b/hello.txt" >/dev/null
  s3_curl DELETE "/$b" >/dev/null
}

cmd_start() {
  local t0
  t0=$(now)
  DEADLINE=$((t0 + START_TIMEOUT))
  ensure_packages
  t0=$(now)
  DEADLINE=$((t0 + START_TIMEOUT))

  claim_dir
  if ((REUSED)); then return 0; fi
  mkdir -p "$DIR"/{log,run,pids,crash,rgw,osd,mon}
  CONF="$DIR/ceph.conf"
  FSID="$(uuidgen)"
  RGW_PORT=0
  MON_PORT=0
  OSD_RESTARTS=0

  ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' \
    >>"$DIR/log/setup.out" 2>&1 || die "ceph-authtool failed" setup.out

  start_watchdog
  start_mon
  start_osd
  start_rgw
  create_user
  local rc=0
  wait_for 30 "S3 ListBuckets" "rgw osd mon" s3_list_ok || rc=$?
  ((rc == 0)) || die "authenticated ListBuckets never answered 200 (last: $(head -c 400 "$DIR/run/s3.body" 2>/dev/null))" rgw
  warm_up

  {
    echo "AWS_ENDPOINT_URL=http://127.0.0.1:$RGW_PORT"
    echo "AWS_ACCESS_KEY_ID=$ACCESS_KEY"
    echo "AWS_SECRET_ACCESS_KEY=$SECRET_KEY"
    echo "AWS_REGION=$REGION"
  } >"$DIR/env.tmp"
  mv "$DIR/env.tmp" "$DIR/env"
  echo "osd_restarts=$OSD_RESTARTS start_seconds=$(($(now) - t0))" >"$DIR/run/stats"
  STARTED=1
  log "S3 ready at http://127.0.0.1:$RGW_PORT in $(($(now) - t0)) s (mon port $MON_PORT, osd restarts $OSD_RESTARTS)"
  cat "$DIR/env"
}

service_main "$@"
