// HTTP checks over real loopback sockets: a scripted server (a thread with plain sockets)
// gives the answers PHP cannot, such as garbage, a head cut short or silence, and records
// each request as received; one test runs a real `php -S` and kills it. The Checker's loop
// runs in the test's thread (tests/health/check_fixture.h). Nothing leaves 127.0.0.1.
#include "health/http_check.h"

#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/health/check_fixture.h"

extern char** environ;

namespace tandem {
namespace {

using namespace check_test;  // NOLINT(google-build-using-namespace): test helpers only

constexpr int kReadWaitMs = 2000;  // a request head arrives in microseconds on loopback

// What the scripted server does with each connection, once it has read the request head.
struct Reply {
  std::string bytes;  // sent as they are
  bool close = true;  // false: the connection stays open, silent, until the client goes
};

Reply silence() {
  return Reply{"", false};
}

// An HTTP server on 127.0.0.1 whose answer the test sets. Serves one connection at a time,
// which is all a check makes.
class ScriptedServer {
 public:
  explicit ScriptedServer(Reply reply) : reply_(std::move(reply)) {
    EXPECT_TRUE(listener_.open());
    thread_ = std::thread([this] { run(); });
  }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;
  ~ScriptedServer() {
    stop_ = true;
    thread_.join();
    for (int fd : held_) {
      ::close(fd);
    }
  }

  uint16_t port() const { return listener_.port(); }
  void setReply(Reply reply) {
    std::lock_guard<std::mutex> lock(mutex_);
    reply_ = std::move(reply);
  }
  // The request heads received so far, in order.
  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

 private:
  void run() {
    while (!stop_) {
      int fd = listener_.acceptOne(20);
      if (fd >= 0) {
        serve(fd);
      }
    }
  }

  void serve(int fd) {
    std::string head = readHead(fd);
    Reply reply;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      requests_.push_back(head);
      reply = reply_;
    }
    // A check may close before reading it all (an oversized head): no SIGPIPE for that.
    send(fd, reply.bytes.data(), reply.bytes.size(), MSG_NOSIGNAL);
    if (reply.close) {
      ::close(fd);
    } else {
      held_.push_back(fd);
    }
  }

  // Up to the blank line that ends the head, the client's end of stream, or kReadWaitMs.
  static std::string readHead(int fd) {
    std::string head;
    char buf[1024];
    while (head.find("\r\n\r\n") == std::string::npos) {
      pollfd pfd{fd, POLLIN, 0};
      if (poll(&pfd, 1, kReadWaitMs) <= 0) {
        break;
      }
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        break;
      }
      head.append(buf, static_cast<size_t>(n));
    }
    return head;
  }

  LoopbackListener listener_;
  mutable std::mutex mutex_;
  Reply reply_;                        // guarded by mutex_
  std::vector<std::string> requests_;  // guarded by mutex_
  std::vector<int> held_;              // silent connections, closed at the end
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A private directory under $TMPDIR (or /tmp), removed with its content.
class TempDir {
 public:
  TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/tandem-http-check-XXXXXX";
    char* made = mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  const std::filesystem::path& path() const { return path_; }
  void write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ / name) << content;
  }

 private:
  std::filesystem::path path_;
};

// PHP's built-in web server serving one directory on 127.0.0.1:port.
class PhpServer {
 public:
  PhpServer() = default;
  PhpServer(const PhpServer&) = delete;
  PhpServer& operator=(const PhpServer&) = delete;
  ~PhpServer() { kill(); }

  // Starts it and waits until it accepts connections; false if it did not within the wait.
  bool start(const std::filesystem::path& root, uint16_t port) {
    std::string address = "127.0.0.1:" + std::to_string(port);
    std::string dir = root.string();
    std::vector<char*> argv = {const_cast<char*>("php"),
                               const_cast<char*>("-S"),
                               address.data(),
                               const_cast<char*>("-t"),
                               dir.data(),
                               nullptr};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(&pid_, "php", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      return false;
    }
    return waitUntilAccepting(port);
  }

  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

 private:
  bool waitUntilAccepting(uint16_t port) const {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (connects(port)) {
        return true;
      }
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        return false;  // it exited (port taken, php missing...)
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  static bool connects(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = LoopbackListener::loopback(port);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    return ok;
  }

  pid_t pid_ = -1;
};

CheckConfig httpCheck() {
  CheckConfig check = fastCheck();
  check.type = CheckType::kHttp;
  return check;
}

std::string okReply() {
  return "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
}

class HttpCheckTest : public CheckLoopTest {
 protected:
  Server& web(const std::string& name) { return server("web", name); }

  // One web server behind an HTTP check, and its first result.
  CheckInfo firstResult(uint16_t port, const CheckConfig& check = httpCheck()) {
    startChecker({backendOf("web", {serverAt("web1", port)}, check)});
    EXPECT_TRUE(waitFor([&] { return infoOf(web("web1")).status != "INI"; }));
    return infoOf(web("web1"));
  }
};

TEST(HttpCheckExpectTest, DefaultAcceptsTwoAndThreeHundreds) {
  CheckConfig cfg;
  EXPECT_FALSE(HttpCheck::expects(cfg, 199));
  EXPECT_TRUE(HttpCheck::expects(cfg, 200));
  EXPECT_TRUE(HttpCheck::expects(cfg, 399));
  EXPECT_FALSE(HttpCheck::expects(cfg, 400));
  EXPECT_FALSE(HttpCheck::expects(cfg, 503));
}

TEST(HttpCheckExpectTest, ListsAndRangesAreUnited) {
  CheckConfig cfg;
  cfg.expect = {StatusRange{200, 200}, StatusRange{204, 204}, StatusRange{300, 302}};
  for (int status : {200, 204, 300, 301, 302}) {
    EXPECT_TRUE(HttpCheck::expects(cfg, status)) << status;
  }
  for (int status : {201, 203, 205, 299, 303, 404}) {
    EXPECT_FALSE(HttpCheck::expects(cfg, status)) << status;
  }
}

TEST_F(HttpCheckTest, ExpectedStatusIsUpWithL7OK) {
  captureLog();
  ScriptedServer http(Reply{okReply()});

  CheckInfo info = firstResult(http.port());
  EXPECT_EQ(info.status, "L7OK");
  EXPECT_EQ(info.reason, "Layer7 check passed: 200 OK");
  EXPECT_GE(info.duration_ms, 0);
  runFor(Millis(200));

  EXPECT_TRUE(web("web1").up.load());
  EXPECT_EQ(infoOf(web("web1")).health, 3);
  EXPECT_EQ(infoOf(web("web1")).failed_checks, 0U);
  EXPECT_GE(http.requests().size(), 2U);  // a fresh connection, and request, per check
  EXPECT_EQ(countOf(takeLog(), "server web/web1"), 0);
}

TEST_F(HttpCheckTest, UnexpectedStatusIsDownWithL7STS) {
  captureLog();
  ScriptedServer http(Reply{"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"});

  CheckInfo info = firstResult(http.port());
  EXPECT_EQ(info.status, "L7STS");
  EXPECT_EQ(info.reason, "Layer7 wrong status: 503 Service Unavailable");
  EXPECT_FALSE(web("web1").up.load());
  std::string log = takeLog();
  EXPECT_TRUE(std::regex_search(
      log, std::regex(R"(\[warning\] server web/web1 is DOWN, reason: Layer7 wrong status: 503 )"
                      R"(Service Unavailable, check duration: [0-9]+ms, 0 active and 0 backup )"
                      R"(servers left\n)")))
      << log;
}

// The reason phrase is the server's to choose, and it lands in log lines: kept short.
TEST_F(HttpCheckTest, LongReasonPhraseIsCut) {
  ScriptedServer http(Reply{"HTTP/1.1 500 " + std::string(200, 'x') + "\r\n\r\n"});
  CheckInfo info = firstResult(http.port());
  EXPECT_EQ(info.status, "L7STS");
  EXPECT_EQ(info.reason, "Layer7 wrong status: 500 " + std::string(64, 'x'));
}

TEST_F(HttpCheckTest, NonHttpAnswerIsAnInvalidResponse) {
  ScriptedServer http(Reply{"garbage\r\n\r\n"});
  CheckInfo info = firstResult(http.port());
  EXPECT_EQ(info.status, "L7RSP");
  EXPECT_EQ(info.reason, "Layer7 invalid response");
  EXPECT_FALSE(web("web1").up.load());
}

TEST_F(HttpCheckTest, ClosingWithoutAnswerIsAnInvalidResponse) {
  ScriptedServer http(Reply{""});
  CheckInfo info = firstResult(http.port());
  EXPECT_EQ(info.status, "L7RSP");
  EXPECT_EQ(info.reason, "Layer7 invalid response");
}

// A good status line is not enough: the head must be complete.
TEST_F(HttpCheckTest, HeadCutShortIsAnInvalidResponse) {
  ScriptedServer http(Reply{"HTTP/1.1 200 OK\r\nContent-Le"});
  CheckInfo info = firstResult(http.port());
  EXPECT_EQ(info.status, "L7RSP");
}

// A head that never ends is cut at kMaxHeadBytes, long before the 3 s timeout (which
// would report L7TOUT): the server holds the connection open after sending.
TEST_F(HttpCheckTest, OversizedHeadIsAnInvalidResponse) {
  std::string head = "HTTP/1.1 200 OK\r\n";
  while (head.size() <= HttpCheck::kMaxHeadBytes) {
    head += "X-Padding: " + std::string(100, 'p') + "\r\n";
  }
  ScriptedServer http(Reply{head, /*close=*/false});
  CheckConfig check = httpCheck();
  check.timeout = Millis(3000);
  CheckInfo info = firstResult(http.port(), check);
  EXPECT_EQ(info.status, "L7RSP");
}

TEST_F(HttpCheckTest, SilentServerIsALayer7Timeout) {
  captureLog();
  ScriptedServer http(silence());
  CheckConfig check = httpCheck();
  check.timeout = Millis(100);

  CheckInfo info = firstResult(http.port(), check);
  EXPECT_EQ(info.status, "L7TOUT");
  EXPECT_EQ(info.reason, "Layer7 timeout");
  EXPECT_GE(info.duration_ms, 100);       // cut by the timeout, on the loop's clock
  EXPECT_GE(http.requests().size(), 1U);  // the request went out before the silence
  EXPECT_EQ(countOf(takeLog(), "server web/web1 is DOWN, reason: Layer7 timeout"), 1);
}

TEST_F(HttpCheckTest, RefusedConnectionIsL4CON) {
  CheckInfo info = firstResult(unusedPort());
  EXPECT_EQ(info.status, "L4CON");
  EXPECT_EQ(info.reason, "connection refused");
}

TEST_F(HttpCheckTest, HangingConnectIsL4TOUT) {
  LoopbackListener full;
  ASSERT_TRUE(full.open(0, /*backlog=*/0));
  full.fillAcceptQueue();
  CheckConfig check = httpCheck();
  check.timeout = Millis(100);
  CheckInfo info = firstResult(full.port(), check);
  EXPECT_EQ(info.status, "L4TOUT");
  EXPECT_EQ(info.reason, "connection timeout");
}

// 204 and 301-302 pass, 200 does not; a status line without a reason phrase is valid.
TEST_F(HttpCheckTest, ExpectListsAndRangesDecide) {
  ScriptedServer http(Reply{"HTTP/1.1 204 No Content\r\n\r\n"});
  CheckConfig check = httpCheck();
  check.expect = {StatusRange{204, 204}, StatusRange{301, 302}};
  CheckInfo info = firstResult(http.port(), check);
  EXPECT_EQ(info.status, "L7OK");
  EXPECT_EQ(info.reason, "Layer7 check passed: 204 No Content");

  http.setReply(Reply{okReply()});
  ASSERT_TRUE(waitFor([&] { return !web("web1").up.load(); }));
  EXPECT_EQ(infoOf(web("web1")).reason, "Layer7 wrong status: 200 OK");

  http.setReply(Reply{"HTTP/1.1 302\r\nLocation: /elsewhere\r\n\r\n"});
  ASSERT_TRUE(waitFor([&] { return web("web1").up.load(); }));
  EXPECT_EQ(infoOf(web("web1")).reason, "Layer7 check passed: 302");
}

TEST_F(HttpCheckTest, RequestCarriesTheConfiguredMethodPathAndHost) {
  ScriptedServer configured(Reply{okReply()});
  ScriptedServer defaults(Reply{okReply()});
  CheckConfig check = httpCheck();
  check.method = "HEAD";
  check.path = "/health.php?full=1";
  check.host = "web.example";
  startChecker({backendOf("web", {serverAt("web1", configured.port())}, check),
                backendOf("api", {serverAt("api1", defaults.port())}, httpCheck())});
  ASSERT_TRUE(waitFor([&] {
    return infoOf(web("web1")).status == "L7OK" && infoOf(server("api", "api1")).status == "L7OK";
  }));

  ASSERT_FALSE(configured.requests().empty());
  EXPECT_EQ(configured.requests().front(),
            "HEAD /health.php?full=1 HTTP/1.1\r\nHost: web.example\r\n"
            "User-Agent: tandem-check\r\nConnection: close\r\n\r\n");
  ASSERT_FALSE(defaults.requests().empty());
  EXPECT_EQ(defaults.requests().front(),
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(defaults.port()) +
                "\r\nUser-Agent: tandem-check\r\nConnection: close\r\n\r\n");
}

TEST_F(HttpCheckTest, StopWhileWaitingForTheAnswerClosesEverything) {
  ScriptedServer http(silence());
  CheckConfig check = httpCheck();
  check.timeout = Millis(10000);
  startChecker({backendOf("web", {serverAt("web1", http.port())}, check)});
  ASSERT_TRUE(waitFor([&] { return !http.requests().empty(); }));

  int done_calls = 0;
  checker_->stop([&done_calls] { ++done_calls; });
  ASSERT_TRUE(waitFor([&] { return done_calls > 0; }));
  runFor(Millis(20));

  EXPECT_EQ(done_calls, 1);
  CheckInfo info = infoOf(web("web1"));
  EXPECT_FALSE(info.checking);
  EXPECT_EQ(info.status, "INI");  // the abandoned probe reported nothing
  checker_.reset();
}

// Under AddressSanitizer these prove that a pending connect, or a socket being read, left
// behind by a destroyed check touches no freed memory when libuv gets to it.
TEST_F(HttpCheckTest, DestroyingTheCheckerWhileReadingIsSafe) {
  ScriptedServer http(silence());
  CheckConfig check = httpCheck();
  check.timeout = Millis(10000);
  startChecker({backendOf("web", {serverAt("web1", http.port())}, check)});
  ASSERT_TRUE(waitFor([&] { return !http.requests().empty(); }));

  checker_.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_TRUE(web("web1").up.load());
}

TEST_F(HttpCheckTest, DestroyingTheCheckerWithAConnectPendingIsSafe) {
  LoopbackListener full;
  ASSERT_TRUE(full.open(0, /*backlog=*/0));
  full.fillAcceptQueue();
  CheckConfig check = httpCheck();
  check.timeout = Millis(10000);
  startChecker({backendOf("web", {serverAt("web1", full.port())}, check)});
  ASSERT_TRUE(waitFor([&] { return infoOf(web("web1")).checking; }));

  checker_.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_TRUE(web("web1").up.load());
}

// The real thing: PHP's built-in server answers 200, then 503 while a maintenance file
// exists, and once killed refuses the connection.
TEST_F(HttpCheckTest, PhpServerIsUpThenDownWhenInMaintenanceAndWhenKilled) {
  captureLog();
  TempDir root;
  root.write("health.php",
             "<?php\n"
             "if (file_exists(__DIR__ . '/maintenance')) {\n"
             "  http_response_code(503);\n"
             "}\n"
             "echo \"ok\\n\";\n");
  PhpServer php;
  uint16_t port = unusedPort();
  ASSERT_TRUE(php.start(root.path(), port)) << "php -S did not start on port " << port;
  CheckConfig check = httpCheck();
  check.path = "/health.php";

  CheckInfo info = firstResult(port, check);
  EXPECT_EQ(info.status, "L7OK");
  EXPECT_EQ(info.reason, "Layer7 check passed: 200 OK");

  root.write("maintenance", "");
  ASSERT_TRUE(waitFor([&] { return !web("web1").up.load(); }));
  EXPECT_EQ(infoOf(web("web1")).reason, "Layer7 wrong status: 503 Service Unavailable");
  std::filesystem::remove(root.path() / "maintenance");
  ASSERT_TRUE(waitFor([&] { return web("web1").up.load(); }));

  php.kill();
  ASSERT_TRUE(waitFor([&] { return !web("web1").up.load(); }));
  EXPECT_EQ(infoOf(web("web1")).status, "L4CON");
  std::string log = takeLog();
  EXPECT_EQ(countOf(log, "server web/web1 is DOWN, reason: Layer7 wrong status: 503"), 1) << log;
  EXPECT_EQ(countOf(log, "server web/web1 is UP, reason: Layer7 check passed: 200 OK"), 1) << log;
  EXPECT_EQ(countOf(log, "server web/web1 is DOWN, reason: connection refused"), 1) << log;
}

}  // namespace
}  // namespace tandem
