// Two real MariaDB servers in master-master replication, for tests that need the database
// half of the stack. scripts/mariadb-pair.sh does the work (bootstrap, configuration, users,
// replication both ways, verification); this class picks the ports and a directory, runs the
// script, and gives tests SQL access and the failures they need to cause.
//
// One pair per test suite (starting takes a few seconds, so tests share it):
//
//   class MySqlWriterTest : public IntegrationTest {
//    protected:
//     static void SetUpTestSuite() { db_.start(); }
//     static void TearDownTestSuite() { db_.stop(); }
//     // Skips when mariadbd is not installed, fails when the pair did not start, and waits
//     // until replication runs both ways (a previous test may have broken it).
//     void SetUp() override { ASSERT_NO_FATAL_FAILURE(db_.require()); }
//     static SharedMariaDbPair db_;
//   };
//   SharedMariaDbPair MySqlWriterTest::db_;
//
//   TEST_F(MySqlWriterTest, ...) {
//     MariaDbPair& db = db_.get();
//     db.sql(1, "CREATE TABLE app.t (id INT PRIMARY KEY)");
//     ASSERT_TRUE(db.waitCaughtUp(kReplicationTimeout));
//     EXPECT_EQ(db.value(2, "SELECT COUNT(*) FROM app.t"), "0");
//     db.kill9(1);
//     ...
//     db.restart(1);
//   }
//
// Servers are numbered 1 and 2 (db1, db2). Users: root over the unix socket (no password),
// and over TCP app/apppass (ALL on database `app`), monitor/monitorpass (replication
// monitoring) and repl/replpass. Teardown is certain: the destructor stops both servers even
// when a test failed, an atexit hook stops pairs whose owner was never destroyed (exit() from
// a test), and a watchdog started by the script stops the pair and removes its directory
// once this process is gone however it ended (abort, SIGKILL, ctest timeout).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace tandem::it {

// Long enough for a loaded 2-core CI machine; these bound waits, they do not measure.
inline constexpr milliseconds kReplicationTimeout{30000};

// What one statement batch returned. Rows are as `mariadb -N -B` prints them: columns
// separated by '\t', NULL as "NULL", newlines and tabs inside values escaped as \n and \t.
struct SqlResult {
  bool ok = false;
  std::vector<std::string> rows;
  std::string error;  // the client's message when !ok
};

class MariaDbPair {
 public:
  static constexpr const char* kAppUser = "app";
  static constexpr const char* kAppPassword = "apppass";
  static constexpr const char* kAppDatabase = "app";
  static constexpr const char* kMonitorUser = "monitor";
  static constexpr const char* kMonitorPassword = "monitorpass";
  static constexpr const char* kReplUser = "repl";
  static constexpr const char* kReplPassword = "replpass";

  // True when mariadbd, mariadb-install-db and the mariadb client are installed; otherwise
  // false with the reason in *why.
  static bool available(std::string* why);

  // Starts the pair on two free loopback ports in a new temporary directory and returns once
  // replication runs both ways. Throws std::runtime_error with the script's output if not.
  MariaDbPair();
  ~MariaDbPair();
  MariaDbPair(const MariaDbPair&) = delete;
  MariaDbPair& operator=(const MariaDbPair&) = delete;

  uint16_t port(int i) const;
  std::string socket(int i) const;
  // The pair's directory (db1/, db2/, pair.env) and one server's data directory.
  const std::filesystem::path& dir() const { return dir_.path(); }
  std::filesystem::path dataDir(int i) const;
  // The server's error log, for failure messages.
  std::string errorLog(int i) const;
  // The pid of mariadbd i, or -1 when it is not running.
  pid_t pid(int i) const;
  bool running(int i) const { return pid(i) > 0; }

  // Runs `statements` (one or several, separated by ';') as root over server i's socket.
  SqlResult trySql(int i, const std::string& statements) const;
  // The same, but a client or SQL error throws std::runtime_error naming the server, the
  // statement and the error (GoogleTest reports it as the test's failure).
  std::vector<std::string> sql(int i, const std::string& statements) const;
  // The first column of the first row ("" when there is no row); throws like sql().
  std::string value(int i, const std::string& query) const;
  // Runs `statements` as `user` over TCP to 127.0.0.1:port: a server of the pair, or a
  // Tandem frontend in front of it. Never throws.
  static SqlResult tcpSql(uint16_t port, const std::string& user, const std::string& password,
                          const std::string& statements, const std::string& database = "");
  // SHOW SLAVE STATUS as field -> value (empty when server i is not a slave or is down).
  std::map<std::string, std::string> slaveStatus(int i) const;
  // One SHOW GLOBAL STATUS value, e.g. "Rpl_semi_sync_master_status" ("" if unknown).
  std::string globalStatus(int i, const std::string& name) const;

  // SIGKILL to mariadbd i; returns once it is gone.
  void kill9(int i);
  // Starts server i again on its data directory and port (stops it cleanly first if it is
  // running) and returns once it accepts logins. Its slave threads start by themselves and
  // the peer reconnects within about a second; waitReplicationHealthy() waits for both.
  void restart(int i);
  void stopSqlThread(int i);
  void startSqlThread(int i);
  // Undoes what a test may have left behind: restarts a server that is down and starts
  // slave threads that were stopped. A thread stopped by an error stays stopped (its event
  // fails again); waitCaughtUp() then stays false.
  void heal();
  // Stops both servers (SIGTERM, then SIGKILL after a grace period). Safe to repeat; the
  // destructor calls it.
  void stop();

  // True once both servers run with their IO and SQL threads "Yes".
  bool waitReplicationHealthy(milliseconds timeout) const;
  // True once replication is healthy and both servers hold the same transactions (equal
  // @@gtid_binlog_pos, compared as sets of domain-server-sequence).
  bool waitCaughtUp(milliseconds timeout) const;
  // One line per server from `mariadb-pair.sh status`, for failure messages.
  std::string describe() const;

 private:
  struct ScriptResult;
  ScriptResult runScript(const std::vector<std::string>& args, milliseconds timeout) const;
  void runScriptOrThrow(const std::vector<std::string>& args, milliseconds timeout) const;
  void checkIndex(int i) const;

  TempDir dir_;
  uint16_t ports_[2] = {0, 0};
  bool stopped_ = false;
};

// Holds one MariaDbPair for a test suite: start() in SetUpTestSuite, require() in SetUp,
// stop() in TearDownTestSuite (see the example at the top of this file).
class SharedMariaDbPair {
 public:
  // Starts the pair, or records why it could not (reported by require()). Never throws.
  void start();
  // Fails the test when MariaDB is not installed or the pair did not start.
  // Otherwise makes sure the test starts on a replicating, caught-up pair: heals what an
  // earlier test left (a killed server, a stopped thread) and, if replication is broken for
  // good (an SQL error), replaces the pair with a fresh one. Data in `app` stays from test
  // to test: use table names of your own.
  void require();
  void stop();
  MariaDbPair& get() { return *pair_; }
  MariaDbPair* operator->() { return pair_.get(); }

 private:
  std::unique_ptr<MariaDbPair> pair_;
  std::string skip_reason_;
  std::string start_error_;
};

}  // namespace tandem::it
