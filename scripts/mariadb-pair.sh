#!/usr/bin/env bash
# Two real MariaDB servers (Debian's mariadbd) in master-master replication on loopback, for
# the MySQL integration tests, the benchmarks and the local demo.
#
#   scripts/mariadb-pair.sh start DIR PORT1 PORT2   # bootstrap, start, replicate, verify
#   scripts/mariadb-pair.sh stop DIR                # both servers; safe to repeat
#   scripts/mariadb-pair.sh status DIR              # exit 0 only when both replicate
#   scripts/mariadb-pair.sh kill9 DIR N             # SIGKILL server N (1 or 2)
#   scripts/mariadb-pair.sh restart DIR N           # (re)start server N on its data dir
#
# Everything lives under DIR: db1/ and db2/ each hold data/, tmp/, my.cnf, the unix socket
# `sock`, error.log; pair.env holds the connection details as KEY=value lines.
# The servers listen on 127.0.0.1 only. Each one:
#   - server_id and gtid_domain_id N, binary log in ROW format with log_slave_updates,
#     auto_increment_increment 2 and offset N, so that the two never pick the same id;
#   - semi-sync both ways with wait point AFTER_SYNC and a 1 s timeout: a commit waits for
#     the peer's ack, but a dead peer stalls commits for 1 s once, not 10 s every time;
#   - replicates from the other with MASTER_USE_GTID=slave_pos, reconnecting every second.
# Users, made on each server with sql_log_bin=0 (a replicated CREATE USER would hit the
# same user on the other side and stop its SQL thread):
#   root (no password; via the unix socket or 127.0.0.1), repl/replpass (REPLICATION SLAVE),
#   monitor/monitorpass (what SHOW SLAVE STATUS, SHOW MASTER STATUS and the process list
#   need in 10.11), app/apppass (ALL on database `app`, itself made with sql_log_bin=0 on
#   both, so that each side has it before anything replicates).
#
# Environment:
#   MARIADB_PAIR_OWNER_PID=PID   a watchdog stops the pair (and, with
#                                MARIADB_PAIR_OWNER_CLEANUP=1, removes DIR) once PID exits,
#                                even if that process was killed or aborted
#   MARIADB_PAIR_TEMPLATE_CACHE=DIR  keep the bootstrapped system tables there (one per
#                                MariaDB version) and copy them on later starts: ~4 s less
#   MARIADB_PAIR_TIMEOUT=SEC     bound on each wait (start-up, replication); default 60
#   MARIADB_PAIR_STOP_GRACE=SEC  between SIGTERM and SIGKILL when stopping; default 15
#   MARIADBD, MARIADB, MARIADB_INSTALL_DB   binaries (default: from the PATH or /usr/sbin)
set -euo pipefail

ME=mariadb-pair
SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
TIMEOUT=${MARIADB_PAIR_TIMEOUT:-60}
MARIADBD=${MARIADBD:-$(command -v mariadbd || echo /usr/sbin/mariadbd)}
MARIADB=${MARIADB:-$(command -v mariadb || echo /usr/bin/mariadb)}
MARIADB_INSTALL_DB=${MARIADB_INSTALL_DB:-$(command -v mariadb-install-db ||
  echo /usr/bin/mariadb-install-db)}
STOP_GRACE=${MARIADB_PAIR_STOP_GRACE:-15}   # seconds between SIGTERM and SIGKILL

die() { echo "$ME: $*" >&2; exit 1; }
log() { echo "$ME: $*" >&2; }
now_ms() { date +%s%3N; }

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SELF"; }

# ---------------------------------------------------------------- paths and processes

srv_dir() { echo "$DIR/db$1"; }
sock() { echo "$DIR/db$1/sock"; }
cnf() { echo "$DIR/db$1/my.cnf"; }

# The pid of server N, found by its exact --defaults-file argument (robust against stale pid
# files after kill -9 and against a pid reused by another process). Empty when not running.
server_pid() {
  local f p
  # First the pid the server wrote itself, trusted only while that process is our server.
  p=$(cat "$(srv_dir "$1")/mariadbd.pid" 2>/dev/null || true)
  if [ -n "$p" ] && grep -qzxF -- "--defaults-file=$(cnf "$1")" "/proc/$p/cmdline" 2>/dev/null
  then
    echo "$p"
    return
  fi
  f=$(grep -lzxF -- "--defaults-file=$(cnf "$1")" /proc/[0-9]*/cmdline 2>/dev/null |
    head -n 1 || true)
  [ -z "$f" ] || { f=${f#/proc/}; echo "${f%/cmdline}"; }
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# wait_gone PID SECONDS: true once PID has exited.
wait_gone() {
  local pid=$1 deadline=$(($(now_ms) + $2 * 1000))
  while alive "$pid"; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

# ---------------------------------------------------------------- SQL

# sql N STATEMENT...: runs the statements as root over server N's socket, prints rows
# tab-separated without a header.
sql() {
  local n=$1
  shift
  "$MARIADB" --no-defaults --protocol=socket -S "$(sock "$n")" -uroot -N -B \
    --connect-timeout=5 -e "$*"
}

# wait_sql N EXPECTED STATEMENT: polls until the statement's output equals EXPECTED.
wait_sql() {
  local n=$1 want=$2 stmt=$3 got="" deadline=$(($(now_ms) + TIMEOUT * 1000))
  while true; do
    got=$(sql "$n" "$stmt" 2>/dev/null) || got="(error)"
    [ "$got" = "$want" ] && return 0
    if [ "$(now_ms)" -ge "$deadline" ]; then
      log "db$n: waited ${TIMEOUT}s for [$stmt] = [$want], last answer [$got]"
      return 1
    fi
    sleep 0.05
  done
}

# slave_field N FIELD: one column of SHOW SLAVE STATUS on server N (empty if not a slave).
slave_field() {
  "$MARIADB" --no-defaults --protocol=socket -S "$(sock "$1")" -uroot -B --connect-timeout=5 \
    -e "SHOW SLAVE STATUS\G" 2>/dev/null |
    awk -v f="$2" '{ i = index($0, ": "); k = substr($0, 1, i - 1); sub(/^ +/, "", k) }
                  i > 0 && k == f { print substr($0, i + 2) }'
}

# ---------------------------------------------------------------- bootstrap

write_cnf() {
  local n=$1 port=$2 d
  d=$(srv_dir "$n")
  cat >"$(cnf "$n")" <<EOF
# Written by $ME: server $n of a master-master pair.
[mariadbd]
datadir = $d/data
tmpdir = $d/tmp
socket = $d/sock
pid-file = $d/mariadbd.pid
log-error = $d/error.log
port = $port
bind-address = 127.0.0.1
skip-name-resolve
performance_schema = OFF

server_id = $n
gtid_domain_id = $n
log_bin = binlog
relay_log = relay
relay_log_recovery = 1
log_slave_updates = 1
binlog_format = ROW
sync_binlog = 1
slave_net_timeout = 10
auto_increment_increment = 2
auto_increment_offset = $n

rpl_semi_sync_master_enabled = 1
rpl_semi_sync_slave_enabled = 1
rpl_semi_sync_master_wait_point = AFTER_SYNC
rpl_semi_sync_master_timeout = 1000

innodb_buffer_pool_size = 32M
innodb_log_file_size = 8M
innodb_flush_log_at_trx_commit = 1
EOF
}

# Bootstrap options shared by the template and the servers: the redo log size is fixed at
# bootstrap, and a bootstrap without --defaults has no binary log, so the copied system
# tables carry no GTIDs.
INSTALL_OPTS=(--no-defaults --auth-root-authentication-method=normal --skip-test-db
  --skip-name-resolve --innodb-log-file-size=8M --innodb-buffer-pool-size=32M)

as_root_opt() { if [ "$(id -u)" -eq 0 ]; then echo "--user=root"; fi; }

# install_db TARGET: bootstraps an empty data directory at TARGET.
install_db() {
  local target=$1 user_opt
  user_opt=$(as_root_opt)
  # shellcheck disable=SC2086  # user_opt is empty or one word
  if ! "$MARIADB_INSTALL_DB" "${INSTALL_OPTS[@]}" $user_opt --datadir="$target" \
      >"$target.log" 2>&1; then
    cat "$target.log" >&2
    die "mariadb-install-db failed for $target"
  fi
  rm -f "$target.log"
}

# make_template: prints the path of a bootstrapped data directory to copy from, using (and
# filling) MARIADB_PAIR_TEMPLATE_CACHE when set. A cache entry appears by rename, whole.
make_template() {
  local cache=${MARIADB_PAIR_TEMPLATE_CACHE:-} key entry tmp
  if [ -z "$cache" ]; then
    install_db "$DIR/template"
    echo "$DIR/template"
    return
  fi
  key=$("$MARIADBD" --version | cksum | cut -d' ' -f1)
  entry="$cache/mariadb-template-$key"
  if [ ! -d "$entry" ]; then
    mkdir -p "$cache"
    tmp=$(mktemp -d "$cache/.mariadb-template.XXXXXX")
    install_db "$tmp/data"
    mv -T "$tmp/data" "$entry" 2>/dev/null || true   # another starter may have won
    rm -rf "$tmp"
  fi
  [ -d "$entry" ] || die "template $entry missing"
  echo "$entry"
}

# start_server N: starts mariadbd N detached (own session, stdio away from the caller, so a
# caller reading our output is not held open), then waits until root can log in.
start_server() {
  local n=$1 pid user_opt deadline
  pid=$(server_pid "$n")
  alive "$pid" && die "db$n already running (pid $pid)"
  user_opt=$(as_root_opt)
  # shellcheck disable=SC2086
  setsid "$MARIADBD" --defaults-file="$(cnf "$n")" $user_opt \
    >>"$(srv_dir "$n")/stdout.log" 2>&1 </dev/null &
  pid=$!   # setsid execs in place: this is mariadbd once the exec happened
  deadline=$(($(now_ms) + TIMEOUT * 1000))
  until sql "$n" "SELECT 1" >/dev/null 2>&1; do
    if ! alive "$pid" || [ "$(now_ms)" -ge "$deadline" ]; then
      tail -n 30 "$(srv_dir "$n")/error.log" >&2 2>/dev/null || true
      die "db$n did not come up (see $(srv_dir "$n")/error.log)"
    fi
    sleep 0.05
  done
}

# Users and the app database, on one server, outside the binary log.
create_users() {
  sql "$1" "
    SET SESSION sql_log_bin = 0;
    DROP USER IF EXISTS 'root'@'$(hostname)';
    CREATE USER 'repl'@'%' IDENTIFIED BY 'replpass';
    GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
    CREATE USER 'monitor'@'%' IDENTIFIED BY 'monitorpass';
    GRANT REPLICATION CLIENT, SLAVE MONITOR, BINLOG MONITOR, PROCESS, READ_ONLY ADMIN ON *.* TO 'monitor'@'%';
    CREATE DATABASE app;
    CREATE USER 'app'@'%' IDENTIFIED BY 'apppass';
    GRANT ALL ON app.* TO 'app'@'%';"
}

# replicate_from N PEER_PORT: makes server N a GTID slave of its peer and starts it.
replicate_from() {
  sql "$1" "
    CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = $2,
      MASTER_USER = 'repl', MASTER_PASSWORD = 'replpass', MASTER_USE_GTID = slave_pos,
      MASTER_CONNECT_RETRY = 1, MASTER_HEARTBEAT_PERIOD = 1;
    START SLAVE;"
}

wait_slave_running() {
  local io sql_running deadline=$(($(now_ms) + TIMEOUT * 1000))
  while true; do
    io=$(slave_field "$1" Slave_IO_Running)
    sql_running=$(slave_field "$1" Slave_SQL_Running)
    [ "$io" = Yes ] && [ "$sql_running" = Yes ] && return 0
    if [ "$(now_ms)" -ge "$deadline" ]; then
      log "db$1: IO thread $io, SQL thread $sql_running"
      slave_field "$1" Last_IO_Error >&2
      slave_field "$1" Last_SQL_Error >&2
      return 1
    fi
    sleep 0.05
  done
}

# Proves both directions: a table made on db1 appears on db2, a row written on each side
# shows on the other with the side's own auto_increment offset (odd on db1, even on db2).
verify_replication() {
  sql 1 "CREATE DATABASE pair_check;
         CREATE TABLE pair_check.t (id INT AUTO_INCREMENT PRIMARY KEY, origin CHAR(3));"
  wait_sql 2 1 "SELECT COUNT(*) FROM information_schema.TABLES
                WHERE TABLE_SCHEMA = 'pair_check' AND TABLE_NAME = 't'" || return 1
  sql 1 "INSERT INTO pair_check.t (origin) VALUES ('db1')"
  sql 2 "INSERT INTO pair_check.t (origin) VALUES ('db2')"
  local want="1"$'\t'"db1"$'\n'"2"$'\t'"db2"
  wait_sql 1 "$want" "SELECT id, origin FROM pair_check.t ORDER BY id" || return 1
  wait_sql 2 "$want" "SELECT id, origin FROM pair_check.t ORDER BY id" || return 1
  sql 2 "DROP DATABASE pair_check"
  wait_sql 1 0 "SELECT COUNT(*) FROM information_schema.SCHEMATA
                WHERE SCHEMA_NAME = 'pair_check'" || return 1
}

# Each side's semi-sync master must see the other's slave connected before the first
# replicated commit, or that commit waits out the 1 s timeout and semi-sync turns itself off.
wait_semisync_clients() {
  local n
  for n in 1 2; do
    wait_sql "$n" 1 "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS
                    WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'" || return 1
  done
}

write_env() {
  cat >"$DIR/pair.env" <<EOF
PORT1=$PORT1
PORT2=$PORT2
SOCKET1=$(sock 1)
SOCKET2=$(sock 2)
DATADIR1=$(srv_dir 1)/data
DATADIR2=$(srv_dir 2)/data
EOF
}

read_env() {
  [ -f "$DIR/pair.env" ] || die "no pair in $DIR (pair.env missing)"
  PORT1=$(sed -n 's/^PORT1=//p' "$DIR/pair.env")
  PORT2=$(sed -n 's/^PORT2=//p' "$DIR/pair.env")
}

print_details() {
  local n port
  for n in 1 2; do
    port=$PORT1
    [ "$n" -eq 2 ] && port=$PORT2
    printf 'db%s  127.0.0.1:%s  socket %s  pid %s  server_id %s  gtid_domain_id %s\n' \
      "$n" "$port" "$(sock "$n")" "$(server_pid "$n")" "$n" "$n"
  done
  cat <<EOF
users: root (no password, unix socket or 127.0.0.1), app/apppass (ALL on app),
       monitor/monitorpass (replication monitoring), repl/replpass (replication)
try:   $MARIADB --no-defaults -S $(sock 1) -uroot
       $MARIADB --no-defaults -h127.0.0.1 -P$PORT1 -uapp -papppass app
stop:  $SELF stop $DIR
EOF
}

# A watchdog in its own session: once the owner process is gone (exited, aborted or
# killed), it stops the pair and, if asked, removes DIR. `tail --pid` waits without
# spawning a process per poll.
start_watchdog() {
  local owner=${MARIADB_PAIR_OWNER_PID:-} cleanup=${MARIADB_PAIR_OWNER_CLEANUP:-0}
  [ -n "$owner" ] || return 0
  alive "$owner" || die "MARIADB_PAIR_OWNER_PID $owner is not running"
  # shellcheck disable=SC2016  # expanded by the inner bash
  setsid bash -c '
    tail --pid="$1" -f /dev/null
    MARIADB_PAIR_IS_WATCHDOG=1 "$2" stop "$3"
    if [ "$4" = 1 ]; then rm -rf "$3"; fi' watchdog "$owner" "$SELF" "$DIR" "$cleanup" \
    >/dev/null 2>&1 </dev/null &
  echo $! >"$DIR/watchdog.pid"
}

stop_watchdog() {
  local pid
  [ -z "${MARIADB_PAIR_IS_WATCHDOG:-}" ] || return 0
  [ -f "$DIR/watchdog.pid" ] || return 0
  pid=$(cat "$DIR/watchdog.pid")
  # Only our own watchdog: its command line names this DIR.
  if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DIR"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/watchdog.pid"
}

# ---------------------------------------------------------------- commands

cmd_start() {
  local t0 n template
  t0=$(now_ms)
  [[ $PORT1 =~ ^[0-9]+$ && $PORT2 =~ ^[0-9]+$ ]] || die "ports must be numbers"
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  [ ${#DIR} -le 90 ] || die "DIR too long for a unix socket path: $DIR"
  for n in 1 2; do
    alive "$(server_pid "$n")" && die "db$n already running in $DIR"
  done
  [ ! -e "$DIR/db1/data" ] || die "$DIR already holds a pair; stop it and use a fresh DIR"

  # Any failure from here on (die, or a failing command under set -e) stops what started.
  trap 'if [ -z "${STARTED:-}" ]; then log "start failed; stopping"; cmd_stop; fi' EXIT
  template=$(make_template)
  for n in 1 2; do
    mkdir -p "$(srv_dir "$n")/tmp"
    cp -a "$template" "$(srv_dir "$n")/data"
  done
  [ "$template" = "$DIR/template" ] && rm -rf "$DIR/template"
  write_cnf 1 "$PORT1"
  write_cnf 2 "$PORT2"
  write_env
  start_watchdog

  local first
  start_server 1 &
  first=$!
  start_server 2
  wait "$first" || die "db1 did not start"
  for n in 1 2; do create_users "$n"; done
  replicate_from 1 "$PORT2"
  replicate_from 2 "$PORT1"
  for n in 1 2; do
    wait_slave_running "$n" || die "replication did not start on db$n"
  done
  wait_semisync_clients || die "semi-sync slaves did not connect"
  verify_replication || die "replication check failed"
  STARTED=1

  log "pair up in $(( ($(now_ms) - t0) / 1000 )).$(( ($(now_ms) - t0) % 1000 / 100 )) s"
  print_details
}

# stop_server N: SIGTERM, up to STOP_GRACE seconds for a clean shutdown, then SIGKILL.
stop_server() {
  local n=$1 pid
  pid=$(server_pid "$n")
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" "$STOP_GRACE"; then
    log "db$n (pid $pid) still running after ${STOP_GRACE}s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "db$n (pid $pid) survived SIGKILL"
  fi
}

cmd_stop() {
  [ -d "$DIR" ] || return 0
  DIR=$(cd "$DIR" && pwd)
  stop_watchdog
  local first
  stop_server 1 &
  first=$!
  stop_server 2
  wait "$first"
  log "stopped (${DIR})"
}

cmd_kill9() {
  local pid
  pid=$(server_pid "$N")
  alive "$pid" || die "db$N is not running"
  kill -KILL "$pid"
  wait_gone "$pid" 10 || die "db$N (pid $pid) survived SIGKILL"
}

cmd_restart() {
  read_env
  stop_server "$N"
  start_server "$N"
  log "db$N up (pid $(server_pid "$N"))"
}

# One line per server; exit 0 only when both run and both replication threads are Yes.
cmd_status() {
  local n pid port ok=0 io sqlt lag gtid semi err
  read_env
  for n in 1 2; do
    port=$PORT1
    [ "$n" -eq 2 ] && port=$PORT2
    pid=$(server_pid "$n")
    if ! alive "$pid"; then
      echo "db$n  127.0.0.1:$port  not running"
      ok=1
      continue
    fi
    io=$(slave_field "$n" Slave_IO_Running)
    sqlt=$(slave_field "$n" Slave_SQL_Running)
    lag=$(slave_field "$n" Seconds_Behind_Master)
    err=$(slave_field "$n" Last_SQL_Error)$(slave_field "$n" Last_IO_Error)
    gtid=$(sql "$n" "SELECT @@gtid_binlog_pos" 2>/dev/null || true)
    semi=$(sql "$n" "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS
                     WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_STATUS'" 2>/dev/null || true)
    echo "db$n  127.0.0.1:$port  pid $pid  io=${io:-?} sql=${sqlt:-?} lag=${lag:-?}" \
      "semisync=${semi:-?} gtid_binlog_pos=${gtid:-?}${err:+  error: $err}"
    [ "$io" = Yes ] && [ "$sqlt" = Yes ] || ok=1
  done
  return $ok
}

case ${1:-} in
  -h|--help|help|"") usage; exit 0 ;;
esac
CMD=$1
[ $# -ge 2 ] || die "usage: $ME $CMD DIR ... (see --help)"
DIR=$2
case $CMD in
  start)
    [ $# -eq 4 ] || die "usage: $ME start DIR PORT1 PORT2"
    PORT1=$3 PORT2=$4
    cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  kill9|restart)
    if [ $# -ne 3 ] || [[ ! $3 =~ ^[12]$ ]]; then die "usage: $ME $CMD DIR 1|2"; fi
    [ -d "$DIR" ] || die "no such directory $DIR"
    DIR=$(cd "$DIR" && pwd)
    N=$3
    "cmd_$CMD" ;;
  *) die "unknown command $CMD (see --help)" ;;
esac
