#!/usr/bin/env bash
# One-shot replication setup for deploy/docker-compose.yml (the replication-setup service):
# once db1 and db2 are healthy, makes each a GTID slave of the other and waits until both
# replicate. Safe to run again: a server whose slave threads already run is left alone.
#
# Environment: MARIADB_ROOT_PASSWORD (required), DB1_HOST/DB2_HOST (db1, db2),
# REPL_USER/REPL_PASSWORD (repl, replpass), SETUP_TIMEOUT seconds (60).
set -euo pipefail

: "${MARIADB_ROOT_PASSWORD:?MARIADB_ROOT_PASSWORD is not set}"
DB1=${DB1_HOST:-db1}
DB2=${DB2_HOST:-db2}
REPL_USER=${REPL_USER:-repl}
REPL_PASSWORD=${REPL_PASSWORD:-replpass}
TIMEOUT=${SETUP_TIMEOUT:-60}

log() { echo "setup-replication: $*" >&2; }

sql() {
  local host=$1
  shift
  MYSQL_PWD=$MARIADB_ROOT_PASSWORD mariadb --no-defaults -h "$host" -uroot -N -B \
    --connect-timeout=5 -e "$*"
}

# slave_field HOST FIELD: one column of SHOW SLAVE STATUS (empty when not a slave).
slave_field() {
  MYSQL_PWD=$MARIADB_ROOT_PASSWORD mariadb --no-defaults -h "$1" -uroot -B \
    --connect-timeout=5 -e "SHOW SLAVE STATUS\G" |
    awk -v f="$2" '{ i = index($0, ": "); k = substr($0, 1, i - 1); sub(/^ +/, "", k) }
                  i > 0 && k == f { print substr($0, i + 2) }'
}

running() {
  [ "$(slave_field "$1" Slave_IO_Running)" = Yes ] &&
    [ "$(slave_field "$1" Slave_SQL_Running)" = Yes ]
}

# replicate HOST MASTER: HOST follows MASTER from the GTID position HOST has applied.
replicate() {
  if running "$1"; then
    log "$1 already replicates from $(slave_field "$1" Master_Host)"
    return
  fi
  log "$1 replicates from $2"
  sql "$1" "STOP SLAVE;
    CHANGE MASTER TO MASTER_HOST = '$2', MASTER_PORT = 3306,
      MASTER_USER = '$REPL_USER', MASTER_PASSWORD = '$REPL_PASSWORD',
      MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 5, MASTER_HEARTBEAT_PERIOD = 1;
    START SLAVE;"
}

wait_running() {
  local deadline=$((SECONDS + TIMEOUT))
  until running "$1"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$1: slave threads not running after ${TIMEOUT}s:" \
        "$(slave_field "$1" Last_IO_Error) $(slave_field "$1" Last_SQL_Error)"
      return 1
    fi
    sleep 1
  done
}

replicate "$DB1" "$DB2"
replicate "$DB2" "$DB1"
wait_running "$DB1"
wait_running "$DB2"
log "db1 <-> db2 replicating; gtid_binlog_pos: $(sql "$DB1" 'SELECT @@gtid_binlog_pos') /" \
  "$(sql "$DB2" 'SELECT @@gtid_binlog_pos')"
