// The pure half of the MySQL checks: GTID positions, SHOW REPLICA STATUS rows, the reasons
// shown to operators and the status of failed client calls. The rows are copied from what
// MariaDB 10.11 and MySQL 8.4 print.
#include <gtest/gtest.h>

#include <string>

#include "health/replication_status.h"

namespace tandem {
namespace {

TEST(MysqlStatusTest, ParsesMariadbGtidPositions) {
  std::optional<MariadbGtidPos> pos = parseMariadbGtidPos("1-1-100,2-2-57");
  ASSERT_TRUE(pos.has_value());
  EXPECT_EQ(*pos, (MariadbGtidPos{{1, 100}, {2, 57}}));
  EXPECT_EQ(parseMariadbGtidPos(""), MariadbGtidPos{});
  EXPECT_EQ(parseMariadbGtidPos(" 0-1-5 ,\n 7-3-18446744073709551615"),
            (MariadbGtidPos{{0, 5}, {7, 18446744073709551615u}}));
}

TEST(MysqlStatusTest, RefusesMalformedMariadbGtidPositions) {
  for (const char* text : {"1-1", "1-1-1-1", "1-1-x", "a-1-1", "1-1-1,,2-2-2", "1-1-1,1-2-5",
                           "-1-1-1", "1--1", "1-1-+5", "4294967296-1-1"}) {
    EXPECT_FALSE(parseMariadbGtidPos(text).has_value()) << text;
  }
}

// The comparison the writer election relies on: Gtid_IO_Pos against @@gtid_slave_pos.
TEST(MysqlStatusTest, MariadbAppliedAllComparesEachDomain) {
  EXPECT_EQ(mariadbAppliedAll("1-1-100,2-2-57", "1-1-100,2-2-57"), true);
  EXPECT_EQ(mariadbAppliedAll("1-1-100,2-2-57", "2-2-57,1-1-100"), true);
  EXPECT_EQ(mariadbAppliedAll("1-1-100,2-2-57", "1-1-99,2-2-57"), false);
  EXPECT_EQ(mariadbAppliedAll("1-1-100,2-2-57", "1-1-100,2-2-56"), false);
  // The server id does not order anything: after a failover domain 1 continues under server 2.
  EXPECT_EQ(mariadbAppliedAll("1-1-100", "1-2-101"), true);
  EXPECT_EQ(mariadbAppliedAll("1-1-100,2-2-57", "1-1-100"), false);  // domain 2 not applied
  EXPECT_EQ(mariadbAppliedAll("1-1-100", "1-1-100,3-3-9"), true);    // local writes elsewhere
  EXPECT_EQ(mariadbAppliedAll("", ""), true);
  EXPECT_EQ(mariadbAppliedAll("", "1-1-5"), true);
  EXPECT_EQ(mariadbAppliedAll("1-1-5", ""), false);
  EXPECT_EQ(mariadbAppliedAll("1-1-5", "garbage"), std::nullopt);
  EXPECT_EQ(mariadbAppliedAll("garbage", "1-1-5"), std::nullopt);
}

constexpr const char* kUuidA = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
constexpr const char* kUuidB = "7a9c1f0e-0c2d-11ef-8e1c-0242ac120002";

std::string set(const std::string& text) {
  std::string out = text;
  for (auto [from, to] : {std::pair{"A", kUuidA}, std::pair{"B", kUuidB}}) {
    for (size_t at = out.find(from); at != std::string::npos; at = out.find(from)) {
      out.replace(at, 1, to);
    }
  }
  return out;
}

TEST(MysqlStatusTest, ParsesMysqlGtidSets) {
  std::optional<MysqlGtidSet> parsed = parseMysqlGtidSet(set("A:1-5:7,\nB:3"));
  ASSERT_TRUE(parsed.has_value());
  ASSERT_EQ(parsed->size(), 2u);
  const std::vector<GtidInterval>& a = parsed->at(kUuidA);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].first, 1u);
  EXPECT_EQ(a[0].last, 5u);
  EXPECT_EQ(a[1].first, 7u);
  EXPECT_EQ(a[1].last, 7u);
  // Overlapping and adjacent intervals merge; upper-case uuids are the same source.
  parsed = parseMysqlGtidSet("3E11FA47-71CA-11E1-9E33-C80AA9429562:4-6:1-3:5-9");
  ASSERT_TRUE(parsed.has_value());
  ASSERT_EQ(parsed->at(kUuidA).size(), 1u);
  EXPECT_EQ(parsed->at(kUuidA)[0].last, 9u);
  // MySQL 8.3 tags name their own series.
  parsed = parseMysqlGtidSet(set("A:1-3:batch:1-2"));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->count(std::string(kUuidA) + ":batch"), 1u);
  EXPECT_EQ(parseMysqlGtidSet("")->size(), 0u);
  for (const char* bad : {"A", "A:", "A:5-1", "A:1-x", "zz:1-2", ":1-2", "A:1-2,,B:1"}) {
    EXPECT_FALSE(parseMysqlGtidSet(set(bad)).has_value()) << bad;
  }
}

TEST(MysqlStatusTest, MysqlAppliedAllIsSetContainment) {
  EXPECT_EQ(mysqlAppliedAll(set("A:1-100"), set("A:1-100,B:1-5")), true);
  EXPECT_EQ(mysqlAppliedAll(set("A:50-100"), set("A:1-100")), true);
  EXPECT_EQ(mysqlAppliedAll(set("A:1-101"), set("A:1-100")), false);
  EXPECT_EQ(mysqlAppliedAll(set("A:1-10:12"), set("A:1-10")), false);  // a hole
  EXPECT_EQ(mysqlAppliedAll(set("A:1-10,B:1"), set("A:1-10")), false);
  EXPECT_EQ(mysqlAppliedAll(set("A:1-5"), set("A:1-3:4-5")), true);  // merged before comparing
  EXPECT_EQ(mysqlAppliedAll("", set("A:1-3")), true);
  EXPECT_EQ(mysqlAppliedAll(set("A:1"), "nonsense"), std::nullopt);
}

// A MariaDB 10.11 replica whose IO thread cannot reach its source (SHOW REPLICA STATUS
// keeps MariaDB's Slave_* names).
StatusRow mariadbConnectingRow() {
  return StatusRow{
      {"Slave_IO_State", "Connecting to master"},
      {"Master_Log_File", ""},
      {"Read_Master_Log_Pos", "4"},
      {"Relay_Master_Log_File", ""},
      {"Slave_IO_Running", "Connecting"},
      {"Slave_SQL_Running", "Yes"},
      {"Exec_Master_Log_Pos", "4"},
      {"Seconds_Behind_Master", std::nullopt},
      {"Last_IO_Errno", "2003"},
      {"Last_IO_Error",
       "error connecting to master 'repl@127.0.0.1:1' - retry-time: 1  maximum-retries: "
       "100000  message: Can't connect to server on '127.0.0.1' (111 \"Connection refused\")"},
      {"Last_SQL_Errno", "0"},
      {"Last_SQL_Error", ""},
      {"Using_Gtid", "Slave_Pos"},
      {"Gtid_IO_Pos", ""},
  };
}

StatusRow mariadbRunningRow(const char* io_pos, const char* lag) {
  StatusRow row = mariadbConnectingRow();
  row["Slave_IO_Running"] = "Yes";
  row["Last_IO_Errno"] = "0";
  row["Last_IO_Error"] = "";
  row["Seconds_Behind_Master"] = lag;
  row["Gtid_IO_Pos"] = io_pos;
  return row;
}

// MySQL 8.4 spells the same columns Replica_* and *_Source.
StatusRow mysqlRow() {
  return StatusRow{
      {"Replica_IO_Running", "Yes"},
      {"Replica_SQL_Running", "No"},
      {"Seconds_Behind_Source", std::nullopt},
      {"Source_Log_File", "binlog.000003"},
      {"Read_Source_Log_Pos", "1200"},
      {"Relay_Source_Log_File", "binlog.000003"},
      {"Exec_Source_Log_Pos", "900"},
      {"Last_IO_Errno", "0"},
      {"Last_IO_Error", ""},
      {"Last_SQL_Errno", "1062"},
      {"Last_SQL_Error",
       "Coordinator stopped because there were error(s) in the worker(s). The most recent "
       "failure being: Worker 1 failed executing transaction 'A:12'"},
      {"Retrieved_Gtid_Set", set("A:1-12")},
      {"Executed_Gtid_Set", set("A:1-11,\nB:1-4")},
  };
}

TEST(MysqlStatusTest, ParsesMariadbRow) {
  ReplicaStatus r = parseReplicaStatus(mariadbConnectingRow());
  EXPECT_EQ(r.io_state, "Connecting");
  EXPECT_EQ(r.sql_state, "Yes");
  EXPECT_FALSE(r.lag_seconds.has_value());
  EXPECT_EQ(r.io_errno, 2003);
  EXPECT_NE(r.io_error.find("Connection refused"), std::string::npos);
  EXPECT_EQ(r.sql_errno, 0);
  EXPECT_EQ(r.read_pos, 4u);
  EXPECT_EQ(r.exec_pos, 4u);
  EXPECT_EQ(parseReplicaStatus(mariadbRunningRow("1-1-7", "42")).lag_seconds, 42);
}

TEST(MysqlStatusTest, ParsesMysqlRow) {
  ReplicaStatus r = parseReplicaStatus(mysqlRow());
  EXPECT_EQ(r.io_state, "Yes");
  EXPECT_EQ(r.sql_state, "No");
  EXPECT_EQ(r.sql_errno, 1062);
  EXPECT_EQ(r.read_file, "binlog.000003");
  EXPECT_EQ(r.read_pos, 1200u);
  EXPECT_EQ(r.exec_pos, 900u);
  EXPECT_EQ(r.retrieved_gtid_set, set("A:1-12"));
  EXPECT_EQ(r.executed_gtid_set, set("A:1-11,\nB:1-4"));
}

// Only a thread that stopped with an error is broken: "Connecting" retries by itself, and a
// thread stopped by an operator has no error.
TEST(MysqlStatusTest, BrokenMeansStoppedWithAnError) {
  ReplicaStatus r;
  r.io_state = "Connecting";
  r.sql_state = "Yes";
  r.io_errno = 2003;
  EXPECT_FALSE(isReplicationBroken(r));
  r.io_state = "No";
  EXPECT_TRUE(isReplicationBroken(r));
  r.io_state = "Yes";
  r.io_errno = 0;
  r.sql_state = "No";
  EXPECT_FALSE(isReplicationBroken(r));
  r.sql_errno = 1062;
  EXPECT_TRUE(isReplicationBroken(r));
}

ServerVariables mariadbVars(const char* slave_pos, bool read_only = false) {
  return ServerVariables{true, read_only, slave_pos, slave_pos};
}

TEST(MysqlStatusTest, AppliedAllByGtidOrByCoordinates) {
  ReplicaStatus caught_up = parseReplicaStatus(mariadbRunningRow("1-1-7,2-2-3", "0"));
  EXPECT_TRUE(appliedAllReceived(mariadbVars("1-1-7,2-2-3"), caught_up));
  EXPECT_FALSE(appliedAllReceived(mariadbVars("1-1-6,2-2-3"), caught_up));
  // Without Gtid_IO_Pos (MASTER_USE_GTID=no) the binary log coordinates decide.
  ReplicaStatus by_pos = parseReplicaStatus(mariadbRunningRow("", "0"));
  EXPECT_TRUE(appliedAllReceived(mariadbVars(""), by_pos));
  by_pos.read_pos = 900;
  EXPECT_FALSE(appliedAllReceived(mariadbVars(""), by_pos));
  ServerVariables mysql{false, false, set("A:1-11,B:1-4"), ""};
  EXPECT_FALSE(appliedAllReceived(mysql, parseReplicaStatus(mysqlRow())));
  StatusRow applied = mysqlRow();
  applied["Executed_Gtid_Set"] = set("A:1-12,\nB:1-4");
  EXPECT_TRUE(appliedAllReceived(mysql, parseReplicaStatus(applied)));
}

TEST(MysqlStatusTest, VerdictForHealthyReplica) {
  ReplicationVerdict v =
      assessReplication(mariadbVars("1-1-7,2-2-3"),
                        parseReplicaStatus(mariadbRunningRow("1-1-7,2-2-3", "0")), Millis(10000));
  EXPECT_EQ(v.reason, "MySQL replication check passed: lag 0s");
  EXPECT_FALSE(v.broken);
  EXPECT_EQ(v.lag_ms, 0);
  EXPECT_TRUE(v.info.known);
  EXPECT_TRUE(v.info.is_replica);
  EXPECT_TRUE(v.info.io_running);
  EXPECT_TRUE(v.info.sql_running);
  EXPECT_EQ(v.info.lag_seconds, 0);
  EXPECT_EQ(v.info.last_io_error, "");
  EXPECT_EQ(v.info.gtid_executed, "1-1-7,2-2-3");
  EXPECT_EQ(v.info.gtid_received, "1-1-7,2-2-3");
  EXPECT_TRUE(v.info.applied_all_received);
}

TEST(MysqlStatusTest, VerdictForLaggingReplica) {
  ReplicationVerdict v = assessReplication(
      mariadbVars("1-1-5"), parseReplicaStatus(mariadbRunningRow("1-1-9", "42")), Millis(10000));
  EXPECT_EQ(v.reason, "lag 42s > max_lag 10s");
  EXPECT_EQ(v.lag_ms, 42000);
  EXPECT_FALSE(v.broken);
  EXPECT_FALSE(v.info.applied_all_received);
  // Within max_lag the lag is no problem, only a fact.
  v = assessReplication(mariadbVars("1-1-5"), parseReplicaStatus(mariadbRunningRow("1-1-9", "3")),
                        Millis(3000));
  EXPECT_EQ(v.reason, "MySQL replication check passed: lag 3s");
  v = assessReplication(mariadbVars("1-1-5"), parseReplicaStatus(mariadbRunningRow("1-1-9", "2")),
                        Millis(1500));
  EXPECT_EQ(v.reason, "lag 2s > max_lag 1500ms");
}

TEST(MysqlStatusTest, VerdictForBrokenSqlThread) {
  ReplicationVerdict v = assessReplication(ServerVariables{false, true, set("A:1-11"), ""},
                                           parseReplicaStatus(mysqlRow()), Millis(10000));
  EXPECT_TRUE(v.broken);
  EXPECT_EQ(v.lag_ms, -1);
  EXPECT_EQ(v.info.lag_seconds, -1);
  EXPECT_FALSE(v.info.sql_running);
  EXPECT_EQ(v.info.last_sql_error.rfind("Error 1062: Coordinator stopped", 0), 0u);
  EXPECT_EQ(v.info.gtid_received, set("A:1-12"));
  EXPECT_EQ(v.reason.rfind("replication SQL thread stopped: Error 1062: Coordinator stopped", 0),
            0u)
      << v.reason;
  EXPECT_NE(v.reason.find("; read_only=ON"), std::string::npos) << v.reason;
}

TEST(MysqlStatusTest, VerdictForRetryingIoThread) {
  ReplicationVerdict v =
      assessReplication(mariadbVars(""), parseReplicaStatus(mariadbConnectingRow()), Millis(10000));
  EXPECT_FALSE(v.broken);
  EXPECT_FALSE(v.info.io_running);
  EXPECT_EQ(v.reason.rfind("replication IO thread connecting: Error 2003: error connecting", 0), 0u)
      << v.reason;
  EXPECT_EQ(v.info.last_io_error.rfind("Error 2003: error connecting to master", 0), 0u);
}

TEST(MysqlStatusTest, VerdictForStoppedThreadsAndNonReplicas) {
  StatusRow row = mariadbRunningRow("", "");
  row["Slave_IO_Running"] = "No";
  row["Slave_SQL_Running"] = "No";
  row["Seconds_Behind_Master"] = std::nullopt;
  ReplicationVerdict v = assessReplication(mariadbVars(""), parseReplicaStatus(row), Millis(0));
  EXPECT_EQ(v.reason, "replication SQL thread stopped; replication IO thread stopped");
  EXPECT_FALSE(v.broken);  // stopped by an operator: no error
  v = assessReplication(mariadbVars("", true), std::nullopt, Millis(10000));
  EXPECT_EQ(v.reason, "read_only=ON");
  EXPECT_FALSE(v.info.is_replica);
  EXPECT_TRUE(v.info.applied_all_received);
  EXPECT_EQ(v.lag_ms, -1);
  v = assessReplication(mariadbVars(""), std::nullopt, Millis(10000));
  EXPECT_EQ(v.reason, "MySQL replication check passed: not a replica");
}

TEST(MysqlStatusTest, FailureStatusOfClientErrors) {
  EXPECT_STREQ(mysqlFailureStatus(2002, "Can't connect to server on '127.0.0.1' (115)"), "L4CON");
  EXPECT_STREQ(mysqlFailureStatus(2003, "Can't connect to MySQL server on '10.0.0.1' (111)"),
               "L4CON");
  EXPECT_STREQ(mysqlFailureStatus(2002, "Can't connect to server on '127.0.0.1' (110)"), "L4TOUT");
  EXPECT_STREQ(mysqlFailureStatus(2005, "Unknown server host 'db9' (-2)"), "L4CON");
  EXPECT_STREQ(mysqlFailureStatus(2013,
                                  "Lost connection to server at 'handshake: reading initial "
                                  "communication packet', system error: 110"),
               "L7TOUT");
  EXPECT_STREQ(mysqlFailureStatus(2013, "Lost connection to server during query"), "L7RSP");
  EXPECT_STREQ(mysqlFailureStatus(2027, "Malformed packet"), "L7RSP");
  EXPECT_STREQ(mysqlFailureStatus(5001, "Could not bind"), "L7RSP");
  EXPECT_STREQ(mysqlFailureStatus(1045, "Access denied for user 'm'@'localhost'"), "L7STS");
  EXPECT_STREQ(mysqlFailureStatus(1129, "Host '10.0.0.5' is blocked"), "L7STS");
  EXPECT_STREQ(mysqlFailureStatus(1040, "Too many connections"), "L7STS");
  EXPECT_STREQ(mysqlFailureStatus(3118, "Access denied for user 'm'. Account is locked."), "L7STS");
  EXPECT_TRUE(isAccessDenied(1045));
  EXPECT_TRUE(isAccessDenied(1698));
  EXPECT_FALSE(isAccessDenied(1129));
  EXPECT_FALSE(isAccessDenied(2013));
}

}  // namespace
}  // namespace tandem
