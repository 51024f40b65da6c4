# shellcheck shell=bash
# shellcheck disable=SC2034  # R and the other globals are read by the sourcing scripts
# Shared helpers for the side-by-side comparison scripts (tcp_compare.sh, http_compare.sh).
# Source it after setting BENCH_NAME (used in messages and the temporary directory name):
#
#   BENCH_NAME=http_compare; . "$REPO/bench/lib.sh"; bench_init
#
# Globals it reads: WARMUP, DURATION, WRK_THREADS (wrk_measure), OUT_DIR (cleanup).
# Globals it sets: WORK (temporary directory), PIDS, FG_PID, LAST_PID, LAST_PORT, CLK_TCK, R.
# Every process started through start_bg/run_fg is stopped on exit, failure, Ctrl-C or
# SIGTERM. Everything listens on 127.0.0.1 only.

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
# -h/--help prints the calling script's header comment (down to its `set -uo` line).
usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; }

# Reads "--option value" pairs through the script's own `set_option OPTION VALUE`, which sets
# its variable and returns 1 for an option it does not know.
parse_options() {
  while [ $# -gt 0 ]; do
    case $1 in -h|--help) usage; exit 0 ;; esac
    [ $# -ge 2 ] || die "option $1 needs a value (see --help)"
    set_option "$1" "$2" || die "unknown option $1 (see --help)"
    shift 2
  done
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
has() { [[ ",$1," == *",$2,"* ]]; }   # has LIST ITEM: ITEM is in the comma-separated LIST

# check_ranges NAME:VALUE:LO:HI...: dies unless every VALUE is an integer in [LO, HI].
check_ranges() {
  local pair name value lo hi
  for pair in "$@"; do
    IFS=: read -r name value lo hi <<<"$pair"
    if ! is_uint "$value" || [ "$value" -lt "$lo" ] || [ "$value" -gt "$hi" ]; then
      die "$name must be an integer in [$lo, $hi], got '$value'"
    fi
  done
}

need_tools() {
  local t
  for t in "$@"; do command -v "$t" >/dev/null || die "$t not found"; done
}

# find_backend_bin REPO: prints the tandem_bench_backend to use (BACKEND_BIN if set).
find_backend_bin() {
  local repo=$1 cand
  if [ -z "${BACKEND_BIN:-}" ]; then
    for cand in "$repo/build-bench/bench/tandem_bench_backend" "$repo/build/bench/tandem_bench_backend"; do
      if [ -x "$cand" ]; then BACKEND_BIN=$cand; break; fi
    done
  fi
  if [ -z "${BACKEND_BIN:-}" ] || [ ! -x "$BACKEND_BIN" ]; then
    die "tandem_bench_backend not found; build it with
  cmake -S $repo -B $repo/build -DCMAKE_BUILD_TYPE=Release && cmake --build $repo/build -j2 --target tandem_bench_backend
or pass --backend PATH"
  fi
  echo "$BACKEND_BIN"
}

# ---------------------------------------------------------------- process bookkeeping
PIDS=()      # long-lived processes (backends, proxies)
FG_PID=""    # the wrk run in progress, if any

bench_init() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/$BENCH_NAME.XXXXXX") || die "mktemp failed"
  trap cleanup EXIT
  trap 'echo "$BENCH_NAME: interrupted" >&2; exit 130' INT
  trap 'echo "$BENCH_NAME: terminated" >&2; exit 143' TERM
}

# stop_pids PID...: SIGTERM, at most 3 s of grace, then SIGKILL; reaps them.
stop_pids() {
  local pid alive _
  [ $# -gt 0 ] || return 0
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 1 30); do
    alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for pid in "$@"; do kill -KILL "$pid" 2>/dev/null; done
  for pid in "$@"; do wait "$pid" 2>/dev/null; done
}

# stop_all: stops every process started so far (the script may call it before printing
# figures that the processes only report when they exit).
stop_all() {
  [ -n "$FG_PID" ] && PIDS+=("$FG_PID")
  FG_PID=""
  stop_pids "${PIDS[@]}"
  PIDS=()
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all
  wait 2>/dev/null
  if [ -n "${OUT_DIR:-}" ]; then
    mkdir -p "$OUT_DIR" && cp -r "$WORK"/. "$OUT_DIR"/ && echo "logs kept in $OUT_DIR" >&2
  fi
  rm -rf "$WORK"
  exit "$rc"
}

# Starts "$@" in the background with stdout/stderr to $1-named logs; sets LAST_PID.
start_bg() {
  local name=$1; shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# run_fg LOG CMD...: runs CMD as a killable child with its output in LOG and waits for it
# (a trapped signal interrupts the wait). The redirection stays on the child so that a trap
# handler running meanwhile still writes to the script's own stderr.
run_fg() {
  local rc log=$1
  shift
  "$@" >"$log" 2>&1 &
  FG_PID=$!
  wait "$FG_PID"
  rc=$?
  FG_PID=""
  return $rc
}

# A free port outside the ephemeral range (checked with ss; a small race is acceptable).
free_port() {
  local p _
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    if [ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]; then echo "$p"; return 0; fi
  done
  return 1
}

# Waits (at most 10 s) until 127.0.0.1:$1 accepts while process $2 is alive.
wait_listen() {
  local port=$1 pid=$2 _
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  return 1
}

# start_backend NAME BIN THREADS: starts one tandem_bench_backend on a free loopback port;
# sets LAST_PID and LAST_PORT, dies if it does not come up.
start_backend() {
  local name=$1 bin=$2 threads=$3 port_file="$WORK/$1.port" pid _
  start_bg "$name" "$bin" --host 127.0.0.1 --port 0 --threads "$threads" --port-file "$port_file"
  pid=$LAST_PID
  for _ in $(seq 1 100); do
    [ -s "$port_file" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -s "$port_file" ] || { cat "$WORK/$name.err" >&2; die "$name did not start"; }
  LAST_PORT=$(cat "$port_file")
  wait_listen "$LAST_PORT" "$pid" || die "$name not listening"
}

# utime+stime of the given processes (all their threads), in clock ticks.
cpu_ticks() {
  local stat f pid sum=0
  for pid in "$@"; do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    stat=${stat##*) }   # drop "pid (comm) "; f[0] is field 3, so utime (14) is f[11]
    read -ra f <<<"$stat"
    sum=$(( sum + f[11] + f[12] ))
  done
  echo "$sum"
}
CLK_TCK=$(getconf CLK_TCK)

# Converts a wrk latency ("256.00us", "1.27ms", "1.02s", "1.50m") to milliseconds.
lat_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    else if (u == "h") n *= 3600000
    printf "%.3f", n }'
}

# ratio A B: A/B with two decimals, or "-" when either is not a number or B is 0.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.2f", a / b; else print "-" }'
}

# ---------------------------------------------------------------- one measured wrk run
declare -gA R   # R[KEY,metric]

# wrk_measure KEY URL CONNS "PROXY_PIDS" "BACKEND_PIDS" [extra wrk args...]
# One unmeasured warm-up (WARMUP s, 0 = none), then one measured run of DURATION s with
# --latency. Fills R[KEY,status] ("ok" or "wrk failed") and, when ok, R[KEY,rps|p50|p99|
# reqs|secs|errors|bcpu] plus R[KEY,pcpu|cpureq] when PROXY_PIDS is not empty. The wrk
# output is kept in $WORK/wrk-KEY.txt (commas in KEY become dashes).
wrk_measure() {
  local key=$1 url=$2 conns=$3 ppids=$4 bpids=$5; shift 5
  local log="$WORK/wrk-${key//,/-}.txt" t0=0 t1=0 b0 b1 rc
  if [ "$WARMUP" -gt 0 ]; then
    run_fg /dev/null timeout $((WARMUP + 15)) wrk -t"$WRK_THREADS" -c"$conns" -d"${WARMUP}s" \
      "$@" "$url"
  fi
  sleep 0.5
  # shellcheck disable=SC2086  # pid lists are space-separated on purpose
  { [ -n "$ppids" ] && t0=$(cpu_ticks $ppids); b0=$(cpu_ticks $bpids); }
  run_fg "$log" timeout $((DURATION + 30)) wrk -t"$WRK_THREADS" -c"$conns" -d"${DURATION}s" \
    --latency "$@" "$url"
  rc=$?
  # shellcheck disable=SC2086
  { [ -n "$ppids" ] && t1=$(cpu_ticks $ppids); b1=$(cpu_ticks $bpids); }
  if [ $rc -ne 0 ] || ! grep -q '^Requests/sec:' "$log"; then
    R[$key,status]="wrk failed"
    return
  fi
  local rps p50 p99 reqs errs secs
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$log")
  p50=$(awk '$1 == "50%" {print $2}' "$log")
  p99=$(awk '$1 == "99%" {print $2}' "$log")
  reqs=$(awk '/ requests in / {print $1}' "$log")
  secs=$(awk '/ requests in / {v = $4; sub(/s,$/, "", v); print v}' "$log")
  errs=$(awk '/Socket errors:/ {gsub(/,/, ""); s += $4 + $6 + $8 + $10}
              /Non-2xx or 3xx responses:/ {s += $NF} END {print s + 0}' "$log")
  R[$key,status]=ok
  R[$key,rps]=$rps
  R[$key,p50]=$(lat_ms "$p50")
  R[$key,p99]=$(lat_ms "$p99")
  R[$key,reqs]=$reqs
  R[$key,secs]=$secs
  R[$key,errors]=$errs
  R[$key,bcpu]=$(awk -v d=$((b1 - b0)) -v hz="$CLK_TCK" -v t="$secs" \
                 'BEGIN {printf "%.0f", 100 * d / hz / t}')
  if [ -n "$ppids" ]; then
    R[$key,pcpu]=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v t="$secs" \
                   'BEGIN {printf "%.0f", 100 * d / hz / t}')
    R[$key,cpureq]=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$reqs" \
                     'BEGIN {if (n > 0) printf "%.1f", 1e6 * d / hz / n; else print "-"}')
  fi
}
