#!/usr/bin/env bash
# Side-by-side TCP-mode load comparison: the same wrk workloads run
#   (a) directly at the benchmark backend,
#   (b) through Tandem in TCP mode,
#   (c) through HAProxy in `mode tcp`,
# in one run, with the same number of worker threads for both proxies.
#
# Usage: bench/tcp_compare.sh [options]     (every option also has an environment variable)
#   -d, --duration SEC        seconds per measured run                  DURATION=10
#   -c, --connections N       wrk connections, keepalive/close runs     CONNECTIONS=50
#   -t, --threads N           proxy worker threads (Tandem and HAProxy) THREADS=1
#       --wrk-threads N       wrk threads                               WRK_THREADS=1
#       --backend-threads N   backend threads                           BACKEND_THREADS=1
#       --bulk-size BYTES     body size of the bulk workload            BULK_SIZE=1048576
#       --bulk-connections N  wrk connections for the bulk workload     BULK_CONNECTIONS=4
#       --workloads LIST      subset of keepalive,close,bulk            WORKLOADS=keepalive,close,bulk
#       --targets LIST        subset of direct,tandem,haproxy           TARGETS=direct,tandem,haproxy
#       --warmup SEC          unmeasured wrk run before each run (0=off) WARMUP=1
#       --tandem PATH         Tandem binary                             TANDEM=<repo>/build/tandem
#       --backend PATH        tandem_bench_backend binary               BACKEND_BIN=(searched)
#       --haproxy PATH        HAProxy binary                            HAPROXY=haproxy
#       --out DIR             keep configs, logs and wrk outputs here   OUT_DIR=(temporary)
#   -h, --help
#
# Every process this script starts is stopped on exit, failure, Ctrl-C or SIGTERM.
# Everything listens on 127.0.0.1 only.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-1}
WRK_THREADS=${WRK_THREADS:-1}
BACKEND_THREADS=${BACKEND_THREADS:-1}
BULK_SIZE=${BULK_SIZE:-1048576}
BULK_CONNECTIONS=${BULK_CONNECTIONS:-4}
WORKLOADS=${WORKLOADS:-keepalive,close,bulk}
TARGETS=${TARGETS:-direct,tandem,haproxy}
WARMUP=${WARMUP:-1}
TANDEM=${TANDEM:-$REPO/build/tandem}
BACKEND_BIN=${BACKEND_BIN:-}
HAPROXY=${HAPROXY:-haproxy}
OUT_DIR=${OUT_DIR:-}

BENCH_NAME=tcp_compare
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$REPO/bench/lib.sh"

set_option() {
  case $1 in
    -d|--duration) DURATION=$2 ;;
    -c|--connections) CONNECTIONS=$2 ;;
    -t|--threads) THREADS=$2 ;;
    --wrk-threads) WRK_THREADS=$2 ;;
    --backend-threads) BACKEND_THREADS=$2 ;;
    --bulk-size) BULK_SIZE=$2 ;;
    --bulk-connections) BULK_CONNECTIONS=$2 ;;
    --workloads) WORKLOADS=$2 ;;
    --targets) TARGETS=$2 ;;
    --warmup) WARMUP=$2 ;;
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
  "THREADS:$THREADS:1:64" "WRK_THREADS:$WRK_THREADS:1:64" \
  "BACKEND_THREADS:$BACKEND_THREADS:1:64" "BULK_SIZE:$BULK_SIZE:1:1099511627776" \
  "BULK_CONNECTIONS:$BULK_CONNECTIONS:1:10000" "WARMUP:$WARMUP:0:60"
[ "$WRK_THREADS" -le "$CONNECTIONS" ] || die "wrk needs at least one connection per thread"
[ "$WRK_THREADS" -le "$BULK_CONNECTIONS" ] || die "wrk needs at least one bulk connection per thread"
for w in ${WORKLOADS//,/ }; do
  case $w in keepalive|close|bulk) ;; *) die "unknown workload '$w'" ;; esac
done
for t in ${TARGETS//,/ }; do
  case $t in direct|tandem|haproxy) ;; *) die "unknown target '$t'" ;; esac
done

need_tools wrk curl ss
BACKEND_BIN=$(find_backend_bin "$REPO") || exit 1

bench_init

# Checks that a target answers a small request and the full bulk body.
sanity() {
  local port=$1 body size
  body=$(curl -s --max-time 5 "http://127.0.0.1:$port/") || return 1
  [ "$body" = "ok" ] || return 1
  size=$(curl -s --max-time 30 -o /dev/null -w '%{size_download}' \
         "http://127.0.0.1:$port/bytes/$BULK_SIZE") || return 1
  [ "$size" = "$BULK_SIZE" ]
}

# ---------------------------------------------------------------- backend
start_backend backend "$BACKEND_BIN" "$BACKEND_THREADS"
BACKEND_PID=$LAST_PID
BACKEND_PORT=$LAST_PORT

declare -A PORT STATUS PROC
PORT[direct]=$BACKEND_PORT
STATUS[direct]=ok
PROC[direct]=""
STATUS[tandem]="skipped"
STATUS[haproxy]="skipped"

# ---------------------------------------------------------------- Tandem
if has "$TARGETS" tandem; then
  if [ ! -x "$TANDEM" ]; then
    STATUS[tandem]="not built"
  else
    PORT[tandem]=$(free_port) || die "no free port"
    cat >"$WORK/tandem.toml" <<EOF
[global]
threads = $THREADS
log_level = "warning"

[defaults]
timeout_connect = "2s"
timeout_client = "30s"
timeout_server = "30s"

[[frontend]]
name = "bench"
listen = "127.0.0.1:${PORT[tandem]}"
backend = "app"

[[backend]]
name = "app"
balance = "roundrobin"

[[backend.server]]
name = "s1"
address = "127.0.0.1:$BACKEND_PORT"
EOF
    start_bg tandem "$TANDEM" -c "$WORK/tandem.toml"
    PROC[tandem]=$LAST_PID
    if wait_listen "${PORT[tandem]}" "${PROC[tandem]}"; then
      STATUS[tandem]=ok
    else
      STATUS[tandem]="failed"
      echo "tcp_compare: Tandem did not start; its stderr:" >&2
      tail -n 20 "$WORK/tandem.err" >&2
    fi
  fi
fi

# ---------------------------------------------------------------- HAProxy
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
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend bench
    bind 127.0.0.1:${PORT[haproxy]}
    default_backend app

backend app
    balance roundrobin
    server s1 127.0.0.1:$BACKEND_PORT
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

for t in direct tandem haproxy; do
  if [ "${STATUS[$t]}" = ok ] && ! sanity "${PORT[$t]}"; then
    STATUS[$t]="wrong answer"
    echo "tcp_compare: $t failed the sanity check (GET / and GET /bytes/$BULK_SIZE)" >&2
  fi
done
[ "${STATUS[direct]}" = ok ] || die "the backend itself fails the sanity check"

# ---------------------------------------------------------------- runs
# run_wrk NAME TARGET CONNS PATH [extra wrk args...]: one measured run; fills R[NAME,TARGET,*].
run_wrk() {
  local name=$1 target=$2 conns=$3 path=$4; shift 4
  wrk_measure "$name,$target" "http://127.0.0.1:${PORT[$target]}$path" "$conns" \
    "${PROC[$target]}" "$BACKEND_PID" "$@"
  [ "${R[$name,$target,status]}" = ok ] &&
    R[$name,$target,mbps]=$(awk -v r="${R[$name,$target,rps]}" -v s="$BULK_SIZE" \
                            'BEGIN {printf "%.1f", r * s / 1e6}')
}

declare -A WL_CONNS WL_PATH WL_DESC
WL_CONNS[keepalive]=$CONNECTIONS; WL_PATH[keepalive]=/
WL_DESC[keepalive]="keep-alive GET /, ${CONNECTIONS} conns"
WL_CONNS[close]=$CONNECTIONS; WL_PATH[close]=/
WL_DESC[close]="Connection: close GET /, ${CONNECTIONS} conns"
WL_CONNS[bulk]=$BULK_CONNECTIONS; WL_PATH[bulk]=/bytes/$BULK_SIZE
WL_DESC[bulk]="GET /bytes/$BULK_SIZE, ${BULK_CONNECTIONS} conns"

echo "Tandem vs HAProxy (TCP mode): proxy threads=$THREADS, backend threads=$BACKEND_THREADS," \
     "wrk -t$WRK_THREADS, ${DURATION}s per run, $(nproc) CPUs"
echo "  haproxy: $("$HAPROXY" -v 2>/dev/null | head -n 1 | awk '{print $3}')  tandem: $TANDEM" \
     "(${STATUS[tandem]})  backend: 127.0.0.1:$BACKEND_PORT"
for w in keepalive close bulk; do
  has "$WORKLOADS" "$w" || continue
  for t in direct tandem haproxy; do
    has "$TARGETS" "$t" || continue
    [ "${STATUS[$t]}" = ok ] || continue
    echo "  running $w -> $t ..." >&2
    if [ "$w" = close ]; then
      run_wrk "$w" "$t" "${WL_CONNS[$w]}" "${WL_PATH[$w]}" -H 'Connection: close'
    else
      run_wrk "$w" "$t" "${WL_CONNS[$w]}" "${WL_PATH[$w]}"
    fi
  done
done

# ---------------------------------------------------------------- table
cell() {  # cell WORKLOAD TARGET METRIC
  local w=$1 t=$2 m=$3
  if ! has "$TARGETS" "$t"; then echo "-"; return; fi
  if [ "${STATUS[$t]}" != ok ]; then echo "${STATUS[$t]}"; return; fi
  if [ "${R[$w,$t,status]:-}" != ok ]; then echo "${R[$w,$t,status]:-n/a}"; return; fi
  echo "${R[$w,$t,$m]:--}"
}
TABLE=$WORK/table.txt
{
  printf '%-10s %-16s %12s %12s %12s %15s\n' workload metric direct tandem haproxy tandem/haproxy
  for w in keepalive close bulk; do
    has "$WORKLOADS" "$w" || continue
    if [ "$w" = bulk ]; then metrics="mbps rps p50 p99 pcpu cpureq bcpu errors"
    else metrics="rps p50 p99 pcpu cpureq bcpu errors"; fi
    for m in $metrics; do
      case $m in
        rps) label="req/s" ;; mbps) label="MB/s" ;; p50) label="p50 ms" ;; p99) label="p99 ms" ;;
        pcpu) label="proxy cpu %" ;; cpureq) label="proxy cpu us/req" ;;
        bcpu) label="backend cpu %" ;; errors) label="errors" ;;
      esac
      d=$(cell "$w" direct "$m"); tn=$(cell "$w" tandem "$m"); h=$(cell "$w" haproxy "$m")
      [ "$m" = pcpu ] || [ "$m" = cpureq ] && d="-"
      case $m in rps) d=${d%.*}; tn=${tn%.*}; h=${h%.*} ;; esac
      r="-"; [ "$m" != errors ] && [ "$m" != bcpu ] && r=$(ratio "$tn" "$h")
      printf '%-10s %-16s %12s %12s %12s %15s\n' "$w" "$label" "$d" "$tn" "$h" "$r"
    done
  done
  echo
  for w in keepalive close bulk; do
    has "$WORKLOADS" "$w" && echo "  $w: ${WL_DESC[$w]}"
  done
  echo "  tandem/haproxy: above 1 is better for req/s and MB/s, below 1 is better for latency and cpu."
  echo "  MB/s = 10^6 body bytes per second; errors = wrk socket errors + non-2xx responses."
  echo "  Load generator, proxies and backend share this machine's CPUs: compare within one run."
} | tee "$TABLE"
