// The operator's actions over real checks: a Checker on the test's loop against plain
// listening sockets on 127.0.0.1 (tests/health/check_fixture.h), a real WriterElection, and
// the log lines each action writes, read back through recentLogRecords().
#include "health/control_operations.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/log.h"
#include "tests/health/check_fixture.h"

namespace tandem {
namespace {

using namespace check_test;  // NOLINT(google-build-using-namespace): test helpers only

class ControlOperationsTest : public CheckLoopTest {
 protected:
  void TearDown() override {
    if (election_) {
      election_->stop();
    }
    CheckLoopTest::TearDown();
  }

  // Starts the checks, the election and the operations over `backends`.
  void start(std::vector<BackendConfig> backends) {
    startChecker(std::move(backends));
    election_ = std::make_unique<WriterElection>(&loop_, *runtime_);
    election_->start();
    operations_ = std::make_unique<ControlOperations>(*runtime_, *checker_, *election_);
    log_seq_ = lastSeq();
  }

  static uint64_t lastSeq() {
    std::vector<LogRecord> records = recentLogRecords(0, 1);
    return records.empty() ? 0 : records.back().seq;
  }

  // The log lines written since the last call (or start()).
  std::vector<std::string> newLog() {
    std::vector<std::string> lines;
    for (const LogRecord& r : recentLogRecords(log_seq_, kLogRingSize)) {
      lines.push_back(r.text);
      log_seq_ = r.seq;
    }
    return lines;
  }

  std::unique_ptr<WriterElection> election_;
  std::unique_ptr<ControlOperations> operations_;
  uint64_t log_seq_ = 0;
  std::string why_;
};

TEST_F(ControlOperationsTest, DisabledHealthKeepsADeadServerUpAndEnabledTakesItDownAgain) {
  start({backendOf("db", {serverAt("db1", unusedPort())})});
  Server& db1 = db("db1");
  ASSERT_TRUE(waitFor([&] { return !db1.up.load(); }));
  newLog();

  ASSERT_TRUE(operations_->setHealthEnabled(db1, false, "admin alice@127.0.0.1", &why_));
  EXPECT_TRUE(db1.up.load());
  EXPECT_TRUE(db1.usable());
  EXPECT_FALSE(infoOf(db1).enabled);
  std::vector<std::string> log = newLog();
  ASSERT_EQ(log.size(), 1U);
  EXPECT_EQ(log[0],
            "health checks of server db/db1 disabled by admin alice@127.0.0.1, it counts UP (its "
            "checks had it DOWN), 1 active and 0 backup servers online");

  // No check runs any more: the failure count stands still and the server stays UP.
  uint64_t failed = infoOf(db1).failed_checks;
  runFor(Millis(300));
  EXPECT_TRUE(db1.up.load());
  EXPECT_EQ(infoOf(db1).failed_checks, failed);
  EXPECT_TRUE(newLog().empty());

  // Resumed from "UP, unchecked": the first failure takes it DOWN again.
  ASSERT_TRUE(operations_->setHealthEnabled(db1, true, "socket", &why_));
  EXPECT_TRUE(infoOf(db1).enabled);
  ASSERT_TRUE(waitFor([&] { return !db1.up.load(); }));
  log = newLog();
  ASSERT_GE(log.size(), 2U);
  EXPECT_EQ(log[0], "health checks of server db/db1 enabled by socket");
  EXPECT_EQ(log[1].rfind("server db/db1 is DOWN, reason: connection refused", 0), 0U) << log[1];
}

TEST_F(ControlOperationsTest, EnabledHealthResumesTheRiseFallProgress) {
  LoopbackListener listener;
  ASSERT_TRUE(listener.open());
  listeners_.push_back(&listener);
  start({backendOf("db", {serverAt("db1", listener.port())})});
  Server& db1 = db("db1");
  ASSERT_TRUE(waitFor([&] { return infoOf(db1).health == 3; }));  // rise 2 + fall 2 - 1

  ASSERT_TRUE(operations_->setHealthEnabled(db1, false, "socket", &why_));
  listeners_.clear();
  listener.close();
  runFor(Millis(200));
  EXPECT_TRUE(db1.up.load());
  takeTrace("db/db1");

  // Back from full health: fall (2) failures take it down, through "UP 2".
  ASSERT_TRUE(operations_->setHealthEnabled(db1, true, "socket", &why_));
  ASSERT_TRUE(waitFor([&] { return !db1.up.load(); }));
  EXPECT_EQ(takeTrace("db/db1"), (std::vector<std::string>{"UP 3", "UP 2", "DOWN 0"}));
}

TEST_F(ControlOperationsTest, PassiveReportsAreIgnoredWhileHealthIsDisabled) {
  LoopbackListener listener;
  ASSERT_TRUE(listener.open());
  listeners_.push_back(&listener);
  start({backendOf("db", {serverAt("db1", listener.port())})});
  Server& db1 = db("db1");
  ASSERT_TRUE(waitFor([&] { return infoOf(db1).status == "L4OK"; }));
  ASSERT_TRUE(operations_->setHealthEnabled(db1, false, "socket", &why_));
  newLog();

  checker_->requestMarkDown(db1, "3 consecutive errors on traffic");
  runFor(Millis(100));
  EXPECT_TRUE(db1.up.load());
  std::vector<std::string> log = newLog();
  ASSERT_EQ(log.size(), 1U);
  EXPECT_NE(log[0].find("server db/db1 is kept UP"), std::string::npos) << log[0];
}

TEST_F(ControlOperationsTest, HealthOfAnUncheckedServerIsRefused) {
  start({backendOf("db", {serverAt("db1", unusedPort())}, std::nullopt)});
  EXPECT_FALSE(operations_->setHealthEnabled(db("db1"), false, "socket", &why_));
  EXPECT_EQ(why_, "server db/db1 has no health check");
  EXPECT_TRUE(newLog().empty());
}

TEST_F(ControlOperationsTest, AdminStatesAreStoredAndLoggedWithWhatIsLeft) {
  start({backendOf("db", {serverAt("db1", unusedPort()), serverAt("db2", unusedPort())},
                   std::nullopt)});
  Server& db1 = db("db1");
  Server& db2 = db("db2");

  ASSERT_TRUE(operations_->setAdminState(db1, AdminState::kDrain, "socket", &why_));
  EXPECT_EQ(db1.admin.load(), AdminState::kDrain);
  ASSERT_TRUE(operations_->setAdminState(db2, AdminState::kMaint, "admin bob@10.0.0.1", &why_));
  ASSERT_TRUE(operations_->setAdminState(db1, AdminState::kReady, "socket", &why_));
  EXPECT_EQ(newLog(),
            (std::vector<std::string>{
                "server db/db1 is going DRAIN by socket, 1 active and 0 backup servers left, 0 "
                "sessions active",
                "server db/db2 enters maintenance by admin bob@10.0.0.1, 0 active and 0 backup "
                "servers left, 0 sessions active",
                "backend db has no server available!",
                "server db/db1 is READY again by socket (leaving DRAIN), 1 active and 0 backup "
                "servers online"}));

  // Already there: accepted, nothing logged.
  EXPECT_TRUE(operations_->setAdminState(db1, AdminState::kReady, "socket", &why_));
  EXPECT_TRUE(newLog().empty());

  db2.up.store(false);
  ASSERT_TRUE(operations_->setAdminState(db2, AdminState::kReady, "socket", &why_));
  EXPECT_EQ(newLog(), (std::vector<std::string>{
                          "server db/db2 is READY again by socket (leaving MAINT) but still "
                          "DOWN by its checks, 1 active and 0 backup servers online"}));
}

TEST_F(ControlOperationsTest, WeightsAreStoredAndLogged) {
  ServerConfig s1 = serverAt("db1", unusedPort());
  s1.weight = 4;
  start({backendOf("db", {s1}, std::nullopt)});
  Server& db1 = db("db1");

  ASSERT_TRUE(operations_->setWeight(db1, 8, "socket", &why_));
  EXPECT_EQ(db1.weight.load(), 8);
  ASSERT_TRUE(operations_->setWeight(db1, 0, "socket", &why_));
  EXPECT_FALSE(db1.usable());
  EXPECT_EQ(newLog(), (std::vector<std::string>{
                          "server db/db1 weight changed from 4 to 8 by socket (configured 4), 1 "
                          "active and 0 backup servers online",
                          "server db/db1 weight changed from 8 to 0 by socket (configured 4), 0 "
                          "active and 0 backup servers online",
                          "backend db has no server available!"}));

  EXPECT_TRUE(operations_->setWeight(db1, 0, "socket", &why_));
  EXPECT_FALSE(operations_->setWeight(db1, 257, "socket", &why_));
  EXPECT_EQ(why_, "weight 257 is out of range 0..256");
  EXPECT_FALSE(operations_->setWeight(db1, -1, "socket", &why_));
  EXPECT_EQ(db1.weight.load(), 0);
  EXPECT_TRUE(newLog().empty());
}

TEST_F(ControlOperationsTest, SetWriterMovesTheRoleAndNamesTheOperator) {
  BackendConfig pair =
      backendOf("db", {serverAt("db1", unusedPort()), serverAt("db2", unusedPort())}, std::nullopt);
  pair.role = Role::kWriter;
  start({pair});
  Backend& backend = *runtime_->findBackend("db");
  ASSERT_EQ(backend.writer.load(), &db("db1"));
  newLog();

  ASSERT_TRUE(operations_->setWriter(backend, db("db2"), "admin alice@127.0.0.1", &why_));
  EXPECT_EQ(backend.writer.load(), &db("db2"));
  std::vector<std::string> log = newLog();
  ASSERT_EQ(log.size(), 2U);
  EXPECT_EQ(log[0], "backend db: writer moves from db1 to db2, reason: set by the operator");
  EXPECT_EQ(log[1], "backend db: writer set to db2 by admin alice@127.0.0.1");

  // Already the writer: accepted, nothing logged.
  EXPECT_TRUE(operations_->setWriter(backend, db("db2"), "socket", &why_));
  EXPECT_TRUE(newLog().empty());

  db("db1").admin.store(AdminState::kMaint);
  EXPECT_FALSE(operations_->setWriter(backend, db("db1"), "socket", &why_));
  EXPECT_EQ(why_, "server db/db1 cannot take the writer role: it is not UP and ready");
  EXPECT_EQ(backend.writer.load(), &db("db2"));
}

}  // namespace
}  // namespace tandem
