// Checks over real loopback sockets, in-process: plain listening sockets play the servers,
// and the test runs the Checker's loop itself (tests/health/check_fixture.h). Nothing leaves
// 127.0.0.1.
#include "health/checker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/health/check_fixture.h"

namespace tandem {
namespace {

using namespace check_test;  // NOLINT(google-build-using-namespace): test helpers only

class CheckerTest : public CheckLoopTest {};

TEST_F(CheckerTest, ListeningServerIsUpAfterTheFirstCheckAndStaysUp) {
  captureLog();
  LoopbackListener listener;
  ASSERT_TRUE(listener.open());
  listeners_.push_back(&listener);
  startChecker({backendOf("db", {serverAt("db1", listener.port())})});
  ASSERT_EQ(checker_->checkCount(), 1U);

  ASSERT_TRUE(waitFor([&] { return infoOf(db("db1")).status == "L4OK"; }));
  runFor(Millis(300));

  CheckInfo info = infoOf(db("db1"));
  EXPECT_TRUE(db("db1").up.load());
  EXPECT_TRUE(info.enabled);
  EXPECT_EQ(info.reason, "Layer4 check passed");
  EXPECT_GE(info.duration_ms, 0);
  EXPECT_EQ(info.health, 3);
  EXPECT_EQ(info.failed_checks, 0U);
  EXPECT_EQ(info.down_transitions, 0U);
  // From unchecked (UP at health rise) straight to full health, and nothing after.
  EXPECT_EQ(takeTrace("db/db1"), (std::vector<std::string>{"UP 2", "UP 3"}));
  EXPECT_EQ(countOf(takeLog(), "server db/db1"), 0);  // it never changed state
}

TEST_F(CheckerTest, NothingListeningIsDownAfterTheFirstCheck) {
  captureLog();
  LoopbackListener listener;
  ASSERT_TRUE(listener.open());
  listeners_.push_back(&listener);
  startChecker({backendOf("db", {serverAt("db1", unusedPort()), serverAt("db2", listener.port()),
                                 serverAt("db3", listener.port(), /*backup=*/true)})});

  ASSERT_TRUE(waitFor([&] { return !db("db1").up.load(); }));

  CheckInfo info = infoOf(db("db1"));
  EXPECT_EQ(info.status, "L4CON");
  EXPECT_EQ(info.reason, "connection refused");
  EXPECT_EQ(info.health, 0);
  EXPECT_EQ(info.failed_checks, 1U);
  EXPECT_EQ(info.down_transitions, 1U);
  EXPECT_EQ(db("db1").shutdown_epoch.load(), 0U);  // on_marked_down is not set
  EXPECT_EQ(takeTrace("db/db1"), (std::vector<std::string>{"UP 2", "DOWN 0"}));

  std::string log = takeLog();
  EXPECT_EQ(countOf(log, "is DOWN"), 1) << log;
  EXPECT_TRUE(std::regex_search(
      log, std::regex(R"(\[warning\] server db/db1 is DOWN, reason: connection refused, )"
                      R"(check duration: [0-9]+ms, 1 active and 1 backup servers left\n)")))
      << log;
  EXPECT_EQ(countOf(log, "no server available"), 0);
}

TEST_F(CheckerTest, ServerGoesDownAfterFallFailuresAndUpAfterRiseSuccesses) {
  captureLog();
  LoopbackListener listener;
  ASSERT_TRUE(listener.open());
  listeners_.push_back(&listener);
  startChecker({backendOf("db", {serverAt("db1", listener.port())})});
  ASSERT_TRUE(waitFor([&] { return infoOf(db("db1")).health == 3; }));
  takeTrace("db/db1");

  listener.close();
  ASSERT_TRUE(waitFor([&] { return !db("db1").up.load(); }));
  // fall = 2: one failure leaves it UP at health 2, the second takes it DOWN.
  EXPECT_EQ(takeTrace("db/db1"), (std::vector<std::string>{"UP 3", "UP 2", "DOWN 0"}));
  CheckInfo down = infoOf(db("db1"));
  EXPECT_EQ(down.status, "L4CON");
  EXPECT_EQ(down.failed_checks, 2U);
  EXPECT_EQ(down.down_transitions, 1U);

  ASSERT_TRUE(listener.reopen());
  ASSERT_TRUE(waitFor([&] { return db("db1").up.load(); }));
  // rise = 2: one success shows DOWN 1/2, the second brings it UP at full health.
  EXPECT_EQ(takeTrace("db/db1"), (std::vector<std::string>{"DOWN 0", "DOWN 1", "UP 3"}));
  CheckInfo up = infoOf(db("db1"));
  EXPECT_EQ(up.status, "L4OK");
  EXPECT_EQ(up.down_transitions, 1U);
  EXPECT_GE(up.downtime_ms, 0);
  EXPECT_GE(up.last_change_ms, down.last_change_ms);

  std::string log = takeLog();
  EXPECT_EQ(countOf(log, "server db/db1 is DOWN"), 1) << log;
  EXPECT_EQ(countOf(log, "server db/db1 is UP"), 1) << log;
  EXPECT_TRUE(std::regex_search(
      log, std::regex(R"(\[warning\] server db/db1 is DOWN, reason: connection refused, )"
                      R"(check duration: [0-9]+ms, 0 active and 0 backup servers left\n)")))
      << log;
  EXPECT_TRUE(
      std::regex_search(log, std::regex(R"(\[error\] backend db has no server available!\n)")))
      << log;
  EXPECT_TRUE(std::regex_search(
      log, std::regex(R"(\[notice\] server db/db1 is UP, reason: Layer4 check passed, )"
                      R"(check duration: [0-9]+ms, 1 active and 0 backup servers online\n)")))
      << log;
}

TEST_F(CheckerTest, HangingConnectTimesOut) {
  captureLog();
  LoopbackListener full;
  ASSERT_TRUE(full.open(0, /*backlog=*/0));
  full.fillAcceptQueue();
  CheckConfig check = fastCheck();
  check.timeout = Millis(100);
  startChecker({backendOf("db", {serverAt("db1", full.port())}, check)});

  ASSERT_TRUE(waitFor([&] { return !db("db1").up.load(); }));

  CheckInfo info = infoOf(db("db1"));
  EXPECT_EQ(info.status, "L4TOUT");
  EXPECT_EQ(info.reason, "connection timeout");
  EXPECT_GE(info.duration_ms, 100);  // cut by the timeout, on the loop's clock
  EXPECT_EQ(takeTrace("db/db1"), (std::vector<std::string>{"UP 2", "DOWN 0"}));
  EXPECT_EQ(countOf(takeLog(), "server db/db1 is DOWN, reason: connection timeout"), 1);
}

// An address that never resolved (AF_UNSPEC) cannot even be tried: SOCKERR. A server the
// runtime already marked DOWN for it is not reported DOWN a second time.
TEST_F(CheckerTest, UnresolvedAddressIsASocketError) {
  captureLog();
  Config config;
  config.backends = {backendOf("db", {serverAt("db1", 1), serverAt("db2", 1)})};
  runtime_ = std::make_unique<Runtime>(std::move(config));
  db("db1").setAddr(sockaddr_storage{});
  db("db2").setAddr(sockaddr_storage{});
  db("db2").up.store(false);
  createChecker();
  checker_->start();

  ASSERT_TRUE(waitFor([&] {
    return infoOf(db("db1")).status == "SOCKERR" && infoOf(db("db2")).status == "SOCKERR";
  }));

  EXPECT_FALSE(db("db1").up.load());
  EXPECT_EQ(infoOf(db("db1")).reason, "invalid argument");
  EXPECT_EQ(infoOf(db("db1")).down_transitions, 1U);
  EXPECT_FALSE(db("db2").up.load());
  EXPECT_EQ(infoOf(db("db2")).down_transitions, 0U);
  std::string log = takeLog();
  EXPECT_EQ(countOf(log, "server db/db1 is DOWN, reason: invalid argument"), 1) << log;
  EXPECT_EQ(countOf(log, "server db/db2"), 0) << log;
}

TEST_F(CheckerTest, MarkedDownShutsDownTheServersSessions) {
  LoopbackListener listener;
  ASSERT_TRUE(listener.open());
  listeners_.push_back(&listener);
  BackendConfig backend =
      backendOf("db", {serverAt("db1", unusedPort()), serverAt("db2", listener.port())});
  backend.on_marked_down = OnMarkedDown::kShutdownSessions;
  Config config;
  config.backends = {backend};
  runtime_ = std::make_unique<Runtime>(std::move(config));
  int hook_calls = 0;
  runtime_->setShutdownHook([&hook_calls] { ++hook_calls; });
  createChecker();
  checker_->start();

  ASSERT_TRUE(waitFor([&] { return !db("db1").up.load(); }));
  runFor(Millis(200));  // later failures while DOWN shut nothing more

  EXPECT_EQ(db("db1").shutdown_epoch.load(), 1U);
  EXPECT_EQ(hook_calls, 1);
  EXPECT_EQ(db("db2").shutdown_epoch.load(), 0U);
}

TEST_F(CheckerTest, ServersWithoutChecksStayUp) {
  LoopbackListener listener;
  ASSERT_TRUE(listener.open());
  listeners_.push_back(&listener);
  ServerConfig unchecked = serverAt("db2", unusedPort());
  unchecked.check = false;
  startChecker({backendOf("db", {serverAt("db1", listener.port()), unchecked}),
                backendOf("web", {serverAt("web1", unusedPort())}, std::nullopt)});
  EXPECT_EQ(checker_->checkCount(), 1U);

  ASSERT_TRUE(waitFor([&] { return infoOf(db("db1")).status == "L4OK"; }));
  runFor(Millis(200));

  for (Server* s : {&db("db2"), &server("web", "web1")}) {
    CheckInfo info = infoOf(*s);
    EXPECT_TRUE(s->up.load()) << s->fullName();
    EXPECT_FALSE(info.enabled) << s->fullName();
    EXPECT_EQ(info.status, "INI") << s->fullName();
  }
  EXPECT_TRUE(infoOf(db("db1")).enabled);
}

TEST_F(CheckerTest, StopWithACheckInFlightClosesEverything) {
  LoopbackListener full;
  ASSERT_TRUE(full.open(0, /*backlog=*/0));
  full.fillAcceptQueue();
  CheckConfig check = fastCheck();
  check.timeout = Millis(10000);
  startChecker({backendOf("db", {serverAt("db1", full.port())}, check)});
  ASSERT_TRUE(waitFor([&] { return infoOf(db("db1")).checking; }));

  int done_calls = 0;
  checker_->stop([&done_calls] { ++done_calls; });
  checker_->stop([&done_calls] { ++done_calls; });  // ignored
  EXPECT_EQ(done_calls, 0);                         // libuv closes handles on its next turn
  ASSERT_TRUE(waitFor([&] { return done_calls > 0; }));
  runFor(Millis(20));

  EXPECT_EQ(done_calls, 1);
  CheckInfo info = infoOf(db("db1"));
  EXPECT_FALSE(info.checking);
  EXPECT_EQ(info.status, "INI");  // the abandoned probe reported nothing
  EXPECT_TRUE(db("db1").up.load());
  checker_.reset();
}

// The connect cancelled by the close calls back with UV_ECANCELED after the Checker and its
// checks are gone; under AddressSanitizer this proves nothing touches freed memory.
TEST_F(CheckerTest, DestroyingTheCheckerWithAConnectPendingIsSafe) {
  LoopbackListener full;
  ASSERT_TRUE(full.open(0, /*backlog=*/0));
  full.fillAcceptQueue();
  CheckConfig check = fastCheck();
  check.timeout = Millis(10000);
  startChecker({backendOf("db", {serverAt("db1", full.port())}, check)});
  ASSERT_TRUE(waitFor([&] { return infoOf(db("db1")).checking; }));

  checker_.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);  // runs the cancelled connect and the close callbacks

  EXPECT_TRUE(db("db1").up.load());
}

// Even with nothing checked, the passive-check wake-up is a handle that closes on the loop.
TEST_F(CheckerTest, StopWithoutChecksFinishes) {
  startChecker({backendOf("web", {serverAt("web1", unusedPort())}, std::nullopt)});
  int done_calls = 0;
  checker_->stop([&done_calls] { ++done_calls; });
  ASSERT_TRUE(waitFor([&] { return done_calls > 0; }));
  runFor(Millis(20));
  EXPECT_EQ(done_calls, 1);
  checker_.reset();
}

// Passive checks: a worker thread reports, the control loop marks the server DOWN at once
// from full health, and the active check brings it back after `rise` successes. The report
// comes just after the first check, 300 ms before the next one, so that no probe is in
// flight to count from health 0 before the trace sees it.
TEST_F(CheckerTest, MarkDownFromAnotherThreadThenActiveChecksBringItBack) {
  captureLog();
  LoopbackListener listener;
  ASSERT_TRUE(listener.open());
  listeners_.push_back(&listener);
  CheckConfig check = fastCheck();
  check.interval = Millis(300);
  startChecker({backendOf("web", {serverAt("web1", listener.port())}, check)});
  Server& web1 = server("web", "web1");
  ASSERT_TRUE(waitFor([&] { return infoOf(web1).health == 3; }));
  takeTrace("web/web1");
  web1.consecutive_errors.store(3);

  std::thread worker(
      [&] { checker_->requestMarkDown(web1, "3 consecutive errors on traffic: 502"); });
  worker.join();
  ASSERT_TRUE(waitFor([&] { return !web1.up.load(); }));

  CheckInfo down = infoOf(web1);
  EXPECT_EQ(down.status, "HANA");
  EXPECT_EQ(down.reason, "3 consecutive errors on traffic: 502");
  EXPECT_EQ(down.duration_ms, 0);
  EXPECT_EQ(down.health, 0);
  EXPECT_EQ(down.down_transitions, 1U);
  EXPECT_EQ(down.failed_checks, 1U);
  EXPECT_EQ(web1.consecutive_errors.load(), 0);

  web1.consecutive_errors.store(1);  // errors of sessions that were still open
  ASSERT_TRUE(waitFor([&] { return web1.up.load(); }));
  // No failure in between: straight from full health to DOWN 0, then rise = 2 successes.
  EXPECT_EQ(takeTrace("web/web1"), (std::vector<std::string>{"UP 3", "DOWN 0", "DOWN 1", "UP 3"}));
  EXPECT_EQ(infoOf(web1).status, "L4OK");
  EXPECT_EQ(web1.consecutive_errors.load(), 0);

  std::string log = takeLog();
  EXPECT_EQ(countOf(log, "server web/web1 is DOWN"), 1) << log;
  EXPECT_EQ(countOf(log, "server web/web1 is UP"), 1) << log;
  EXPECT_TRUE(std::regex_search(
      log,
      std::regex(R"(\[warning\] server web/web1 is DOWN, reason: 3 consecutive errors on )"
                 R"(traffic: 502, check duration: 0ms, 0 active and 0 backup servers left\n)")))
      << log;
}

// Many workers reporting the same server at once make one transition and one line; the
// backend's on_marked_down applies as for an active check.
TEST_F(CheckerTest, ConcurrentReportsMarkDownOnceAndShutDownSessions) {
  captureLog();
  LoopbackListener listener;
  ASSERT_TRUE(listener.open());
  listeners_.push_back(&listener);
  // After the first check nothing runs for a minute: no probe can bring web1 back during
  // the test, nor be in flight when the reports arrive.
  CheckConfig check = fastCheck();
  check.interval = check.fastinter = check.downinter = Millis(60000);
  BackendConfig backend = backendOf(
      "web", {serverAt("web1", listener.port()), serverAt("web2", listener.port())}, check);
  backend.on_marked_down = OnMarkedDown::kShutdownSessions;
  Config config;
  config.backends = {backend};
  runtime_ = std::make_unique<Runtime>(std::move(config));
  runtime_->setPassiveFailureHook(
      [this](Server& s, const std::string& r) { checker_->requestMarkDown(s, r); });
  createChecker();
  checker_->start();
  Server& web1 = server("web", "web1");
  ASSERT_TRUE(waitFor([&] { return infoOf(web1).health == 3; }));

  std::vector<std::thread> workers;
  for (int i = 0; i < 4; ++i) {
    workers.emplace_back([&, i] {
      for (int j = 0; j < 50; ++j) {
        runtime_->reportPassiveFailure(web1, "report " + std::to_string(i));
      }
    });
  }
  for (std::thread& worker : workers) {
    worker.join();
  }
  ASSERT_TRUE(waitFor([&] { return !web1.up.load(); }));
  runFor(Millis(100));

  EXPECT_FALSE(web1.up.load());
  EXPECT_TRUE(server("web", "web2").up.load());
  EXPECT_EQ(infoOf(web1).down_transitions, 1U);
  EXPECT_EQ(web1.shutdown_epoch.load(), 1U);
  std::string log = takeLog();
  EXPECT_EQ(countOf(log, "server web/web1 is DOWN, reason: report "), 1) << log;
  EXPECT_EQ(countOf(log, "1 active and 0 backup servers left"), 1) << log;
}

// Without an active check nothing would bring the server back, so it stays UP; the warning
// is rate-limited because reports can come every error_limit requests.
TEST_F(CheckerTest, MarkDownOfAnUncheckedServerOnlyWarns) {
  captureLog();
  startChecker({backendOf("web", {serverAt("web1", unusedPort())}, std::nullopt)});
  Server& web1 = server("web", "web1");
  for (int i = 0; i < 3; ++i) {
    web1.consecutive_errors.store(5);
    checker_->requestMarkDown(web1, "5 consecutive errors on traffic: 503");
    ASSERT_TRUE(waitFor([&] { return web1.consecutive_errors.load() == 0; }));
  }

  EXPECT_TRUE(web1.up.load());
  EXPECT_EQ(infoOf(web1).status, "INI");
  std::string log = takeLog();
  EXPECT_EQ(countOf(log, "is DOWN"), 0) << log;
  EXPECT_EQ(countOf(log,
                    "[warning] server web/web1 is kept UP, reason: 5 consecutive errors on "
                    "traffic: 503, but it has no active check that could bring it back\n"),
            1)
      << log;
}

TEST_F(CheckerTest, MarkDownBeforeStartOrAfterStopIsIgnored) {
  Config config;
  config.backends = {backendOf("web", {serverAt("web1", unusedPort())})};
  runtime_ = std::make_unique<Runtime>(std::move(config));
  createChecker();
  Server& web1 = server("web", "web1");
  web1.consecutive_errors.store(5);
  checker_->requestMarkDown(web1, "before start");
  runFor(Millis(20));
  EXPECT_EQ(web1.consecutive_errors.load(), 5);

  bool stopped = false;
  checker_->stop([&stopped] { stopped = true; });
  checker_->requestMarkDown(web1, "after stop");
  ASSERT_TRUE(waitFor([&] { return stopped; }));
  EXPECT_TRUE(web1.up.load());
  EXPECT_EQ(web1.consecutive_errors.load(), 5);
  checker_.reset();
}

}  // namespace
}  // namespace tandem
