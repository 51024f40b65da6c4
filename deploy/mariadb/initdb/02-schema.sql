-- The guestbook of deploy/app, made on each server outside the binary log like the users
-- (01-users.sql). scripts/demo.sh runs the statements after the SET line through Tandem's
-- writer instead, where replication brings the table to the other server.
SET SESSION sql_log_bin = 0;
USE app;
CREATE TABLE IF NOT EXISTS guestbook (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  message VARCHAR(500) NOT NULL,
  web_server VARCHAR(64) NOT NULL,
  db_server VARCHAR(160) NOT NULL,
  created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY created_at (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
