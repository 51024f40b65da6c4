// What the health tests share: loopback listeners driven with plain system calls, small
// config builders, and a fixture that owns a libuv loop, runs a Checker on it and records
// every server's state as it changes. Nothing leaves 127.0.0.1.
//
//   class MyCheckTest : public check_test::CheckLoopTest {};
//   TEST_F(MyCheckTest, Up) {
//     LoopbackListener listener;
//     ASSERT_TRUE(listener.open());
//     listeners_.push_back(&listener);  // drained on every tick
//     startChecker({backendOf("db", {serverAt("db1", listener.port())})});
//     ASSERT_TRUE(waitFor([&] { return infoOf(db("db1")).status == "L4OK"; }));
//   }
//
// A check that must time out connects to a listener whose accept queue is full (backlog 0
// and one connection waiting): the kernel drops the SYN, so the connect hangs, on loopback.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/uv_handle.h"
#include "health/checker.h"

namespace tandem::check_test {

inline constexpr Millis kWaitLimit{5000};

// A listening socket on 127.0.0.1, driven with plain system calls.
class LoopbackListener {
 public:
  LoopbackListener() = default;
  LoopbackListener(const LoopbackListener&) = delete;
  LoopbackListener& operator=(const LoopbackListener&) = delete;
  ~LoopbackListener() { close(); }

  // Listens on `port` (0: a free one, kept for reopen()).
  bool open(uint16_t port = 0, int backlog = SOMAXCONN) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
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

  // Waits up to timeout_ms for a connection and returns it as a blocking socket, or -1.
  int acceptOne(int timeout_ms) {
    pollfd pfd{fd_, POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) <= 0) {
      return -1;
    }
    return accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
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
inline uint16_t unusedPort() {
  LoopbackListener probe;
  probe.open();
  return probe.port();
}

inline CheckConfig fastCheck() {
  CheckConfig check;
  check.interval = Millis(50);
  check.fastinter = Millis(50);
  check.downinter = Millis(50);
  check.timeout = Millis(1000);
  check.rise = 2;
  check.fall = 2;
  return check;
}

inline ServerConfig serverAt(const std::string& name, uint16_t port, bool backup = false) {
  ServerConfig server;
  server.name = name;
  server.address = HostPort{"127.0.0.1", port};
  server.backup = backup;
  return server;
}

inline BackendConfig backendOf(const std::string& name, std::vector<ServerConfig> servers,
                               std::optional<CheckConfig> check = fastCheck()) {
  BackendConfig backend;
  backend.name = name;
  backend.check = check;
  backend.servers = std::move(servers);
  return backend;
}

inline CheckInfo infoOf(const Server& server) {
  std::lock_guard<std::mutex> lock(server.check_mutex);
  return server.check_info;
}

inline int countOf(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

class CheckLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // As main() does: libuv writes with write(2), and a check writing to a server that has
    // just reset the connection must get EPIPE, not a signal that ends the test binary.
    signal(SIGPIPE, SIG_IGN);
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
    config.path = "check_loop_test";
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
    uv_timer_start(tick_.get(), &CheckLoopTest::onTick, 1, 1);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_timer_stop(tick_.get());
    return done_();
  }
  // Lets the checks run for a while (no assertion on how many).
  void runFor(Millis duration) {
    waitFor([] { return false; }, duration);
  }

  static void onTick(uv_timer_t* timer) {
    auto* self = static_cast<CheckLoopTest*>(timer->data);
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

}  // namespace tandem::check_test
