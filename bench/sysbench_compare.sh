#!/usr/bin/env bash
# Side-by-side MySQL load comparison: sysbench OLTP workloads against a MariaDB master-master
# pair (scripts/mariadb-pair.sh), run in one go
#   (a) directly at db1,
#   (b) through Tandem's writer frontend,
#   (c) through HAProxy (`mode tcp`, `balance first`),
# with the same number of worker threads for both proxies. Both list db1 then db2, so every
# connection goes to db1 while it is up: HAProxy with `balance first` and a TCP check, Tandem
# with `role = "writer"` and its replication-aware `type = "mysql"` check (the monitor user
# of scripts/mariadb-pair.sh), as an operator would run it.
#
# Usage: bench/sysbench_compare.sh [options]   (every option also has an environment variable)
#   -d, --duration SEC      seconds per measured run                     DURATION=10
#   -c, --clients N         sysbench threads (client connections)        CLIENTS=8
#   -t, --threads N         proxy worker threads (Tandem and HAProxy)    THREADS=1
#   -r, --repeat N          rounds; each rotates the target order, the
#                           table shows medians                          REPEAT=1
#       --tables N          sysbench tables                              TABLES=4
#       --table-size N      rows per table                               TABLE_SIZE=10000
#       --workloads LIST    subset of oltp_point_select,oltp_read_write  WORKLOADS=(both)
#       --targets LIST      subset of direct,tandem,haproxy              TARGETS=(all three)
#       --warmup SEC        unmeasured run before each run (0 = off)     WARMUP=2
#       --tandem PATH       Tandem binary                                TANDEM=<repo>/build/tandem
#       --haproxy PATH      HAProxy binary                               HAPROXY=haproxy
#       --out DIR           keep configs, logs and sysbench outputs      OUT_DIR=(temporary)
#   -h, --help
#
# Needs sysbench, mariadb-server and mariadb-client (scripts/install-deps.sh), haproxy, ss.
# The pair and every process started here stop on exit, failure, Ctrl-C or SIGTERM.
# Everything listens on 127.0.0.1 only.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-1}
REPEAT=${REPEAT:-1}
TABLES=${TABLES:-4}
TABLE_SIZE=${TABLE_SIZE:-10000}
WORKLOADS=${WORKLOADS:-oltp_point_select,oltp_read_write}
TARGETS=${TARGETS:-direct,tandem,haproxy}
WARMUP=${WARMUP:-2}
TANDEM=${TANDEM:-$REPO/build/tandem}
HAPROXY=${HAPROXY:-haproxy}
OUT_DIR=${OUT_DIR:-}

BENCH_NAME=sysbench_compare
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$REPO/bench/lib.sh"

set_option() {
  case $1 in
    -d|--duration) DURATION=$2 ;;
    -c|--clients) CLIENTS=$2 ;;
    -t|--threads) THREADS=$2 ;;
    -r|--repeat) REPEAT=$2 ;;
    --tables) TABLES=$2 ;;
    --table-size) TABLE_SIZE=$2 ;;
    --workloads) WORKLOADS=$2 ;;
    --targets) TARGETS=$2 ;;
    --warmup) WARMUP=$2 ;;
    --tandem) TANDEM=$2 ;;
    --haproxy) HAPROXY=$2 ;;
    --out) OUT_DIR=$2 ;;
    *) return 1 ;;
  esac
}
parse_options "$@"

DURATION=${DURATION%s}
WARMUP=${WARMUP%s}
check_ranges "DURATION:$DURATION:1:3600" "CLIENTS:$CLIENTS:1:1000" "THREADS:$THREADS:1:64" \
  "REPEAT:$REPEAT:1:20" "TABLES:$TABLES:1:64" "TABLE_SIZE:$TABLE_SIZE:1:10000000" \
  "WARMUP:$WARMUP:0:60"
ALL_WORKLOADS="oltp_point_select oltp_read_write"
ALL_TARGETS="direct tandem haproxy"
for w in ${WORKLOADS//,/ }; do
  case $w in oltp_point_select|oltp_read_write) ;; *) die "unknown workload '$w'" ;; esac
done
for t in ${TARGETS//,/ }; do
  case $t in direct|tandem|haproxy) ;; *) die "unknown target '$t'" ;; esac
done

need_tools sysbench mariadb ss
bench_init

# ---------------------------------------------------------------- the MariaDB pair
PAIR_SCRIPT=$REPO/scripts/mariadb-pair.sh
PAIR_DIR=""
# The bootstrapped system tables, shared with the tests' pairs (see scripts/mariadb-pair.sh).
: "${MARIADB_PAIR_TEMPLATE_CACHE:=${TMPDIR:-/tmp}/tandem-mariadb-cache-$(id -u)}"
export MARIADB_PAIR_TEMPLATE_CACHE

stop_pair() {
  [ -n "$PAIR_DIR" ] || return 0
  cp "$PAIR_DIR/db1/error.log" "$WORK/db1.error.log" 2>/dev/null
  cp "$PAIR_DIR/db2/error.log" "$WORK/db2.error.log" 2>/dev/null
  bash "$PAIR_SCRIPT" stop "$PAIR_DIR" >/dev/null 2>&1
  rm -rf "$PAIR_DIR"
  PAIR_DIR=""
}
# lib.sh's cleanup stops the proxies and removes $WORK; the pair goes first. (A watchdog
# started with the pair stops it as well should this shell be killed outright.)
on_exit() {
  local rc=$?
  stop_pair
  (exit "$rc")
  cleanup
}
trap on_exit EXIT

sql_root() {  # sql_root N STATEMENT: as root over db N's socket, no column names
  mariadb --no-defaults -S "$PAIR_DIR/db$1/sock" -uroot -N -B -e "$2"
}
sql_via() {   # sql_via PORT STATEMENT: as the app user over TCP (through a proxy or direct)
  mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$1" -uapp -papppass -N -B \
    --connect-timeout=5 -e "$2" app
}
db2_selects() { sql_root 2 "SHOW GLOBAL STATUS LIKE 'Com_select'" | cut -f2; }

# Both servers hold the same transactions (sysbench's prepare replicated to db2).
wait_caught_up() {
  local a b _
  for _ in $(seq 1 1200); do
    a=$(sql_root 1 "SELECT @@gtid_binlog_pos" | tr ',' '\n' | sort | tr '\n' ,)
    b=$(sql_root 2 "SELECT @@gtid_binlog_pos" | tr ',' '\n' | sort | tr '\n' ,)
    [ -n "$a" ] && [ "$a" = "$b" ] && return 0
    sleep 0.1
  done
  return 1
}

DB1_PORT=$(free_port) || die "no free port"
DB2_PORT=$(free_port) || die "no free port"
[ "$DB1_PORT" != "$DB2_PORT" ] || DB2_PORT=$(free_port) || die "no free port"
PAIR_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sysbench-pair.XXXXXX") || die "mktemp failed"
echo "  starting the MariaDB pair ..." >&2
t0=$(date +%s%3N)
MARIADB_PAIR_OWNER_PID=$$ MARIADB_PAIR_OWNER_CLEANUP=1 \
  bash "$PAIR_SCRIPT" start "$PAIR_DIR" "$DB1_PORT" "$DB2_PORT" >"$WORK/pair.out" 2>&1 ||
  { cat "$WORK/pair.out" >&2; die "the MariaDB pair did not start"; }
PAIR_SECS=$(awk -v ms=$(( $(date +%s%3N) - t0 )) 'BEGIN {printf "%.1f", ms / 1000}')
DB1_PID=$(awk '{print $1}' "$PAIR_DIR/db1/mariadbd.pid")

SB=(--db-driver=mysql --mysql-host=127.0.0.1 --mysql-user=app --mysql-password=apppass
    --mysql-db=app --tables="$TABLES" --table-size="$TABLE_SIZE")
echo "  sysbench prepare: $TABLES tables x $TABLE_SIZE rows on db1 ..." >&2
# Explicit ids (auto_inc off): with auto_increment_increment = 2 the ids would be 1, 3, 5 ...
# and half of sysbench's lookups by id would find no row.
sysbench oltp_read_write "${SB[@]}" --mysql-port="$DB1_PORT" --auto_inc=off \
  --threads="$TABLES" prepare >"$WORK/prepare.txt" 2>&1 ||
  { tail -n 20 "$WORK/prepare.txt" >&2; die "sysbench prepare failed"; }
wait_caught_up || die "db2 did not catch up with the prepared tables"

declare -A PORT STATUS PROC NOTE
PORT[direct]=$DB1_PORT
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
# Writer frontend, plain TCP: the MySQL-aware keys (role, type = "mysql") come later.
[global]
threads = $THREADS
log_level = "warning"

[defaults]
timeout_connect = "2s"
timeout_client = "1h"
timeout_server = "1h"

[[frontend]]
name = "mysql-writer"
listen = "127.0.0.1:${PORT[tandem]}"
backend = "db"

[[backend]]
name = "db"
role = "writer"
on_marked_down = "shutdown-sessions"

[backend.check]
type = "mysql"
user = "monitor"
password = "monitorpass"
interval = "2s"
rise = 2
fall = 3

[[backend.server]]
name = "db1"
address = "127.0.0.1:$DB1_PORT"

[[backend.server]]
name = "db2"
address = "127.0.0.1:$DB2_PORT"
EOF
    if ! "$TANDEM" --check -c "$WORK/tandem.toml" >"$WORK/tandem.check" 2>&1; then
      STATUS[tandem]="bad config"
      NOTE[tandem]=$(head -n 3 "$WORK/tandem.check")
    else
      start_bg tandem "$TANDEM" -c "$WORK/tandem.toml"
      PROC[tandem]=$LAST_PID
      if wait_listen "${PORT[tandem]}" "${PROC[tandem]}"; then
        STATUS[tandem]=ok
      else
        STATUS[tandem]="failed"
        tail -n 20 "$WORK/tandem.err" >&2
      fi
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
    timeout client 1h
    timeout server 1h

listen mysql-writer
    bind 127.0.0.1:${PORT[haproxy]}
    balance first
    server db1 127.0.0.1:$DB1_PORT check inter 2s rise 2 fall 3
    server db2 127.0.0.1:$DB2_PORT check inter 2s rise 2 fall 3
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

# Every target must reach db1 (server_id 1) with the app user.
for t in $ALL_TARGETS; do
  [ "${STATUS[$t]}" = ok ] || continue
  id=$(sql_via "${PORT[$t]}" "SELECT @@server_id" 2>"$WORK/sanity-$t.err")
  if [ "$id" != 1 ]; then
    STATUS[$t]="wrong answer"
    echo "$BENCH_NAME: $t answered server_id '$id' (want 1): $(cat "$WORK/sanity-$t.err")" >&2
  fi
done
[ "${STATUS[direct]}" = ok ] || die "db1 itself fails the sanity check"

# ---------------------------------------------------------------- runs
declare -A R   # R[WORKLOAD,TARGET,ROUND,metric]

# sb_measure WORKLOAD TARGET ROUND: one unmeasured warm-up, one measured run; fills R.
sb_measure() {
  local wl=$1 t=$2 round=$3 key="$1,$2,$3" log t0=0 t1=0 d0 d1 s0 s1 rc ppid
  log="$WORK/sb-$wl-$t-$round.txt"
  ppid=${PROC[$t]}
  if [ "$WARMUP" -gt 0 ]; then
    run_fg /dev/null timeout $((WARMUP + 60)) sysbench "$wl" "${SB[@]}" \
      --mysql-port="${PORT[$t]}" --threads="$CLIENTS" --time="$WARMUP" run
  fi
  s0=$(db2_selects)
  # shellcheck disable=SC2086  # ppid is empty or one pid
  { [ -n "$ppid" ] && t0=$(cpu_ticks $ppid); d0=$(cpu_ticks "$DB1_PID"); }
  run_fg "$log" timeout $((DURATION + 60)) sysbench "$wl" "${SB[@]}" \
    --mysql-port="${PORT[$t]}" --threads="$CLIENTS" --time="$DURATION" --percentile=95 run
  rc=$?
  # shellcheck disable=SC2086
  { [ -n "$ppid" ] && t1=$(cpu_ticks $ppid); d1=$(cpu_ticks "$DB1_PID"); }
  s1=$(db2_selects)
  if [ $rc -ne 0 ] || ! grep -q 'queries:' "$log"; then
    R[$key,status]="sysbench failed"
    return
  fi
  local secs queries
  secs=$(awk '/total time:/ {v = $3; sub(/s$/, "", v); print v}' "$log")
  queries=$(awk '$1 == "queries:" {print $2}' "$log")
  R[$key,status]=ok
  R[$key,qps]=$(awk '$1 == "queries:" {v = $3; sub(/^\(/, "", v); print v}' "$log")
  R[$key,tps]=$(awk '$1 == "transactions:" {v = $3; sub(/^\(/, "", v); print v}' "$log")
  R[$key,p95]=$(awk '/95th percentile:/ {print $3}' "$log")
  R[$key,errors]=$(awk '/ignored errors:|reconnects:/ {s += $(NF - 2)} END {print s + 0}' "$log")
  R[$key,db2sel]=$((s1 - s0))
  R[$key,dbcpu]=$(awk -v d=$((d1 - d0)) -v hz="$CLK_TCK" -v t="$secs" \
                  'BEGIN {printf "%.0f", 100 * d / hz / t}')
  if [ -n "$ppid" ]; then
    R[$key,pcpu]=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v t="$secs" \
                   'BEGIN {printf "%.0f", 100 * d / hz / t}')
    R[$key,cpuq]=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$queries" \
                   'BEGIN {if (n > 0) printf "%.1f", 1e6 * d / hz / n; else print "-"}')
  fi
}

echo "Tandem vs HAProxy, MySQL writer (TCP mode, balance first): sysbench $CLIENTS clients," \
     "proxy threads=$THREADS, ${DURATION}s per run, $REPEAT round(s), $(nproc) CPUs"
echo "  $(mariadb --version | awk '{print $5}' | tr -d ,) pair up in ${PAIR_SECS}s," \
     "$TABLES tables x $TABLE_SIZE rows; haproxy $("$HAPROXY" -v 2>/dev/null | head -n 1 |
     awk '{print $3}'); tandem: $TANDEM (${STATUS[tandem]})"
for ((round = 1; round <= REPEAT; round++)); do
  order=()
  for t in $ALL_TARGETS; do order+=("$t"); done
  for ((k = 1; k < round; k++)); do order=("${order[@]:1}" "${order[0]}"); done
  for w in $ALL_WORKLOADS; do
    has "$WORKLOADS" "$w" || continue
    for t in "${order[@]}"; do
      if ! has "$TARGETS" "$t" || [ "${STATUS[$t]}" != ok ]; then continue; fi
      echo "  round $round: $w -> $t ..." >&2
      sb_measure "$w" "$t" "$round"
    done
  done
done

# ---------------------------------------------------------------- table
# cell WORKLOAD TARGET METRIC: the median over rounds (sum for errors and db2 selects).
cell() {
  local w=$1 t=$2 m=$3 vals=() r
  if ! has "$TARGETS" "$t"; then echo "-"; return; fi
  if [ "${STATUS[$t]}" != ok ]; then echo "${STATUS[$t]}"; return; fi
  for ((r = 1; r <= REPEAT; r++)); do
    if [ "${R[$w,$t,$r,status]:-}" != ok ]; then echo "${R[$w,$t,$r,status]:-n/a}"; return; fi
    vals+=("${R[$w,$t,$r,$m]:--}")
  done
  if [ "$m" = errors ] || [ "$m" = db2sel ]; then
    printf '%s\n' "${vals[@]}" | awk '{s += $1} END {print s + 0}'
  else
    printf '%s\n' "${vals[@]}" | sort -g |
      awk '{v[NR] = $1} END {if (v[1] == "-") print "-"; else if (NR % 2) print v[(NR + 1) / 2];
                             else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
  fi
}
TABLE=$WORK/table.txt
{
  printf '%-17s %-17s %10s %12s %12s %15s %14s\n' workload metric direct tandem haproxy \
    tandem/haproxy tandem/direct
  for w in $ALL_WORKLOADS; do
    has "$WORKLOADS" "$w" || continue
    for m in qps tps p95 pcpu cpuq dbcpu errors db2sel; do
      case $m in
        qps) label="queries/s" ;; tps) label="transactions/s" ;; p95) label="p95 ms" ;;
        pcpu) label="proxy cpu %" ;; cpuq) label="proxy cpu us/q" ;; dbcpu) label="db1 cpu %" ;;
        errors) label="errors" ;; db2sel) label="selects on db2" ;;
      esac
      d=$(cell "$w" direct "$m"); tn=$(cell "$w" tandem "$m"); h=$(cell "$w" haproxy "$m")
      if [ "$m" = pcpu ] || [ "$m" = cpuq ]; then d="-"; fi
      case $m in qps|tps) d=${d%.*}; tn=${tn%.*}; h=${h%.*} ;; esac
      rh="-"; rd="-"
      case $m in
        qps|tps|p95) rh=$(ratio "$tn" "$h"); rd=$(ratio "$tn" "$d") ;;
        pcpu|cpuq) rh=$(ratio "$tn" "$h") ;;
      esac
      printf '%-17s %-17s %10s %12s %12s %15s %14s\n' "$w" "$label" "$d" "$tn" "$h" "$rh" "$rd"
    done
  done
  echo
  echo "  ratios: above 1 is better for queries/s and transactions/s, below 1 for p95 and cpu."
  echo "  p95 is sysbench's latency per transaction: 1 statement in oltp_point_select, 20 in"
  echo "  oltp_read_write (18 queries, BEGIN, COMMIT), each commit waiting for db2's semi-sync ack."
  echo "  selects on db2: sysbench's reads all go to db1 (balance first / the writer role); what"
  echo "  the counter shows is Tandem's replication check of db2 (a few SELECTs every 2 s),"
  echo "  which runs during every column since Tandem stays up for the whole run."
  echo "  sysbench, the proxy and both servers share this machine's CPUs: compare within one run."
  for t in tandem haproxy; do
    if [ -n "${NOTE[$t]:-}" ]; then
      echo "  note: $t: ${NOTE[$t]}"
    fi
  done
} | tee "$TABLE"
