// The MariaDB pair the MySQL tests stand on: it replicates both ways with interleaved
// auto_increment ids and semi-sync, its users exist on both servers without having broken
// replication, and the failures tests cause (kill -9, a stopped or broken SQL thread) show up
// where the monitor will look and heal as the fixture promises.
#include "tests/integration/mariadb_pair.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <vector>

namespace tandem::it {
namespace {

class MariaDbPairTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { db_.start(); }
  static void TearDownTestSuite() { db_.stop(); }
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(db_.require()); }

  static MariaDbPair& db() { return db_.get(); }
  // Polls `query` on server i until it returns `want`; false after kReplicationTimeout.
  static bool waitValue(int i, const std::string& query, const std::string& want) {
    return eventually([&] { return db().trySql(i, query).rows == std::vector<std::string>{want}; },
                      kReplicationTimeout);
  }

  static SharedMariaDbPair db_;
};

SharedMariaDbPair MariaDbPairTest::db_;

TEST_F(MariaDbPairTest, ServersAreConfiguredForMasterMaster) {
  for (int i : {1, 2}) {
    std::string n = std::to_string(i);
    EXPECT_EQ(db().value(i, "SELECT @@server_id"), n);
    EXPECT_EQ(db().value(i, "SELECT @@gtid_domain_id"), n);
    EXPECT_EQ(db().value(i, "SELECT @@auto_increment_increment"), "2");
    EXPECT_EQ(db().value(i, "SELECT @@auto_increment_offset"), n);
    EXPECT_EQ(db().value(i, "SELECT @@log_bin"), "1");
    EXPECT_EQ(db().value(i, "SELECT @@log_slave_updates"), "1");
    EXPECT_EQ(db().value(i, "SELECT @@binlog_format"), "ROW");
    EXPECT_EQ(db().value(i, "SELECT @@read_only"), "0");
    EXPECT_EQ(db().value(i, "SELECT @@port"), std::to_string(db().port(i)));
    EXPECT_EQ(db().value(i, "SELECT @@bind_address"), "127.0.0.1");
    std::map<std::string, std::string> s = db().slaveStatus(i);
    EXPECT_EQ(s["Master_Port"], std::to_string(db().port(3 - i)));
    EXPECT_EQ(s["Using_Gtid"], "Slave_Pos");
  }
  EXPECT_NE(db().pid(1), db().pid(2));
  EXPECT_TRUE(std::filesystem::is_directory(db().dataDir(1) / "mysql"));
}

TEST_F(MariaDbPairTest, ReplicatesBothWays) {
  db().sql(1, "CREATE TABLE app.both_ways (id INT PRIMARY KEY, origin CHAR(3))");
  ASSERT_TRUE(waitValue(2,
                        "SELECT COUNT(*) FROM information_schema.TABLES WHERE "
                        "TABLE_SCHEMA = 'app' AND TABLE_NAME = 'both_ways'",
                        "1"));
  db().sql(1, "INSERT INTO app.both_ways VALUES (1, 'db1')");
  db().sql(2, "INSERT INTO app.both_ways VALUES (2, 'db2')");
  ASSERT_TRUE(db().waitCaughtUp(kReplicationTimeout)) << db().describe();
  std::vector<std::string> want = {"1\tdb1", "2\tdb2"};
  EXPECT_EQ(db().sql(1, "SELECT id, origin FROM app.both_ways ORDER BY id"), want);
  EXPECT_EQ(db().sql(2, "SELECT id, origin FROM app.both_ways ORDER BY id"), want);
}

TEST_F(MariaDbPairTest, AutoIncrementIdsInterleaveWithoutCollisions) {
  db().sql(1, "CREATE TABLE app.ids (id INT AUTO_INCREMENT PRIMARY KEY, origin CHAR(3))");
  ASSERT_TRUE(db().waitCaughtUp(kReplicationTimeout));
  for (int round = 0; round < 3; ++round) {
    db().sql(1, "INSERT INTO app.ids (origin) VALUES ('db1')");
    db().sql(2, "INSERT INTO app.ids (origin) VALUES ('db2')");
  }
  ASSERT_TRUE(db().waitCaughtUp(kReplicationTimeout)) << db().describe();
  for (int i : {1, 2}) {
    EXPECT_EQ(db().value(i, "SELECT COUNT(*) FROM app.ids"), "6");
    // Offset 1 on db1 and 2 on db2, step 2: the parity of each id says who made it.
    EXPECT_EQ(db().value(i, "SELECT COUNT(*) FROM app.ids WHERE origin = 'db1' AND id % 2 = 1"),
              "3");
    EXPECT_EQ(db().value(i, "SELECT COUNT(*) FROM app.ids WHERE origin = 'db2' AND id % 2 = 0"),
              "3");
  }
  EXPECT_EQ(db().sql(1, "SELECT * FROM app.ids ORDER BY id"),
            db().sql(2, "SELECT * FROM app.ids ORDER BY id"));
}

TEST_F(MariaDbPairTest, SemiSyncIsOnBothWaysWithAfterSyncAndShortTimeout) {
  db().sql(1, "CREATE TABLE app.semi (id INT PRIMARY KEY)");
  ASSERT_TRUE(db().waitCaughtUp(kReplicationTimeout));
  for (int i : {1, 2}) {
    EXPECT_EQ(db().value(i, "SELECT @@rpl_semi_sync_master_enabled"), "1");
    EXPECT_EQ(db().value(i, "SELECT @@rpl_semi_sync_slave_enabled"), "1");
    EXPECT_EQ(db().value(i, "SELECT @@rpl_semi_sync_master_wait_point"), "AFTER_SYNC");
    EXPECT_EQ(db().value(i, "SELECT @@rpl_semi_sync_master_timeout"), "1000");
    EXPECT_EQ(db().globalStatus(i, "Rpl_semi_sync_master_clients"), "1") << "db" << i;
    EXPECT_EQ(db().globalStatus(i, "Rpl_semi_sync_slave_status"), "ON") << "db" << i;

    // A commit on server i waits for the peer's ack and gets it: counted as a semi-sync
    // transaction, not as one that fell back to asynchronous.
    long yes = std::stol(db().globalStatus(i, "Rpl_semi_sync_master_yes_tx"));
    long no = std::stol(db().globalStatus(i, "Rpl_semi_sync_master_no_tx"));
    db().sql(i, "INSERT INTO app.semi VALUES (" + std::to_string(i) + ")");
    EXPECT_EQ(db().globalStatus(i, "Rpl_semi_sync_master_status"), "ON") << "db" << i;
    EXPECT_EQ(std::stol(db().globalStatus(i, "Rpl_semi_sync_master_yes_tx")), yes + 1);
    EXPECT_EQ(std::stol(db().globalStatus(i, "Rpl_semi_sync_master_no_tx")), no);
  }
}

TEST_F(MariaDbPairTest, UsersExistOnBothWithoutBreakingReplication) {
  const std::string users =
      "SELECT CONCAT(user, '@', host) FROM mysql.user "
      "WHERE user IN ('app', 'monitor', 'repl') ORDER BY user";
  std::vector<std::string> want = {"app@%", "monitor@%", "repl@%"};
  for (int i : {1, 2}) {
    EXPECT_EQ(db().sql(i, users), want) << "db" << i;
    // sql_log_bin=0: the users and the app database never reached the binary log.
    std::vector<std::string> events = db().sql(i, "SHOW BINLOG EVENTS");
    for (const std::string& e : events) {
      EXPECT_EQ(e.find("CREATE USER"), std::string::npos) << e;
      EXPECT_EQ(e.find("CREATE DATABASE app"), std::string::npos) << e;
    }
    std::map<std::string, std::string> s = db().slaveStatus(i);
    EXPECT_EQ(s["Slave_IO_Running"], "Yes");
    EXPECT_EQ(s["Slave_SQL_Running"], "Yes");
    EXPECT_EQ(s["Last_SQL_Errno"], "0");
    EXPECT_EQ(s["Last_IO_Errno"], "0");
  }
  for (int i : {1, 2}) {
    uint16_t port = db().port(i);
    // monitor: what a replication-aware check runs.
    SqlResult mon = MariaDbPair::tcpSql(
        port, MariaDbPair::kMonitorUser, MariaDbPair::kMonitorPassword,
        "SHOW SLAVE STATUS; SHOW MASTER STATUS; SELECT @@read_only; SHOW PROCESSLIST");
    EXPECT_TRUE(mon.ok) << "db" << i << ": " << mon.error;
    // app: everything on its database, nothing elsewhere.
    std::string table = "app.user_check_" + std::to_string(i);
    SqlResult app =
        MariaDbPair::tcpSql(port, MariaDbPair::kAppUser, MariaDbPair::kAppPassword,
                            "CREATE TABLE " + table + " (id INT PRIMARY KEY); INSERT INTO " +
                                table + " VALUES (1); SELECT COUNT(*) FROM " + table,
                            MariaDbPair::kAppDatabase);
    EXPECT_TRUE(app.ok) << "db" << i << ": " << app.error;
    EXPECT_EQ(app.rows, std::vector<std::string>{"1"});
    SqlResult denied = MariaDbPair::tcpSql(port, MariaDbPair::kAppUser, MariaDbPair::kAppPassword,
                                           "SELECT * FROM mysql.user");
    EXPECT_FALSE(denied.ok);
    SqlResult wrong = MariaDbPair::tcpSql(port, MariaDbPair::kAppUser, "nope", "SELECT 1");
    EXPECT_FALSE(wrong.ok);
    EXPECT_NE(wrong.error.find("Access denied"), std::string::npos) << wrong.error;
  }
  // Tables the app user made replicate like any other.
  ASSERT_TRUE(db().waitCaughtUp(kReplicationTimeout)) << db().describe();
  EXPECT_EQ(db().value(1, "SELECT COUNT(*) FROM app.user_check_2"), "1");
  EXPECT_EQ(db().value(2, "SELECT COUNT(*) FROM app.user_check_1"), "1");
}

TEST_F(MariaDbPairTest, Kill9AndRestartResumesReplication) {
  db().sql(1, "CREATE TABLE app.crash (id INT PRIMARY KEY, origin CHAR(3))");
  db().sql(1, "INSERT INTO app.crash VALUES (1, 'db1')");
  ASSERT_TRUE(db().waitCaughtUp(kReplicationTimeout));
  pid_t old_pid = db().pid(1);

  db().kill9(1);
  EXPECT_FALSE(db().running(1));
  EXPECT_NE(kill(old_pid, 0), 0);
  EXPECT_FALSE(db().trySql(1, "SELECT 1").ok);
  EXPECT_TRUE(eventually([] { return db().slaveStatus(2)["Slave_IO_Running"] != "Yes"; },
                         kReplicationTimeout));
  // db2 still commits: its semi-sync wait for the dead peer ends after 1 s, then goes async.
  db().sql(2, "INSERT INTO app.crash VALUES (2, 'db2')");
  EXPECT_EQ(db().globalStatus(2, "Rpl_semi_sync_master_status"), "OFF");

  db().restart(1);
  EXPECT_TRUE(db().running(1));
  EXPECT_NE(db().pid(1), old_pid);
  ASSERT_TRUE(db().waitCaughtUp(kReplicationTimeout)) << db().describe();
  std::vector<std::string> want = {"1\tdb1", "2\tdb2"};
  EXPECT_EQ(db().sql(1, "SELECT * FROM app.crash ORDER BY id"), want);
  db().sql(1, "INSERT INTO app.crash VALUES (3, 'db1')");
  ASSERT_TRUE(waitValue(2, "SELECT COUNT(*) FROM app.crash", "3"));
  // With db1 back and caught up, db2's commits are acknowledged again.
  EXPECT_TRUE(eventually([] { return db().globalStatus(2, "Rpl_semi_sync_master_status") == "ON"; },
                         kReplicationTimeout));
}

TEST_F(MariaDbPairTest, StoppedSqlThreadShowsAndResumes) {
  db().sql(1, "CREATE TABLE app.paused (id INT PRIMARY KEY)");
  ASSERT_TRUE(db().waitCaughtUp(kReplicationTimeout));

  db().stopSqlThread(2);
  std::map<std::string, std::string> s = db().slaveStatus(2);
  EXPECT_EQ(s["Slave_SQL_Running"], "No");
  EXPECT_EQ(s["Slave_IO_Running"], "Yes");
  EXPECT_EQ(s["Seconds_Behind_Master"], "NULL");
  EXPECT_EQ(s["Last_SQL_Errno"], "0");  // stopped, not broken
  EXPECT_FALSE(db().waitReplicationHealthy(milliseconds(200)));

  db().sql(1, "INSERT INTO app.paused VALUES (1)");
  // The IO thread still fetches (Gtid_IO_Pos moves), nothing is applied.
  std::string db1_pos = db().value(1, "SELECT @@gtid_binlog_pos");
  EXPECT_TRUE(eventually([&] { return db().slaveStatus(2)["Gtid_IO_Pos"] == db1_pos; },
                         kReplicationTimeout));
  EXPECT_EQ(db().value(2, "SELECT COUNT(*) FROM app.paused"), "0");

  db().startSqlThread(2);
  ASSERT_TRUE(db().waitCaughtUp(kReplicationTimeout)) << db().describe();
  EXPECT_EQ(db().value(2, "SELECT COUNT(*) FROM app.paused"), "1");
}

TEST_F(MariaDbPairTest, ConflictingRowBreaksReplicationWithTheError) {
  db().sql(1, "CREATE TABLE app.conflict (id INT PRIMARY KEY)");
  ASSERT_TRUE(db().waitCaughtUp(kReplicationTimeout));
  // A row only db2 has (kept out of its binary log), then the same key written on db1.
  db().sql(2, "SET SESSION sql_log_bin = 0; INSERT INTO app.conflict VALUES (7)");
  db().sql(1, "INSERT INTO app.conflict VALUES (7)");

  EXPECT_TRUE(eventually([] { return db().slaveStatus(2)["Slave_SQL_Running"] == "No"; },
                         kReplicationTimeout));
  std::map<std::string, std::string> s = db().slaveStatus(2);
  EXPECT_EQ(s["Last_SQL_Errno"], "1062");
  EXPECT_NE(s["Last_SQL_Error"].find("Duplicate entry"), std::string::npos) << s["Last_SQL_Error"];
  EXPECT_EQ(s["Slave_IO_Running"], "Yes");

  // Repair: drop the local row outside the binary log and let the event apply.
  db().sql(2, "SET SESSION sql_log_bin = 0; DELETE FROM app.conflict WHERE id = 7");
  db().sql(2, "START SLAVE");
  ASSERT_TRUE(db().waitCaughtUp(kReplicationTimeout)) << db().describe();
  EXPECT_EQ(db().slaveStatus(2)["Last_SQL_Errno"], "0");
}

// What SharedMariaDbPair::require() relies on when a test left the pair damaged.
TEST_F(MariaDbPairTest, HealRestartsADeadServerAndStoppedThreads) {
  db().kill9(2);
  db().stopSqlThread(1);
  EXPECT_FALSE(db().waitReplicationHealthy(milliseconds(200)));
  db().heal();
  EXPECT_TRUE(db().running(2));
  ASSERT_TRUE(db().waitCaughtUp(kReplicationTimeout)) << db().describe();
}

TEST_F(MariaDbPairTest, SqlErrorsAreReported) {
  SqlResult r = db().trySql(1, "SELECT * FROM app.no_such_table");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("1146"), std::string::npos) << r.error;
  EXPECT_THROW(db().sql(2, "SELEKT 1"), std::runtime_error);
  EXPECT_EQ(db().sql(1, "SELECT 1, NULL, 'a b'"), std::vector<std::string>{"1\tNULL\ta b"});
}

// The shared pair of the suite above stays up; this one is the test's own.
TEST(MariaDbPairLifecycle, StopEndsBothServersAndIsIdempotent) {
  std::string why;
  ASSERT_TRUE(MariaDbPair::available(&why)) << why;
  std::filesystem::path dir;
  pid_t pids[2];
  {
    MariaDbPair pair;
    dir = pair.dir();
    pids[0] = pair.pid(1);
    pids[1] = pair.pid(2);
    ASSERT_GT(pids[0], 0);
    ASSERT_GT(pids[1], 0);
    pair.kill9(2);  // teardown also copes with a server that is already gone
    pair.stop();
    EXPECT_NE(kill(pids[0], 0), 0);
    EXPECT_FALSE(pair.running(1));
    EXPECT_FALSE(pair.running(2));
    pair.stop();
  }
  EXPECT_FALSE(std::filesystem::exists(dir));
}

}  // namespace
}  // namespace tandem::it
