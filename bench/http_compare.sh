#!/usr/bin/env bash
# Side-by-side HTTP-mode load comparison: the same wrk workloads run
#   (a) directly at one of the two benchmark backends,
#   (b) through Tandem with mode = "http" (roundrobin over both backends),
#   (c) through HAProxy in `mode http` (keep-alive, http-reuse safe, roundrobin over both),
# in one run, with the same number of worker threads for both proxies.
#
# Usage: bench/http_compare.sh [options]    (every option also has an environment variable)
#   -d, --duration SEC        seconds per measured run                  DURATION=10
#   -c, --connections N       wrk connections                           CONNECTIONS=50
#   -t, --threads N           proxy worker threads (Tandem and HAProxy) THREADS=1
#   -r, --repeat N            rounds of all runs; the table shows medians REPEAT=1
#       --wrk-threads N       wrk threads                               WRK_THREADS=1
#       --backend-threads N   threads of each backend                   BACKEND_THREADS=1
#       --workloads LIST      subset of keepalive,close,log             WORKLOADS=keepalive,close,log
#       --targets LIST        subset of direct,tandem,haproxy           TARGETS=direct,tandem,haproxy
#       --warmup SEC          unmeasured wrk run before each run (0=off) WARMUP=1
#       --access-log FILE     Tandem's access log in the log workload   ACCESS_LOG=(temporary, /tmp)
#       --tandem PATH         Tandem binary                             TANDEM=<repo>/build/tandem
#       --backend PATH        tandem_bench_backend binary               BACKEND_BIN=(searched)
#       --haproxy PATH        HAProxy binary                            HAPROXY=haproxy
#       --out DIR             keep configs, logs and wrk outputs here   OUT_DIR=(temporary)
#   -h, --help
#
# Workloads: keepalive = wrk GET / on keep-alive connections; close = the same with
# `Connection: close` (a new client connection per request); log = keepalive through a
# second Tandem whose access_log is a file (the cost of logging; HAProxy logs only to
# syslog, so it has no column there).
#
# Every process this script starts is stopped on exit, failure, Ctrl-C or SIGTERM.
# Everything listens on 127.0.0.1 only.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-1}
REPEAT=${REPEAT:-1}
WRK_THREADS=${WRK_THREADS:-1}
BACKEND_THREADS=${BACKEND_THREADS:-1}
WORKLOADS=${WORKLOADS:-keepalive,close,log}
TARGETS=${TARGETS:-direct,tandem,haproxy}
WARMUP=${WARMUP:-1}
ACCESS_LOG=${ACCESS_LOG:-}
TANDEM=${TANDEM:-$REPO/build/tandem}
BACKEND_BIN=${BACKEND_BIN:-}
HAPROXY=${HAPROXY:-haproxy}
OUT_DIR=${OUT_DIR:-}

BENCH_NAME=http_compare
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$REPO/bench/lib.sh"

set_option() {
  case $1 in
    -d|--duration) DURATION=$2 ;;
    -c|--connections) CONNECTIONS=$2 ;;
    -t|--threads) THREADS=$2 ;;
    -r|--repeat) REPEAT=$2 ;;
    --wrk-threads) WRK_THREADS=$2 ;;
    --backend-threads) BACKEND_THREADS=$2 ;;
    --workloads) WORKLOADS=$2 ;;
    --targets) TARGETS=$2 ;;
    --warmup) WARMUP=$2 ;;
    --access-log) ACCESS_LOG=$2 ;;
    --tandem) TANDEM=$2 ;;
    --backend) BACKEND_BIN=$2 ;;
    --haproxy) HAPROXY=$2 ;;
    --out) OUT_DIR=$2 ;;
    *) return 1 ;;
  esac
}
parse_options "$@"

DURATION=${DURATION%s}
WARMUP=${WARMUP%s}
check_ranges "DURATION:$DURATION:1:3600" "CONNECTIONS:$CONNECTIONS:1:10000" \
  "THREADS:$THREADS:1:64" "REPEAT:$REPEAT:1:20" "WRK_THREADS:$WRK_THREADS:1:64" \
  "BACKEND_THREADS:$BACKEND_THREADS:1:64" "WARMUP:$WARMUP:0:60"
[ "$WRK_THREADS" -le "$CONNECTIONS" ] || die "wrk needs at least one connection per thread"
for w in ${WORKLOADS//,/ }; do
  case $w in keepalive|close|log) ;; *) die "unknown workload '$w'" ;; esac
done
for t in ${TARGETS//,/ }; do
  case $t in direct|tandem|haproxy) ;; *) die "unknown target '$t'" ;; esac
done
case $ACCESS_LOG in *\"*|*\\*) die "--access-log must not contain quotes or backslashes" ;; esac

need_tools wrk curl ss
BACKEND_BIN=$(find_backend_bin "$REPO") || exit 1

bench_init
[ -n "$ACCESS_LOG" ] || ACCESS_LOG=$WORK/access.log
SANITY_SIZE=1048576

# Checks that a target answers GET / on keep-alive and with Connection: close, and returns
# a full streamed body.
sanity() {
  local port=$1 body size
  body=$(curl -s --max-time 5 "http://127.0.0.1:$port/" "http://127.0.0.1:$port/") || return 1
  [ "$body" = "ok"$'\n'"ok" ] || return 1
  body=$(curl -s --max-time 5 -H 'Connection: close' "http://127.0.0.1:$port/") || return 1
  [ "$body" = "ok" ] || return 1
  size=$(curl -s --max-time 30 -o /dev/null -w '%{size_download}' \
         "http://127.0.0.1:$port/bytes/$SANITY_SIZE") || return 1
  [ "$size" = "$SANITY_SIZE" ]
}

# ---------------------------------------------------------------- backends
start_backend backend1 "$BACKEND_BIN" "$BACKEND_THREADS"
B1_PID=$LAST_PID; B1_PORT=$LAST_PORT
start_backend backend2 "$BACKEND_BIN" "$BACKEND_THREADS"
B2_PID=$LAST_PID; B2_PORT=$LAST_PORT

# Targets: direct, tandem, haproxy, and tandem_log (Tandem with its access log on, used by
# the log workload only).
declare -A PORT STATUS PROC
PORT[direct]=$B1_PORT
STATUS[direct]=ok
PROC[direct]=""
for t in tandem tandem_log haproxy; do STATUS[$t]="skipped"; PROC[$t]=""; done
TANDEM_NOTE=""

# ---------------------------------------------------------------- Tandem
# tandem_config PORT ACCESS_LOG: the Tandem configuration, on stdout.
tandem_config() {
  cat <<EOF
[global]
threads = $THREADS
log_level = "warning"
access_log = "$2"

[defaults]
timeout_connect = "2s"
timeout_client = "30s"
timeout_server = "30s"
timeout_http_request = "10s"
timeout_http_keep_alive = "30s"

[[frontend]]
name = "bench"
listen = "127.0.0.1:$1"
mode = "http"
backend = "app"

[[backend]]
name = "app"
mode = "http"
balance = "roundrobin"

[[backend.server]]
name = "s1"
address = "127.0.0.1:$B1_PORT"

[[backend.server]]
name = "s2"
address = "127.0.0.1:$B2_PORT"
EOF
}

# start_tandem TARGET ACCESS_LOG: writes the config, checks it, starts Tandem; sets STATUS.
start_tandem() {
  local t=$1 log=$2 cfg="$WORK/$1.toml"
  PORT[$t]=$(free_port) || die "no free port"
  tandem_config "${PORT[$t]}" "$log" >"$cfg"
  if ! "$TANDEM" -c "$cfg" --check >"$WORK/$t.check" 2>&1; then
    # A build without HTTP mode refuses mode = "http" ("not available yet") or, older still,
    # does not know the HTTP keys at all.
    if grep -q 'not available yet\|access_log: unknown key\|mode: unknown key' "$WORK/$t.check"; then
      STATUS[$t]="http unavailable"
      TANDEM_NOTE="mode http unavailable in this build: $(head -n 1 "$WORK/$t.check")"
    else
      STATUS[$t]="bad config"
      echo "$BENCH_NAME: $TANDEM --check rejects the generated config:" >&2
      cat "$WORK/$t.check" >&2
    fi
    return
  fi
  start_bg "$t" "$TANDEM" -c "$cfg"
  PROC[$t]=$LAST_PID
  if wait_listen "${PORT[$t]}" "${PROC[$t]}"; then
    STATUS[$t]=ok
  else
    STATUS[$t]="failed"
    echo "$BENCH_NAME: Tandem ($t) did not start; its stderr:" >&2
    tail -n 20 "$WORK/$t.err" >&2
  fi
}

if has "$TARGETS" tandem; then
  if [ ! -x "$TANDEM" ]; then
    STATUS[tandem]="not built"
  else
    start_tandem tandem off
  fi
  if has "$WORKLOADS" log; then
    if [ "${STATUS[tandem]}" = ok ]; then
      : >"$ACCESS_LOG" 2>/dev/null || die "cannot write the access log $ACCESS_LOG"
      start_tandem tandem_log "$ACCESS_LOG"
    else
      STATUS[tandem_log]=${STATUS[tandem]}
    fi
  fi
fi

# ---------------------------------------------------------------- HAProxy
# Does what Tandem does on every request (X-Forwarded-For appended, X-Forwarded-Proto set,
# X-Request-Id kept or generated), so both proxies rewrite the same headers.
if has "$TARGETS" haproxy; then
  if ! command -v "$HAPROXY" >/dev/null; then
    STATUS[haproxy]="not found"
  else
    PORT[haproxy]=$(free_port) || die "no free port"
    cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread $THREADS
    maxconn 4000

defaults
    mode http
    option http-keep-alive
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 30s

frontend bench
    bind 127.0.0.1:${PORT[haproxy]}
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Request-Id %[uuid] unless { req.hdr(x-request-id) -m found }
    default_backend app

backend app
    balance roundrobin
    http-reuse safe
    server s1 127.0.0.1:$B1_PORT
    server s2 127.0.0.1:$B2_PORT
EOF
    if ! "$HAPROXY" -c -q -f "$WORK/haproxy.cfg" >"$WORK/haproxy.check" 2>&1; then
      STATUS[haproxy]="bad config"
      cat "$WORK/haproxy.check" >&2
    else
      start_bg haproxy "$HAPROXY" -f "$WORK/haproxy.cfg" -db
      PROC[haproxy]=$LAST_PID
      if wait_listen "${PORT[haproxy]}" "${PROC[haproxy]}"; then
        STATUS[haproxy]=ok
      else
        STATUS[haproxy]="failed"
        tail -n 20 "$WORK/haproxy.err" >&2
      fi
    fi
  fi
fi

for t in direct tandem tandem_log haproxy; do
  if [ "${STATUS[$t]}" = ok ] && ! sanity "${PORT[$t]}"; then
    STATUS[$t]="wrong answer"
    echo "$BENCH_NAME: $t failed the sanity check (GET / twice on one connection," \
         "GET / with Connection: close, GET /bytes/$SANITY_SIZE)" >&2
  fi
done
[ "${STATUS[direct]}" = ok ] || die "the backend itself fails the sanity check"

# ---------------------------------------------------------------- runs
# run_wrk KEY TARGET [extra wrk args...]: one measured run; fills R[KEY,*] and
# R[KEY,bsplit] (the share of backend CPU taken by backend 1 and backend 2, "b1/b2").
run_wrk() {
  local key=$1 t=$2; shift 2
  local b10 b20 b11 b21
  b10=$(cpu_ticks "$B1_PID"); b20=$(cpu_ticks "$B2_PID")
  wrk_measure "$key" "http://127.0.0.1:${PORT[$t]}/" "$CONNECTIONS" "${PROC[$t]}" \
    "$B1_PID $B2_PID" "$@"
  b11=$(cpu_ticks "$B1_PID"); b21=$(cpu_ticks "$B2_PID")
  [ "${R[$key,status]}" = ok ] || return 0
  # The split includes the warm-up; it only shows how the load is spread.
  R[$key,bsplit]=$(awk -v a=$((b11 - b10)) -v b=$((b21 - b20)) \
                      'BEGIN {if (a + b > 0) printf "%.0f/%.0f", 100 * a / (a + b), 100 * b / (a + b); else print "-"}')
}

echo "Tandem vs HAProxy (HTTP mode): proxy threads=$THREADS, 2 backends x $BACKEND_THREADS" \
     "thread(s), wrk -t$WRK_THREADS -c$CONNECTIONS, ${DURATION}s per run, $REPEAT round(s)," \
     "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  haproxy: $("$HAPROXY" -v 2>/dev/null | head -n 1 | awk '{print $3}')  tandem: $TANDEM" \
     "(${STATUS[tandem]})  backends: 127.0.0.1:$B1_PORT, 127.0.0.1:$B2_PORT"
[ -n "$TANDEM_NOTE" ] && echo "  note: $TANDEM_NOTE"
# Rounds are interleaved (every workload and target once per round), so that a change in
# the machine's load hits all columns alike, and each round starts the target order one
# further (direct tandem haproxy, tandem haproxy direct, ...), so that no column always runs
# right after the same other one. The table shows the median over the rounds.
COLS=(direct tandem haproxy)
for rep in $(seq 1 "$REPEAT"); do
  shift_by=$(( (rep - 1) % 3 ))
  order=("${COLS[@]:shift_by}" "${COLS[@]:0:shift_by}")
  for w in keepalive close log; do
    has "$WORKLOADS" "$w" || continue
    for col in "${order[@]}"; do
      t=$col
      if [ "$w" = log ]; then
        [ "$col" = tandem ] || continue
        t=tandem_log
      fi
      has "$TARGETS" "$col" || continue
      [ "${STATUS[$t]}" = ok ] || continue
      echo "  round $rep/$REPEAT: running $w -> $t ..." >&2
      if [ "$w" = close ]; then
        run_wrk "$w,$col,r$rep" "$t" -H 'Connection: close'
      else
        run_wrk "$w,$col,r$rep" "$t"
      fi
    done
  done
done

# median FORMAT V...: the median of the numeric V arguments, printf-formatted ("-" if none).
median() {
  local fmt=$1; shift
  printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g |
    awk -v f="$fmt" '{v[NR] = $1} END {if (NR == 0) {print "-"; exit}
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf f "\n", m}'
}
# Folds the rounds into R[W,COL,*]: medians, errors summed, req/s range, last split.
for w in keepalive close log; do
  for col in direct tandem haproxy; do
    oks=()
    for rep in $(seq 1 "$REPEAT"); do
      [ "${R[$w,$col,r$rep,status]:-}" = ok ] && oks+=("r$rep")
      [ -n "${R[$w,$col,r$rep,status]:-}" ] && R[$w,$col,status]=${R[$w,$col,r$rep,status]}
    done
    [ ${#oks[@]} -gt 0 ] || continue
    R[$w,$col,status]=ok
    for m in rps p50 p99 pcpu cpureq bcpu; do
      case $m in rps) fmt="%.2f" ;; p50|p99) fmt="%.3f" ;; cpureq) fmt="%.1f" ;; *) fmt="%.0f" ;; esac
      vals=()
      for r in "${oks[@]}"; do vals+=("${R[$w,$col,$r,$m]:--}"); done
      R[$w,$col,$m]=$(median "$fmt" "${vals[@]}")
    done
    errs=0; lo=""; hi=""
    for r in "${oks[@]}"; do
      errs=$((errs + ${R[$w,$col,$r,errors]:-0}))
      v=${R[$w,$col,$r,rps]%.*}
      { [ -z "$lo" ] || [ "$v" -lt "$lo" ]; } && lo=$v
      { [ -z "$hi" ] || [ "$v" -gt "$hi" ]; } && hi=$v
      R[$w,$col,bsplit]=${R[$w,$col,$r,bsplit]:--}
    done
    R[$w,$col,errors]=$errs
    R[$w,$col,range]="$lo-$hi"
  done
done
LOG_LINES="-"; LOG_BYTES="-"
if [ "${R[log,tandem,status]:-}" = ok ] && [ -f "$ACCESS_LOG" ]; then
  LOG_LINES=$(wc -l <"$ACCESS_LOG"); LOG_BYTES=$(wc -c <"$ACCESS_LOG")
fi

# Stop everything now: the backends print their connection and request counters on exit.
stop_all
backend_counters() {
  sed -n 's/^tandem_bench_backend: \([0-9]*\) connections, \([0-9]*\) requests.*/\1 connections, \2 requests/p' \
    "$WORK/$1.err" | tail -n 1
}

# ---------------------------------------------------------------- table
cell() {  # cell WORKLOAD COLUMN METRIC
  local w=$1 col=$2 m=$3 t=$2
  [ "$w" = log ] && [ "$col" = tandem ] && t=tandem_log
  if [ "$w" = log ] && [ "$col" != tandem ]; then
    [ "$col" = haproxy ] && [ "$m" = rps ] && { echo "syslog only"; return; }
    echo "-"; return
  fi
  if ! has "$TARGETS" "$col"; then echo "-"; return; fi
  if [ "${STATUS[$t]}" != ok ]; then echo "${STATUS[$t]}"; return; fi
  if [ "${R[$w,$col,status]:-}" != ok ]; then echo "${R[$w,$col,status]:-n/a}"; return; fi
  echo "${R[$w,$col,$m]:--}"
}

TABLE=$WORK/table.txt
FMT='%-10s %-16s %12s %17s %12s %15s %14s\n'
{
  # shellcheck disable=SC2059
  printf "$FMT" workload metric direct tandem haproxy tandem/haproxy tandem/direct
  for w in keepalive close log; do
    has "$WORKLOADS" "$w" || continue
    metrics="rps p50 p99 pcpu cpureq bcpu bsplit errors"
    [ "$REPEAT" -gt 1 ] && metrics="rps range p50 p99 pcpu cpureq bcpu bsplit errors"
    for m in $metrics; do
      case $m in
        rps) label="req/s" ;; range) label="req/s min-max" ;; p50) label="p50 ms" ;; p99) label="p99 ms" ;;
        pcpu) label="proxy cpu %" ;; cpureq) label="proxy cpu us/req" ;;
        bcpu) label="backends cpu %" ;; bsplit) label="backend split %" ;;
        errors) label="errors" ;;
      esac
      d=$(cell "$w" direct "$m"); tn=$(cell "$w" tandem "$m"); h=$(cell "$w" haproxy "$m")
      [ "$m" = pcpu ] || [ "$m" = cpureq ] && d="-"
      case $m in rps) d=${d%.*}; tn=${tn%.*}; h=${h%.*} ;; esac
      # The log workload is the keepalive workload with Tandem logging: its ratios compare
      # with the keepalive runs of direct and HAProxy (which has no file log).
      hr=$h; dr=$d
      if [ "$w" = log ]; then hr=$(cell keepalive haproxy "$m"); dr=$(cell keepalive direct "$m"); fi
      rh="-"; rd="-"
      case $m in
        rps|p50|p99) rh=$(ratio "$tn" "$hr"); rd=$(ratio "$tn" "$dr") ;;
        pcpu|cpureq) rh=$(ratio "$tn" "$hr") ;;
      esac
      # shellcheck disable=SC2059
      printf "$FMT" "$w" "$label" "$d" "$tn" "$h" "$rh" "$rd"
    done
  done
  echo
  has "$WORKLOADS" keepalive && echo "  keepalive: wrk GET /, keep-alive, $CONNECTIONS conns"
  has "$WORKLOADS" close && echo "  close: wrk GET / with 'Connection: close', $CONNECTIONS conns"
  if has "$WORKLOADS" log; then
    echo "  log: keepalive through a second Tandem with access_log = \"$ACCESS_LOG\""
    echo "       ($LOG_LINES lines, $LOG_BYTES bytes written); its ratios are against the"
    echo "       keepalive direct and HAProxy runs (HAProxy logs only to syslog: no log there)."
  fi
  [ "$REPEAT" -gt 1 ] && echo "  figures are medians of $REPEAT interleaved rounds; errors are summed."
  echo "  direct hits backend 1 only; the proxies balance roundrobin over backends 1 and 2."
  echo "  tandem/haproxy, tandem/direct: above 1 is better for req/s, below 1 for latency and cpu."
  echo "  backend split: share of backend CPU (incl. warm-up) taken by backend 1/backend 2."
  echo "  errors = wrk socket errors + non-2xx responses. Load generator, proxies and backends"
  echo "  share this machine's CPUs: compare within one run."
  echo "  backend 1 totals: $(backend_counters backend1); backend 2 totals: $(backend_counters backend2)"
} | tee "$TABLE"
