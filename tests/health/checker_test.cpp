// Checks over real loopback sockets, in-process: plain listening sockets play the servers,
// and the test runs the Checker's loop itself. Nothing leaves 127.0.0.1.
//
// A check that must time out connects to a listener whose accept queue is full (backlog 0
// and one connection waiting): the kernel drops the SYN, so the connect hangs, on loopback.
#include "health/checker.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/uv_handle.h"

namespace tandem {
namespace {

constexpr Millis kWaitLimit{5000};

// A listening socket on 127.0.0.1, driven with plain system calls.
class LoopbackListener {
 public:
  LoopbackListener() = default;
  LoopbackListener(const LoopbackListener&) = delete;
  LoopbackListener& operator=(const LoopbackListener&) = delete;
  ~LoopbackListener() { close(); }

  // Listens on `port` (0: a free one, kept for reopen()).
  bool open(uint16_t port = 0, int backlog = SOMAXCONN) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr = loopback(port);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(fd_, backlog) != 0) {
      return false;
    }
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    return true;
  }
  bool reopen() { return open(port_); }

  void close() {
    for (int fd : clients_) {
      ::close(fd);
    }
    clients_.clear();
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

  uint16_t port() const { return port_; }

  // Accepts and closes what waits, so that the accept queue never fills.
  void drain() {
    if (fd_ < 0) {
      return;
    }
    int fd;
    while ((fd = accept(fd_, nullptr, nullptr)) >= 0) {
      ::close(fd);
    }
  }

  // For a listener opened with backlog 0: one connection fills its accept queue, after which
  // the kernel drops new SYNs and their connects hang. Waits a little for that connection
  // (with syncookies off it may hang too, which serves as well).
  void fillAcceptQueue() {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in addr = loopback(port_);
    connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    pollfd pfd{fd, POLLOUT, 0};
    poll(&pfd, 1, 500);
    clients_.push_back(fd);
  }

  static sockaddr_in loopback(uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::vector<int> clients_;
};

// A port on which nothing listens: bound once to learn a free one, then released.
uint16_t unusedPort() {
  LoopbackListener probe;
  probe.open();
  return probe.port();
}

CheckConfig fastCheck() {
  CheckConfig check;
  check.interval = Millis(50);
  check.fastinter = Millis(50);
  check.downinter = Millis(50);
  check.timeout = Millis(1000);
  check.rise = 2;
  check.fall = 2;
  return check;
}

ServerConfig serverAt(const std::string& name, uint16_t port, bool backup = false) {
  ServerConfig server;
  server.name = name;
  server.address = HostPort{"127.0.0.1", port};
  server.backup = backup;
  return server;
}

BackendConfig backendOf(const std::string& name, std::vector<ServerConfig> servers,
                        std::optional<CheckConfig> check = fastCheck()) {
  BackendConfig backend;
  backend.name = name;
  backend.check = check;
  backend.servers = std::move(servers);
  return backend;
}

CheckInfo infoOf(const Server& server) {
  std::lock_guard<std::mutex> lock(server.check_mutex);
  return server.check_info;
}

int countOf(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

class CheckerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setLogLevel(LogLevel::kInfo);
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    tick_.init(uv_timer_init, &loop_);
    tick_.get()->data = this;
  }

  // Stops the checker, then proves that no handle is left: uv_loop_close refuses a loop
  // that still has one.
  void TearDown() override {
    if (checker_) {
      bool stopped = false;
      checker_->stop([&stopped] { stopped = true; });
      EXPECT_TRUE(waitFor([&stopped] { return stopped; })) << "stop() never finished";
      checker_.reset();
    }
    tick_.close();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle is still open";
    std::string log = takeLog();
    if (HasFailure()) {
      std::cerr << "captured log:\n" << log;
    }
  }

  void startChecker(std::vector<BackendConfig> backends) {
    Config config;
    config.path = "checker_test";
    config.backends = std::move(backends);
    runtime_ = std::make_unique<Runtime>(std::move(config));
    createChecker();
    checker_->start();
  }
  void createChecker() { checker_ = std::make_unique<Checker>(&loop_, *runtime_); }

  Server& server(const std::string& backend, const std::string& name) {
    return *runtime_->findBackend(backend)->findServer(name);
  }
  Server& db(const std::string& name) { return server("db", name); }

  // Runs the loop until `done` holds or `limit` passes. Every millisecond the listeners
  // accept what waits and each server's state is added to trace_ when it changed; checks
  // run every 50 ms, so no intermediate state is missed.
  bool waitFor(const std::function<bool()>& done, Millis limit = kWaitLimit) {
    done_ = done;
    deadline_ = uv_now(&loop_) + limit.count();
    recordStates();
    if (done_()) {
      return true;
    }
    uv_timer_start(tick_.get(), &CheckerTest::onTick, 1, 1);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_timer_stop(tick_.get());
    return done_();
  }
  // Lets the checks run for a while (no assertion on how many).
  void runFor(Millis duration) {
    waitFor([] { return false; }, duration);
  }

  static void onTick(uv_timer_t* timer) {
    auto* self = static_cast<CheckerTest*>(timer->data);
    for (LoopbackListener* listener : self->listeners_) {
      listener->drain();
    }
    self->recordStates();
    if (self->done_() || uv_now(timer->loop) >= self->deadline_) {
      uv_stop(timer->loop);
    }
  }

  // "UP 3" or "DOWN 0": the server's state and its rise/fall health.
  void recordStates() {
    if (!runtime_) {
      return;
    }
    for (const auto& backend : runtime_->backends()) {
      for (const auto& s : backend->servers()) {
        std::string state = (s->up.load() ? "UP " : "DOWN ") + std::to_string(infoOf(*s).health);
        std::vector<std::string>& seen = trace_[s->fullName()];
        if (seen.empty() || seen.back() != state) {
          seen.push_back(state);
        }
      }
    }
  }
  std::vector<std::string> takeTrace(const std::string& name) {
    std::vector<std::string> out = std::move(trace_[name]);
    trace_.erase(name);
    return out;
  }

  // Only the tests that read the log capture stderr: elsewhere a sanitizer's report must
  // reach the terminal.
  void captureLog() {
    testing::internal::CaptureStderr();
    capturing_ = true;
  }
  std::string takeLog() {
    if (!capturing_) {
      return "";
    }
    capturing_ = false;
    return testing::internal::GetCapturedStderr();
  }

  uv_loop_t loop_{};
  UvHandle<uv_timer_t> tick_;
  std::function<bool()> done_;
  uint64_t deadline_ = 0;
  bool capturing_ = false;
  std::vector<LoopbackListener*> listeners_;  // drained on every tick
  std::map<std::string, std::vector<std::string>> trace_;
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<Checker> checker_;
};

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

TEST_F(CheckerTest, StopWithoutChecksFinishesAtOnce) {
  startChecker({backendOf("web", {serverAt("web1", unusedPort())}, std::nullopt)});
  bool stopped = false;
  checker_->stop([&stopped] { stopped = true; });
  EXPECT_TRUE(stopped);
  checker_.reset();
}

}  // namespace
}  // namespace tandem
