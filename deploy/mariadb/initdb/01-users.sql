-- Runs once, when the data volume is new (the mariadb image's /docker-entrypoint-initdb.d).
-- Users and the app database are made on each server outside the binary log
-- (sql_log_bin = 0): both servers run this script, and a replicated CREATE USER would meet
-- the same user on the other side and stop its SQL thread.
-- The passwords are the demo's (the same as scripts/mariadb-pair.sh and deploy/tandem.toml);
-- change them here, in deploy/tandem.toml and in the compose file together.
SET SESSION sql_log_bin = 0;

CREATE USER 'repl'@'%' IDENTIFIED BY 'replpass';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';

-- What Tandem's replication check reads: SHOW SLAVE STATUS, SHOW MASTER STATUS, the
-- process list and read_only; READ_ONLY ADMIN lets it switch read_only with the writer role
-- (manage_read_only in deploy/tandem.toml).
CREATE USER 'monitor'@'%' IDENTIFIED BY 'monitorpass';
GRANT REPLICATION CLIENT, SLAVE MONITOR, BINLOG MONITOR, PROCESS, READ_ONLY ADMIN ON *.*
  TO 'monitor'@'%';

CREATE DATABASE app;
CREATE USER 'app'@'%' IDENTIFIED BY 'apppass';
GRANT ALL ON app.* TO 'app'@'%';
