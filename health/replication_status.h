// What a MySQL or MariaDB server's answers mean for its health check: GTID positions, the
// rows of SHOW REPLICA STATUS, the reason shown to operators, and the check status of a
// failed client call. Pure functions, no I/O: MysqlCheck gathers the answers on a pool
// thread and hands them here.
//
//   ServerVariables vars{.read_only = true, .gtid_executed = "1-1-100", ...};
//   ReplicaStatus replica = parseReplicaStatus(row);      // one row, by column name
//   ReplicationVerdict v = assessReplication(vars, replica, Millis(10000));
//   v.info    -> Server::replication
//   v.broken  -> Server::replication_broken
//   v.lag_ms  -> Server::lag_ms
//   v.reason  -> the check's reason: "replication SQL thread stopped: Error 1062: ..."
//
// Both server families are understood. MariaDB (10.5+ accepts SHOW REPLICA STATUS but keeps
// the Slave_* and *_Master column names) positions are "domain-server-seq" per domain;
// MySQL 8 (Replica_* and *_Source names; 8.4 no longer accepts SHOW SLAVE STATUS) uses GTID
// sets "uuid:1-100:105".
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/duration.h"
#include "core/model.h"

namespace tandem {

// --- GTID positions -----------------------------------------------------------------------

// A MariaDB GTID position, "0-1-100,1-2-57": the last sequence number of each replication
// domain (the middle number, the server id, does not order anything). Domain -> seq_no.
using MariadbGtidPos = std::map<uint32_t, uint64_t>;
// Empty text is an empty position; nullopt when the text is not a GTID list or names a
// domain twice.
std::optional<MariadbGtidPos> parseMariadbGtidPos(std::string_view text);

// A MySQL GTID set, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:11,\n<uuid>:tag:1-3": per
// source (the uuid, with its tag since 8.3) the transaction numbers as inclusive intervals,
// sorted and merged.
struct GtidInterval {
  uint64_t first = 0;
  uint64_t last = 0;
};
using MysqlGtidSet = std::map<std::string, std::vector<GtidInterval>>;
std::optional<MysqlGtidSet> parseMysqlGtidSet(std::string_view text);

// MariaDB: has the SQL thread applied everything the IO thread received? True when every
// domain of `received` (Gtid_IO_Pos) is in `applied` (@@gtid_slave_pos) with a sequence
// number at least as high. nullopt when either does not parse.
std::optional<bool> mariadbAppliedAll(std::string_view received, std::string_view applied);
// MySQL: the same question, as Retrieved_Gtid_Set being contained in Executed_Gtid_Set.
std::optional<bool> mysqlAppliedAll(std::string_view retrieved, std::string_view executed);

// --- The server's answers -----------------------------------------------------------------

// One result row, column name -> value; nullopt is SQL NULL (Seconds_Behind_Master is NULL
// while the SQL thread is stopped, which is not the same as 0).
using StatusRow = std::map<std::string, std::optional<std::string>, std::less<>>;

// From SELECT @@read_only, @@gtid_current_pos, @@gtid_slave_pos (MariaDB), or
// SELECT @@read_only, @@gtid_executed (MySQL, which knows neither of the other two).
struct ServerVariables {
  bool mariadb = true;
  bool read_only = false;
  std::string gtid_executed;   // @@gtid_current_pos or @@gtid_executed
  std::string gtid_slave_pos;  // MariaDB: the last GTID the SQL thread applied per domain
};

// The replication facts of one SHOW REPLICA STATUS row, under either family's column names.
struct ReplicaStatus {
  std::string io_state;   // "Yes", "No", "Connecting" (retrying), "Preparing" (MySQL)
  std::string sql_state;  // "Yes" or "No"
  std::optional<int64_t> lag_seconds;
  int64_t io_errno = 0;
  std::string io_error;
  int64_t sql_errno = 0;
  std::string sql_error;
  std::string gtid_io_pos;         // MariaDB: Gtid_IO_Pos, what the IO thread received
  std::string retrieved_gtid_set;  // MySQL: what the IO thread received
  std::string executed_gtid_set;   // MySQL: what this server executed
  // Binary log coordinates, for replication without GTIDs: what the IO thread read from
  // the source, and how far the SQL thread executed in the source's terms.
  std::string read_file;
  uint64_t read_pos = 0;
  std::string exec_file;
  uint64_t exec_pos = 0;
};
ReplicaStatus parseReplicaStatus(const StatusRow& row);

// A thread that stopped with an error waits for an operator; one still "Connecting" retries
// by itself (its source may just be down, as when the old writer died), so it is not broken.
bool isReplicationBroken(const ReplicaStatus& replica);

// True when the replica has applied everything it received: by GTID where the IO thread
// keeps a GTID position, else by binary log coordinates. False when the positions do not
// parse.
bool appliedAllReceived(const ServerVariables& vars, const ReplicaStatus& replica);

struct ReplicationVerdict {
  ReplicationInfo info;  // known = true
  bool broken = false;
  int64_t lag_ms = -1;  // -1: unknown (not a replica, or Seconds_Behind_Master is NULL)
  std::string reason;
};
// `replica` is nullopt when SHOW REPLICA STATUS returned no row (replication is not
// configured). max_lag only shapes the reason: "lag 42s > max_lag 10s".
ReplicationVerdict assessReplication(const ServerVariables& vars,
                                     const std::optional<ReplicaStatus>& replica, Millis max_lag);

// The facts worth an operator's attention, most urgent first, joined with "; " (empty when
// there are none): a stopped or retrying thread with its error, lag over max_lag, and
// read_only=ON.
std::string replicationProblems(const ServerVariables& vars,
                                const std::optional<ReplicaStatus>& replica, Millis max_lag);

// --- Failed client calls ------------------------------------------------------------------

// HAProxy's check_status for a failed libmysqlclient call, from mysql_errno() and
// mysql_error():
//   L4CON   no TCP connection (2002, 2003, 2005: refused, unreachable, unknown host)
//   L4TOUT  the same errors when the connect timed out (errno 110 in the text)
//   L7TOUT  connected, then the server stopped answering (2013 with errno 110)
//   L7RSP   the conversation broke: connection lost, malformed packet (other client errors)
//   L7STS   the server answered with an error packet: 1045 access denied, 1129 host
//           blocked, 1040 too many connections, 1227 missing privilege, ...
const char* mysqlFailureStatus(unsigned error, std::string_view message);

// The server refused the login: it sent its greeting and read the client's answer, so a
// handshake-only check counts this as a pass. 1698 is what MariaDB answers for an account
// that logs in only through its UNIX socket.
bool isAccessDenied(unsigned error);

}  // namespace tandem
