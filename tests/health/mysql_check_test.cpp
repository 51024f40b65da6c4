// MySQL checks against real servers: Debian's mariadbd, started by the tests in temporary
// data directories on free loopback ports, plus raw sockets for servers that misbehave (one
// that never greets, one whose greeting is an error packet).
//
// Starting a server costs about two seconds, so each suite shares its servers; ctest runs
// every test in its own process, where the suite is that one test. Tests leave a shared
// server as they found it. Without mariadbd installed the server tests skip.
#include "health/mysql_check.h"

#include <errmsg.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <mysql.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "check_fixture.h"

namespace tandem {
namespace {

using check_test::CheckLoopTest;
using check_test::fastCheck;
using check_test::infoOf;
using check_test::LoopbackListener;
using check_test::serverAt;
using check_test::unusedPort;

constexpr const char* kMariadbd = "/usr/sbin/mariadbd";
constexpr const char* kInstallDb = "/usr/bin/mariadb-install-db";

// Runs argv with stdout and stderr appended to `log`; returns the child's pid (-1 on error).
pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  pid_t pid = fork();
  if (pid != 0) {
    return pid;
  }
  // A server must not outlive a test binary that crashed.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  dup2(fd, STDOUT_FILENO);
  dup2(fd, STDERR_FILENO);
  std::vector<char*> argv;
  for (const std::string& arg : args) {
    argv.push_back(const_cast<char*>(arg.c_str()));
  }
  argv.push_back(nullptr);
  execv(argv[0], argv.data());
  _exit(127);
}

std::string tail(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string all = text.str();
  return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
}

// One mariadbd with its own data directory, reachable as root (no password) on
// 127.0.0.1:port(). Destroying it stops the server and removes the directory.
class MariadbServer {
 public:
  static bool available() { return access(kMariadbd, X_OK) == 0 && access(kInstallDb, X_OK) == 0; }

  ~MariadbServer() { stop(); }

  // server_id doubles as the GTID domain, so that each server's writes are told apart.
  bool start(int server_id, std::string* error) {
    char pattern[] = "/tmp/tandem-mysql-test-XXXXXX";
    if (mkdtemp(pattern) == nullptr) {
      *error = "mkdtemp failed";
      return false;
    }
    dir_ = pattern;
    std::filesystem::create_directory(dir_ + "/tmp");
    port_ = unusedPort();
    return install(error) && launch(server_id, error) && waitReady(error);
  }

  void stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      if (!waitExit(std::chrono::seconds(20))) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
      }
      pid_ = -1;
    }
    if (!dir_.empty()) {
      std::filesystem::remove_all(dir_);
      dir_.clear();
    }
  }

  uint16_t port() const { return port_; }

  // Runs statements (";"-separated, on one connection) as root; returns the first error's
  // text, empty on success.
  std::string execute(const std::string& statements) const {
    MYSQL* mysql = connectRoot();
    std::string error;
    if (mysql_errno(mysql) != 0 || mysql_query(mysql, statements.c_str()) != 0) {
      error = mysql_error(mysql);
    }
    for (int more = error.empty() ? 0 : -1; more == 0; more = mysql_next_result(mysql)) {
      if (MYSQL_RES* result = mysql_store_result(mysql)) {
        mysql_free_result(result);
      }
    }
    if (error.empty() && mysql_errno(mysql) != 0) {
      error = mysql_error(mysql);
    }
    mysql_close(mysql);
    return error;
  }

  // The first column of the first row, or "" (also for NULL and errors).
  std::string value(const std::string& query) const {
    MYSQL* mysql = connectRoot();
    std::string out;
    if (mysql_errno(mysql) == 0 && mysql_query(mysql, query.c_str()) == 0) {
      if (MYSQL_RES* result = mysql_store_result(mysql)) {
        MYSQL_ROW row = mysql_fetch_row(result);
        if (row != nullptr && mysql_num_fields(result) > 0 && row[0] != nullptr) {
          out = row[0];
        }
        mysql_free_result(result);
      }
    }
    mysql_close(mysql);
    return out;
  }

 private:
  // Small InnoDB files keep the bootstrap near two seconds; a private tmpdir keeps servers
  // started side by side (ctest -j) off each other's temporary tables; as root, mariadbd
  // refuses to start without being told to stay root.
  void addCommonOptions(std::vector<std::string>* args) const {
    args->push_back("--tmpdir=" + dir_ + "/tmp");
    for (const char* option : {"--innodb-buffer-pool-size=16M", "--innodb-log-file-size=4M",
                               "--innodb-data-file-path=ibdata1:4M:autoextend"}) {
      args->push_back(option);
    }
    if (geteuid() == 0) {
      args->push_back("--user=root");
    }
  }

  bool install(std::string* error) {
    std::vector<std::string> args = {kInstallDb, "--no-defaults", "--datadir=" + dir_ + "/data",
                                     "--auth-root-authentication-method=normal", "--skip-test-db"};
    addCommonOptions(&args);
    pid_t pid = spawn(args, dir_ + "/install.log");
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      *error = "mariadb-install-db failed:\n" + tail(dir_ + "/install.log");
      return false;
    }
    return true;
  }

  bool launch(int server_id, std::string* error) {
    std::string id = std::to_string(server_id);
    std::vector<std::string> args = {kMariadbd,
                                     "--no-defaults",
                                     "--datadir=" + dir_ + "/data",
                                     "--port=" + std::to_string(port_),
                                     "--bind-address=127.0.0.1",
                                     "--socket=" + dir_ + "/mysqld.sock",
                                     "--pid-file=" + dir_ + "/mysqld.pid",
                                     "--log-error=" + dir_ + "/error.log",
                                     "--skip-name-resolve",
                                     "--server-id=" + id,
                                     "--gtid-domain-id=" + id,
                                     "--log-bin=binlog",
                                     "--log-slave-updates"};
    addCommonOptions(&args);
    pid_ = spawn(args, dir_ + "/stdout.log");
    if (pid_ < 0) {
      *error = "fork failed";
      return false;
    }
    return true;
  }

  bool waitReady(std::string* error) {
    auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < limit) {
      MYSQL* mysql = connectRoot();
      bool ready = mysql_errno(mysql) == 0;
      mysql_close(mysql);
      if (ready) {
        return true;
      }
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    *error = "mariadbd did not start:\n" + tail(dir_ + "/error.log");
    return false;
  }

  bool waitExit(std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // The caller checks mysql_errno() and always calls mysql_close().
  MYSQL* connectRoot() const {
    MYSQL* mysql = mysql_init(nullptr);
    unsigned timeout = 5;
    mysql_options(mysql, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(mysql, MYSQL_OPT_READ_TIMEOUT, &timeout);
    mysql_real_connect(mysql, "127.0.0.1", "root", "", nullptr, port_, nullptr,
                       CLIENT_MULTI_STATEMENTS);
    return mysql;
  }

  std::string dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// Starts a server for a suite, or records why it could not (the tests then skip or fail).
std::unique_ptr<MariadbServer> startServer(int server_id, std::string* problem) {
  if (!MariadbServer::available()) {
    *problem = "mariadbd is not installed (apt-get install mariadb-server)";
    return nullptr;
  }
  auto server = std::make_unique<MariadbServer>();
  if (!server->start(server_id, problem)) {
    return nullptr;
  }
  return server;
}

// The monitor account of the checks: the right to read replication state, nothing else.
// MariaDB 10.5.9 split that right out as SLAVE MONITOR.
void createMonitorUsers(const MariadbServer& server) {
  for (const char* statement : {"CREATE USER 'monitor'@'%' IDENTIFIED BY 'm0nitor-pw'",
                                "GRANT SLAVE MONITOR ON *.* TO 'monitor'@'%'",
                                "CREATE USER 'plain'@'%' IDENTIFIED BY 'plain-pw'"}) {
    std::string error = server.execute(statement);
    ASSERT_EQ(error, "") << statement;
  }
}

CheckConfig mysqlCheck(MysqlCheckMode mode, std::string user = "", std::string password = "") {
  CheckConfig check = fastCheck();
  check.type = CheckType::kMysql;
  check.mysql_mode = mode;
  check.user = std::move(user);
  check.password = std::move(password);
  return check;
}

CheckConfig monitorCheck(MysqlCheckMode mode = MysqlCheckMode::kReplication) {
  return mysqlCheck(mode, "monitor", "m0nitor-pw");
}

BackendConfig dbBackend(std::vector<ServerConfig> servers, const CheckConfig& check) {
  return check_test::backendOf("db", std::move(servers), check);
}

ReplicationInfo replicationOf(const Server& server) {
  std::lock_guard<std::mutex> lock(server.check_mutex);
  return server.replication;
}

// A raw TCP server whose greeting is an error packet, as a server out of connection slots
// sends it: 0xff, the error number (1040) in little-endian, then the message. Before the
// handshake there is no SQL state marker.
class ErrorGreetingServer {
 public:
  bool start() {
    if (!listener_.open()) {
      return false;
    }
    thread_ = std::thread([this] { serve(); });
    return true;
  }
  ~ErrorGreetingServer() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  uint16_t port() const { return listener_.port(); }

 private:
  void serve() {
    std::string message = "Too many connections";
    std::string payload = std::string("\xff\x10\x04", 3) + message;
    std::string packet = {static_cast<char>(payload.size()), 0, 0, 0};
    packet += payload;
    while (!stop_) {
      int fd = listener_.acceptOne(20);
      if (fd >= 0) {
        ssize_t written = write(fd, packet.data(), packet.size());
        (void)written;  // a check that already gave up is no concern here
        close(fd);
      }
    }
  }

  LoopbackListener listener_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

class MysqlCheckTest : public CheckLoopTest {
 protected:
  static void SetUpTestSuite() {
    server_ = startServer(1, &problem_).release();
    if (server_ != nullptr) {
      createMonitorUsers(*server_);
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    CheckLoopTest::SetUp();
    // scripts/install-deps.sh installs MariaDB: without it these tests fail, never skip.
    ASSERT_NE(server_, nullptr) << problem_;
  }

  ServerConfig db1() const { return serverAt("db1", server_->port()); }

  static MariadbServer* server_;
  static std::string problem_;
};

MariadbServer* MysqlCheckTest::server_ = nullptr;
std::string MysqlCheckTest::problem_;

// Without credentials the login is refused after the greeting, and that passes. The
// server's own counter proves the refusal happened.
TEST_F(MysqlCheckTest, HandshakeWithoutCredentialsIsUp) {
  int64_t denied_before =
      std::stoll(server_->value("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                                "WHERE VARIABLE_NAME = 'ACCESS_DENIED_ERRORS'"));
  startChecker({dbBackend({db1()}, mysqlCheck(MysqlCheckMode::kHandshake))});
  ASSERT_TRUE(waitFor([&] { return infoOf(db("db1")).status == "L7OK"; }));
  CheckInfo info = infoOf(db("db1"));
  EXPECT_EQ(info.reason, "MySQL handshake passed");
  EXPECT_TRUE(db("db1").up.load());
  int64_t denied_after =
      std::stoll(server_->value("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                                "WHERE VARIABLE_NAME = 'ACCESS_DENIED_ERRORS'"));
  EXPECT_GT(denied_after, denied_before);
  EXPECT_FALSE(replicationOf(db("db1")).known);  // a handshake reads no replication state
}

TEST_F(MysqlCheckTest, LoginIsUp) {
  startChecker({dbBackend({db1()}, monitorCheck(MysqlCheckMode::kLogin))});
  ASSERT_TRUE(waitFor([&] { return infoOf(db("db1")).health == 3; }));  // rise 2 + fall 2 - 1
  CheckInfo info = infoOf(db("db1"));
  EXPECT_EQ(info.status, "L7OK");
  EXPECT_EQ(info.reason, "MySQL login passed");
  EXPECT_EQ(takeTrace("db/db1"), (std::vector<std::string>{"UP 2", "UP 3"}));
}

TEST_F(MysqlCheckTest, WrongPasswordIsDownWithTheServersWords) {
  CheckConfig check = mysqlCheck(MysqlCheckMode::kLogin, "monitor", "wrong");
  startChecker({dbBackend({db1()}, check)});
  ASSERT_TRUE(waitFor([&] { return !db("db1").up.load(); }));
  CheckInfo info = infoOf(db("db1"));
  EXPECT_EQ(info.status, "L7STS");
  EXPECT_NE(info.reason.find("Access denied for user 'monitor'"), std::string::npos) << info.reason;
}

TEST_F(MysqlCheckTest, ReplicationModeOnAServerThatIsNoReplica) {
  startChecker({dbBackend({db1()}, monitorCheck())});
  ASSERT_TRUE(waitFor([&] { return infoOf(db("db1")).status == "L7OK"; }));
  EXPECT_EQ(infoOf(db("db1")).reason, "MySQL replication check passed: not a replica");
  ReplicationInfo info = replicationOf(db("db1"));
  EXPECT_TRUE(info.known);
  EXPECT_FALSE(info.is_replica);
  EXPECT_FALSE(info.read_only);
  EXPECT_TRUE(info.applied_all_received);
  EXPECT_EQ(db("db1").lag_ms.load(), -1);
  EXPECT_FALSE(db("db1").replication_broken.load());

  ASSERT_EQ(server_->execute("SET GLOBAL read_only = 1"), "");
  bool seen = waitFor([&] { return infoOf(db("db1")).reason == "read_only=ON"; });
  ASSERT_EQ(server_->execute("SET GLOBAL read_only = 0"), "");
  ASSERT_TRUE(seen) << infoOf(db("db1")).reason;
  EXPECT_TRUE(replicationOf(db("db1")).read_only);
  EXPECT_TRUE(db("db1").up.load());  // read_only is a fact to show, not a failure
}

// The account may log in but not read SHOW REPLICA STATUS: the server is UP, the facts are
// unknown, and the reason says which privilege is missing.
TEST_F(MysqlCheckTest, ReplicationStateUnreadableWithoutThePrivilege) {
  startChecker({dbBackend({db1()}, mysqlCheck(MysqlCheckMode::kReplication, "plain", "plain-pw"))});
  ASSERT_TRUE(waitFor([&] { return infoOf(db("db1")).status == "L7OK"; }));
  std::string reason = infoOf(db("db1")).reason;
  EXPECT_EQ(reason.rfind("MySQL replication status unreadable: Error 1227: ", 0), 0u) << reason;
  EXPECT_NE(reason.find("SLAVE MONITOR"), std::string::npos) << reason;
  EXPECT_FALSE(replicationOf(db("db1")).known);
}

// A replica whose source is a closed port: the IO thread retries ("Connecting") with error
// 2003. That is a reason to show, not a broken replica: the source may just be down.
TEST_F(MysqlCheckTest, ReplicaWhoseSourceIsDown) {
  std::string setup = server_->execute(
      "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = " + std::to_string(unusedPort()) +
      ", MASTER_USER = 'repl', MASTER_PASSWORD = 'x', MASTER_CONNECT_RETRY = 1, "
      "MASTER_USE_GTID = slave_pos");
  ASSERT_EQ(setup, "");
  ASSERT_EQ(server_->execute("START SLAVE"), "");
  startChecker({dbBackend({db1()}, monitorCheck())});
  bool seen = waitFor([&] {
    return infoOf(db("db1")).reason.starts_with("replication IO thread connecting: Error 2003");
  });
  CheckInfo check = infoOf(db("db1"));
  ReplicationInfo info = replicationOf(db("db1"));
  server_->execute("STOP SLAVE");
  server_->execute("RESET SLAVE ALL");
  ASSERT_TRUE(seen) << check.reason;
  EXPECT_EQ(check.status, "L7OK");
  EXPECT_TRUE(info.known);
  EXPECT_TRUE(info.is_replica);
  EXPECT_FALSE(info.io_running);
  EXPECT_TRUE(info.sql_running);
  EXPECT_EQ(info.lag_seconds, -1);
  EXPECT_EQ(info.last_io_error.rfind("Error 2003: error connecting to master", 0), 0u)
      << info.last_io_error;
  EXPECT_EQ(info.last_sql_error, "");
  EXPECT_FALSE(db("db1").replication_broken.load());
  EXPECT_TRUE(db("db1").up.load());
}

// The silent server takes the whole check timeout (1.5 s here, 2 s in the client library,
// so the late outcome arrives after the timer reported and must be dropped); meanwhile the
// real server, checked from the same pool, keeps answering in milliseconds.
TEST_F(MysqlCheckTest, SilentServerIsDownWithoutDelayingTheOthers) {
  LoopbackListener silent;  // the kernel accepts; nobody ever greets
  ASSERT_TRUE(silent.open());
  CheckConfig check = monitorCheck(MysqlCheckMode::kLogin);
  check.interval = check.fastinter = check.downinter = Millis(100);
  check.timeout = Millis(1500);
  startChecker({dbBackend({db1(), serverAt("silent", silent.port())}, check)});
  uint64_t started = uv_now(&loop_);
  int64_t slowest_db1 = 0;
  int db1_down_seen = 0;
  ASSERT_TRUE(waitFor([&] {
    CheckInfo info = infoOf(db("db1"));
    slowest_db1 = std::max(slowest_db1, info.duration_ms);
    db1_down_seen += db("db1").up.load() ? 0 : 1;
    return !db("silent").up.load();
  }));
  uint64_t took = uv_now(&loop_) - started;
  CheckInfo info = infoOf(db("silent"));
  EXPECT_EQ(info.status, "L7TOUT") << info.reason;
  // fall (2) results, the first after the full timeout: well under 2 x (interval + timeout).
  EXPECT_LE(took, 2 * (100 + 1500) + 500u);
  EXPECT_GE(took, 1500u);
  runFor(Millis(1000));  // the late outcomes come in now, and are dropped
  slowest_db1 = std::max(slowest_db1, infoOf(db("db1")).duration_ms);
  EXPECT_EQ(db1_down_seen, 0);
  EXPECT_TRUE(db("db1").up.load());
  EXPECT_LT(slowest_db1, 1000) << "db1's check waited behind the silent server";
  EXPECT_EQ(infoOf(db("db1")).status, "L7OK");
  EXPECT_FALSE(db("silent").up.load());
}

// HAProxy's mysql-check rule: a greeting that is an error packet is a failure, with the
// server's own message.
TEST_F(MysqlCheckTest, ErrorPacketInsteadOfGreetingIsDown) {
  ErrorGreetingServer full;
  ASSERT_TRUE(full.start());
  startChecker(
      {dbBackend({serverAt("full", full.port())}, mysqlCheck(MysqlCheckMode::kHandshake))});
  ASSERT_TRUE(waitFor([&] { return !db("full").up.load(); }));
  CheckInfo info = infoOf(db("full"));
  EXPECT_EQ(info.status, "L7STS");
  EXPECT_EQ(info.reason, "Too many connections");
}

// No server at all: these need no mariadbd.
class MysqlCheckWithoutServerTest : public CheckLoopTest {};

TEST_F(MysqlCheckWithoutServerTest, ConnectionRefusedIsL4CON) {
  startChecker(
      {dbBackend({serverAt("db1", unusedPort())}, mysqlCheck(MysqlCheckMode::kHandshake))});
  ASSERT_TRUE(waitFor([&] { return !db("db1").up.load(); }));
  CheckInfo info = infoOf(db("db1"));
  EXPECT_EQ(info.status, "L4CON");
  EXPECT_NE(info.reason.find("Can't connect"), std::string::npos) << info.reason;
}

// A conversation blocked in the client library when its check closes and is destroyed:
// stopping the pool waits for it (its client timeout bounds the wait) and its outcome,
// arriving for a check that is gone, is dropped. Under AddressSanitizer a use-after-free
// here would abort.
TEST_F(MysqlCheckWithoutServerTest, StopWithABlockingCallInFlight) {
  LoopbackListener silent;
  ASSERT_TRUE(silent.open());
  CheckConfig check = mysqlCheck(MysqlCheckMode::kHandshake);
  check.timeout = Millis(2000);
  Config config;
  config.backends = {dbBackend({serverAt("db1", silent.port())}, check)};
  runtime_ = std::make_unique<Runtime>(std::move(config));
  std::shared_ptr<BlockingPool> pool = MysqlCheck::makePool(&loop_, 2);
  auto mysql = std::make_unique<MysqlCheck>(&loop_, db("db1"), check, nullptr, pool);
  mysql->start(Millis(0));
  ASSERT_TRUE(waitFor([&] { return infoOf(db("db1")).checking; }));
  runFor(Millis(200));  // the pool thread is now inside mysql_real_connect
  bool closed = false;
  mysql->close([&closed] { closed = true; });
  ASSERT_TRUE(waitFor([&closed] { return closed; }));
  mysql.reset();
  auto before = std::chrono::steady_clock::now();
  pool.reset();  // the last reference: stop() joins the blocked thread
  auto waited = std::chrono::steady_clock::now() - before;
  EXPECT_GE(waited, std::chrono::milliseconds(500)) << "no call was in flight";
  EXPECT_LE(waited, std::chrono::milliseconds(4000)) << "the client timeout did not bound it";
  EXPECT_EQ(infoOf(db("db1")).status, "INI");  // no result was ever recorded
}

// The same conversation, but the pool lives on: the outcome reaches the loop after the check
// was destroyed and must find nobody to deliver to (no status is ever recorded).
TEST_F(MysqlCheckWithoutServerTest, LateOutcomeForADestroyedCheckIsDropped) {
  LoopbackListener silent;
  ASSERT_TRUE(silent.open());
  CheckConfig check = mysqlCheck(MysqlCheckMode::kHandshake);
  check.timeout = Millis(1000);
  Config config;
  config.backends = {dbBackend({serverAt("db1", silent.port())}, check)};
  runtime_ = std::make_unique<Runtime>(std::move(config));
  std::shared_ptr<BlockingPool> pool = MysqlCheck::makePool(&loop_, 2);
  auto mysql = std::make_unique<MysqlCheck>(&loop_, db("db1"), check, nullptr, pool);
  mysql->start(Millis(0));
  ASSERT_TRUE(waitFor([&] { return infoOf(db("db1")).checking; }));
  runFor(Millis(200));
  bool closed = false;
  mysql->close([&closed] { closed = true; });
  ASSERT_TRUE(waitFor([&closed] { return closed; }));
  mysql.reset();
  runFor(Millis(1500));  // the client library gives up after 1 s; its outcome comes back
  EXPECT_EQ(infoOf(db("db1")).status, "INI");
  pool.reset();
}

TEST(MysqlCheckTimeoutTest, ClientTimeoutIsWholeSecondsRoundedUp) {
  EXPECT_EQ(MysqlCheck::clientTimeoutSeconds(Millis(1)), 1u);
  EXPECT_EQ(MysqlCheck::clientTimeoutSeconds(Millis(200)), 1u);
  EXPECT_EQ(MysqlCheck::clientTimeoutSeconds(Millis(1000)), 1u);
  EXPECT_EQ(MysqlCheck::clientTimeoutSeconds(Millis(1001)), 2u);
  EXPECT_EQ(MysqlCheck::clientTimeoutSeconds(Millis(1500)), 2u);
  EXPECT_EQ(MysqlCheck::clientTimeoutSeconds(Millis(60000)), 60u);
}

// A replica (server 2) of a real source (server 1), with GTIDs, as one half of the
// master-master pair sees the other.
class MysqlReplicationTest : public CheckLoopTest {
 protected:
  static void SetUpTestSuite() {
    source_ = startServer(1, &problem_).release();
    replica_ = source_ == nullptr ? nullptr : startServer(2, &problem_).release();
    if (replica_ == nullptr) {
      return;
    }
    createMonitorUsers(*replica_);
    problem_ = configureReplication();
  }
  static void TearDownTestSuite() {
    delete replica_;
    delete source_;
    replica_ = source_ = nullptr;
  }

  static std::string configureReplication() {
    std::string change_master = "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = " +
                                std::to_string(source_->port()) +
                                ", MASTER_USER = 'root', MASTER_PASSWORD = '', "
                                "MASTER_CONNECT_RETRY = 1, MASTER_USE_GTID = slave_pos";
    std::string error = replica_->execute(change_master + "; START SLAVE");
    if (error.empty()) {
      error = source_->execute("CREATE DATABASE t; CREATE TABLE t.rows (id INT PRIMARY KEY)");
    }
    return error;
  }

  void SetUp() override {
    CheckLoopTest::SetUp();
    ASSERT_NE(replica_, nullptr) << problem_;
    ASSERT_EQ(problem_, "");
    startChecker({dbBackend({serverAt("replica", replica_->port())}, monitorCheck())});
  }

  Server& replica() { return db("replica"); }
  bool reasonIs(const std::string& reason) { return infoOf(replica()).reason == reason; }
  bool reasonStartsWith(const std::string& prefix) {
    return infoOf(replica()).reason.starts_with(prefix);
  }
  // Waits until the replica received and applied everything the source wrote (the
  // replica's own writes, such as its users, are in its own GTID domain).
  bool caughtUp() {
    std::string written = source_->value("SELECT @@gtid_binlog_pos");
    return waitFor([&] {
      ReplicationInfo info = replicationOf(replica());
      return reasonIs("MySQL replication check passed: lag 0s") && info.applied_all_received &&
             info.gtid_received == written;
    });
  }

  static MariadbServer* source_;
  static MariadbServer* replica_;
  static std::string problem_;
};

MariadbServer* MysqlReplicationTest::source_ = nullptr;
MariadbServer* MysqlReplicationTest::replica_ = nullptr;
std::string MysqlReplicationTest::problem_;

TEST_F(MysqlReplicationTest, CaughtUpReplica) {
  ASSERT_EQ(source_->execute("INSERT INTO t.rows VALUES (1), (2)"), "");
  ASSERT_TRUE(caughtUp()) << infoOf(replica()).reason;
  ReplicationInfo info = replicationOf(replica());
  EXPECT_TRUE(info.is_replica);
  EXPECT_TRUE(info.io_running);
  EXPECT_TRUE(info.sql_running);
  EXPECT_EQ(info.lag_seconds, 0);
  EXPECT_EQ(info.last_io_error, "");
  EXPECT_EQ(info.last_sql_error, "");
  EXPECT_EQ(info.gtid_received.rfind("1-1-", 0), 0u) << info.gtid_received;
  EXPECT_EQ(replica().lag_ms.load(), 0);
  EXPECT_FALSE(replica().replication_broken.load());
}

// A paused SQL thread: what the IO thread received is not applied, lag is unknown, and the
// replica is not broken (no error). Resumed, it catches up.
TEST_F(MysqlReplicationTest, PausedSqlThreadHasNotAppliedWhatItReceived) {
  ASSERT_TRUE(caughtUp()) << infoOf(replica()).reason;
  ASSERT_EQ(replica_->execute("STOP SLAVE SQL_THREAD"), "");
  ASSERT_EQ(source_->execute("INSERT INTO t.rows VALUES (10)"), "");
  bool seen = waitFor([&] {
    return reasonIs("replication SQL thread stopped") &&
           !replicationOf(replica()).applied_all_received;
  });
  ReplicationInfo info = replicationOf(replica());
  ASSERT_EQ(replica_->execute("START SLAVE SQL_THREAD"), "");
  ASSERT_TRUE(seen) << infoOf(replica()).reason;
  EXPECT_FALSE(info.sql_running);
  EXPECT_EQ(info.lag_seconds, -1);
  EXPECT_EQ(replica().lag_ms.load(), -1);  // checked before the restart could be seen
  EXPECT_FALSE(replica().replication_broken.load());
  EXPECT_TRUE(caughtUp()) << infoOf(replica()).reason;
}

// A row written on both sides stops the SQL thread with 1062: broken, logged once, and the
// reason carries the server's error. Repaired, it is logged as such.
TEST_F(MysqlReplicationTest, ConflictBreaksReplicationUntilRepaired) {
  ASSERT_TRUE(caughtUp()) << infoOf(replica()).reason;
  captureLog();
  ASSERT_EQ(replica_->execute("SET sql_log_bin = 0; INSERT INTO t.rows VALUES (100)"), "");
  ASSERT_EQ(source_->execute("INSERT INTO t.rows VALUES (100)"), "");
  bool broken = waitFor([&] { return replica().replication_broken.load(); });
  CheckInfo check = infoOf(replica());
  ReplicationInfo info = replicationOf(replica());
  ASSERT_TRUE(broken) << check.reason;
  EXPECT_EQ(check.reason.rfind("replication SQL thread stopped: Error 1062: ", 0), 0u)
      << check.reason;
  EXPECT_NE(check.reason.find("Duplicate entry '100'"), std::string::npos) << check.reason;
  EXPECT_EQ(check.status, "L7OK");
  EXPECT_TRUE(replica().up.load());
  EXPECT_EQ(info.last_sql_error.rfind("Error 1062: ", 0), 0u) << info.last_sql_error;
  EXPECT_FALSE(info.applied_all_received);

  // The repair an operator would make: drop the local row, let replication apply its own.
  ASSERT_EQ(replica_->execute("SET sql_log_bin = 0; DELETE FROM t.rows WHERE id = 100"), "");
  ASSERT_EQ(replica_->execute("START SLAVE SQL_THREAD"), "");
  ASSERT_TRUE(waitFor([&] { return !replica().replication_broken.load(); }));
  EXPECT_TRUE(caughtUp()) << infoOf(replica()).reason;
  std::string log = takeLog();
  EXPECT_EQ(check_test::countOf(log,
                                "server db/replica replication is broken, reason: "
                                "replication SQL thread stopped: Error 1062"),
            1)
      << log;
  EXPECT_EQ(check_test::countOf(log, "server db/replica replication is no longer broken"), 1)
      << log;
}

}  // namespace
}  // namespace tandem
