#!/usr/bin/env bash
# The README's main command: the compose stack of deploy/docker-compose.yml as local
# processes on loopback, without Docker. It installs what is needed, builds Tandem, and
# starts
#   web1, web2   two `php -S` web servers serving deploy/app/ (ports 8091, 8092)
#   db1, db2     a MariaDB master-master pair with GTID and semi-sync (ports 3316, 3317),
#                from scripts/mariadb-pair.sh, in a temporary directory outside the repo
#   tandem       deploy/tandem-demo.toml: HTTP on 8090, MySQL writer on 3306, readers on
#                3307, admin on 8081 with a fresh token
# then prints the URLs and runs until Ctrl-C (SIGINT) or SIGTERM, when it stops every
# process it started and removes the temporary directory. Nothing is written in the repo
# except the build directory.
#
# Environment (for tests and for machines where the default ports are taken):
#   DEMO_HTTP_PORT, DEMO_MYSQL_WRITE_PORT, DEMO_MYSQL_READ_PORT, DEMO_ADMIN_PORT
#   DEMO_WEB1_PORT, DEMO_WEB2_PORT, DEMO_DB1_PORT, DEMO_DB2_PORT
#   DEMO_SKIP_BUILD=1      use the binary as it is: no apt, no build
#   TANDEM_BINARY=PATH     the tandem binary (default build/tandem)
#   MARIADB_PAIR_TEMPLATE_CACHE=DIR   passed on to scripts/mariadb-pair.sh (faster starts)
# shellcheck disable=SC2317  # cleanup, on_signal and the wait_for probes run indirectly
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

# Each port: the variable this script uses, the environment variable that sets it, default.
PORTS=(
  HTTP_PORT:DEMO_HTTP_PORT:8090 WRITE_PORT:DEMO_MYSQL_WRITE_PORT:3306
  READ_PORT:DEMO_MYSQL_READ_PORT:3307 ADMIN_PORT:DEMO_ADMIN_PORT:8081
  WEB1_PORT:DEMO_WEB1_PORT:8091 WEB2_PORT:DEMO_WEB2_PORT:8092
  DB1_PORT:DEMO_DB1_PORT:3316 DB2_PORT:DEMO_DB2_PORT:3317
)
for entry in "${PORTS[@]}"; do
  IFS=: read -r var env_name default <<<"$entry"
  printf -v "$var" '%s' "${!env_name:-$default}"
done
TANDEM=${TANDEM_BINARY:-$REPO/build/tandem}
START_TIMEOUT=90   # seconds for each service to come up

log() { echo "demo: $*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------- checks before anything

# Every port must be a number, used once, and free: a clear message now beats a half-started
# stack. A port counts as taken when something on this machine accepts connections on it.
check_ports() {
  local entry var env_name default port seen=" "
  for entry in "${PORTS[@]}"; do
    IFS=: read -r var env_name default <<<"$entry"
    port=${!var}
    if ! [[ $port =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
      die "$env_name: '$port' is not a port number"
    fi
    [[ $seen != *" $port "* ]] || die "$env_name: port $port is already used by another setting"
    seen+="$port "
    if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
      die "port $port is already in use on 127.0.0.1: stop what listens there, or choose" \
        "another port with $env_name=... (the variables are listed in scripts/demo.sh)"
    fi
  done
}

# ---------------------------------------------------------------- processes and cleanup

TMP=""
PIDS=()       # php and tandem: each leads its own process group (setsid)
WATCHDOG=""
STOPPING=""

stop_group() {
  local pid=$1 i
  kill -TERM -- "-$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do   # up to 10 s, Tandem's hard_stop_after is 5 s
    alive "$pid" || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  [ -z "$STOPPING" ] || return 0
  STOPPING=1
  trap - EXIT INT TERM
  log "stopping"
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_group "${PIDS[i]}"; done
  if [ -n "$TMP" ] && [ -d "$TMP/pair" ]; then
    MARIADB_PAIR_STOP_GRACE=10 scripts/mariadb-pair.sh stop "$TMP/pair" >/dev/null 2>&1 || true
  fi
  [ -z "$WATCHDOG" ] || kill -TERM -- "-$WATCHDOG" 2>/dev/null || true
  [ -z "$TMP" ] || rm -rf "$TMP"
  log "stopped"
  exit "$status"
}

on_signal() {
  log "$1 received"
  exit 0
}

# If this script is killed outright (SIGKILL), nobody runs cleanup: a watchdog in its own
# session waits for our pid to go and then stops what we started. (The MariaDB pair has its
# own watchdog, started by mariadb-pair.sh.)
start_watchdog() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  setsid bash -c '
    tail --pid="$1" -f /dev/null
    for pid in $(cat "$2/pids" 2>/dev/null); do kill -KILL -- "-$pid" 2>/dev/null; done
    "$3" stop "$2/pair"
    rm -rf "$2"' demo-watchdog "$$" "$TMP" "$REPO/scripts/mariadb-pair.sh" \
    >/dev/null 2>&1 </dev/null &
  WATCHDOG=$!
}

# A process that exited but was not reaped yet (a zombie) still answers kill -0.
alive() {
  local state
  state=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) && [ "$state" != Z ]
}

# spawn NAME LOG COMMAND...: runs COMMAND as the leader of a new process group (so that
# stopping it takes its children too), its output to LOG ("-": ours), and records its pid.
spawn() {
  local name=$1 out=$2
  shift 2
  if [ "$out" = - ]; then
    setsid "$@" </dev/null &
  else
    setsid "$@" </dev/null >"$out" 2>&1 &
  fi
  PIDS+=($!)
  echo "$!" >>"$TMP/pids"
  log "$name started (pid $!)"
}

# wait_for WHAT COMMAND...: polls COMMAND until it succeeds; fails when a started process
# died or START_TIMEOUT passes.
wait_for() {
  local what=$1 deadline=$((SECONDS + START_TIMEOUT)) pid
  shift
  until "$@" >/dev/null 2>&1; do
    for pid in "${PIDS[@]}"; do
      alive "$pid" || die "a process died while waiting for $what (pid $pid; logs in $TMP)"
    done
    [ "$SECONDS" -lt "$deadline" ] || die "$what did not come up in ${START_TIMEOUT}s"
    sleep 0.2
  done
}

http_ok() { curl -fsS --max-time 2 -o /dev/null "$1"; }

# ---------------------------------------------------------------- the stack

build() {
  if [ "${DEMO_SKIP_BUILD:-}" = 1 ]; then
    return
  fi
  bash scripts/install-deps.sh
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j"$(nproc)" --target tandem
}

start_web() {
  local n port
  for n in 1 2; do
    port=WEB${n}_PORT
    port=${!port}
    # Sessions go to the temporary directory, not php's default /tmp, so that nothing stays.
    spawn "web$n" "$TMP/web$n.log" env WEB_NAME="web$n" PHP_CLI_SERVER_WORKERS=4 \
      DB_WRITE_HOST=127.0.0.1 DB_WRITE_PORT="$WRITE_PORT" \
      DB_READ_HOST=127.0.0.1 DB_READ_PORT="$READ_PORT" \
      DB_USER=app DB_PASSWORD=apppass DB_NAME=app \
      php -d session.save_path="$TMP/sessions" -d log_errors=1 -d display_errors=0 \
      -S "127.0.0.1:$port" -t "$REPO/deploy/app"
  done
  wait_for "web1" http_ok "http://127.0.0.1:$WEB1_PORT/health.php"
  wait_for "web2" http_ok "http://127.0.0.1:$WEB2_PORT/health.php"
}

start_databases() {
  log "starting the MariaDB pair on $DB1_PORT and $DB2_PORT (a few seconds)"
  # The pair's own watchdog stops it if this script disappears without cleaning up.
  if ! MARIADB_PAIR_OWNER_PID=$$ scripts/mariadb-pair.sh start "$TMP/pair" \
      "$DB1_PORT" "$DB2_PORT" >"$TMP/pair.log" 2>&1; then
    cat "$TMP/pair.log" >&2
    die "the MariaDB pair did not start"
  fi
}

# The demo's copy of deploy/tandem-demo.toml: its ports replaced by ours, a new token.
write_config() {
  TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  sed -e "s/\"127.0.0.1:8090\"/\"127.0.0.1:$HTTP_PORT\"/" \
    -e "s/\"127.0.0.1:3306\"/\"127.0.0.1:$WRITE_PORT\"/" \
    -e "s/\"127.0.0.1:3307\"/\"127.0.0.1:$READ_PORT\"/" \
    -e "s/\"127.0.0.1:8081\"/\"127.0.0.1:$ADMIN_PORT\"/" \
    -e "s/\"127.0.0.1:8091\"/\"127.0.0.1:$WEB1_PORT\"/" \
    -e "s/\"127.0.0.1:8092\"/\"127.0.0.1:$WEB2_PORT\"/" \
    -e "s/\"127.0.0.1:3316\"/\"127.0.0.1:$DB1_PORT\"/" \
    -e "s/\"127.0.0.1:3317\"/\"127.0.0.1:$DB2_PORT\"/" \
    -e "s/^token = .*/token = \"$TOKEN\"/" \
    deploy/tandem-demo.toml >"$TMP/tandem.toml"
  "$TANDEM" --check -c "$TMP/tandem.toml" >/dev/null
}

app_sql() {
  mariadb --no-defaults -h127.0.0.1 -P"$1" -uapp -papppass --connect-timeout=2 app
}

writer_ready() { app_sql "$WRITE_PORT" <<<"SELECT 1"; }

# The guestbook table, made through Tandem's writer once it has elected one: replication
# brings it to the other server. (In compose, each server makes it at init instead.)
create_schema() {
  wait_for "the MySQL writer" writer_ready
  sed '/sql_log_bin/d' deploy/mariadb/initdb/02-schema.sql | app_sql "$WRITE_PORT" ||
    die "could not create the guestbook table through 127.0.0.1:$WRITE_PORT"
}

start_tandem() {
  spawn tandem - "$TANDEM" -c "$TMP/tandem.toml"
  wait_for "the app through Tandem" http_ok "http://127.0.0.1:$HTTP_PORT/health.php"
  # The admin listener opens with the frontends; a build without it still runs the demo.
  local i
  for i in $(seq 1 25); do
    http_ok "http://127.0.0.1:$ADMIN_PORT/healthz" 2>/dev/null && return
    sleep 0.2
  done
  log "warning: the admin listener does not answer on 127.0.0.1:$ADMIN_PORT/healthz"
}

print_urls() {
  cat >&2 <<MSG

demo: ready. Tandem in front of web1 (:$WEB1_PORT), web2 (:$WEB2_PORT), db1 (:$DB1_PORT), db2 (:$DB2_PORT):
  app       http://127.0.0.1:$HTTP_PORT/            (a browser keeps its server; curl alternates)
  api       http://127.0.0.1:$HTTP_PORT/api.php?action=read
  admin     http://127.0.0.1:$ADMIN_PORT/           token: $TOKEN
  metrics   http://127.0.0.1:$ADMIN_PORT/metrics
  MySQL     writer 127.0.0.1:$WRITE_PORT, readers 127.0.0.1:$READ_PORT (user app, password apppass)
            mariadb -h127.0.0.1 -P$WRITE_PORT -uapp -papppass app -e 'SELECT @@port'
  try       scripts/mariadb-pair.sh kill9 $TMP/pair 1   (the writer moves to db2)
  state     $TMP (removed on exit)
Ctrl-C stops everything.

MSG
}

main() {
  check_ports
  build
  [ -x "$TANDEM" ] || die "no tandem binary at $TANDEM (build it, or unset DEMO_SKIP_BUILD)"
  for tool in php mariadb curl setsid; do
    command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install-deps.sh)"
  done
  trap cleanup EXIT
  trap 'on_signal SIGINT' INT
  trap 'on_signal SIGTERM' TERM
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/tandem-demo.XXXXXX")
  mkdir -p "$TMP/sessions"
  : >"$TMP/pids"
  start_watchdog
  write_config
  start_web
  start_databases
  start_tandem
  create_schema
  print_urls
  # Runs until a signal (the traps exit) or until one of the processes dies by itself.
  local status=0
  wait -n "${PIDS[@]}" || status=$?
  log "a process of the demo exited by itself (status $status); the last lines of its logs:"
  tail -n 20 "$TMP"/*.log >&2 || true
  exit 1
}

main "$@"
