// RuntimeSocket over a real UNIX socket: the socket's loop runs on a thread of its own, and
// the test talks to it with plain blocking sockets, as socat would.
#include "admin/unix_socket.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tandem {
namespace {

constexpr int kTimeoutMs = 5000;

// A loop on its own thread; post() runs a function there and waits for it.
class LoopThread {
 public:
  LoopThread() {
    uv_loop_init(&loop_);
    wake_.init(uv_async_init, &loop_, &LoopThread::onWake);
    wake_.get()->data = this;
  }
  ~LoopThread() {
    if (thread_.joinable()) {
      post([this] { wake_.close(); });
      thread_.join();
    }
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle is still open";
  }

  uv_loop_t* loop() { return &loop_; }
  void run() {
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }
  void post(std::function<void()> fn) {
    std::promise<void> done;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back([&] {
        fn();
        done.set_value();
      });
    }
    uv_async_send(wake_.get());
    done.get_future().wait();
  }

 private:
  static void onWake(uv_async_t* async) {
    auto* self = static_cast<LoopThread*>(async->data);
    std::vector<std::function<void()>> queue;
    {
      std::lock_guard<std::mutex> lock(self->mutex_);
      queue.swap(self->queue_);
    }
    for (auto& fn : queue) {
      fn();
    }
  }

  uv_loop_t loop_{};
  UvHandle<uv_async_t> wake_;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::function<void()>> queue_;
};

// A blocking client. Reads wait at most kTimeoutMs.
class Client {
 public:
  explicit Client(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Client() { ::close(fd_); }

  bool connected() const { return connected_; }
  bool send(const std::string& data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }
  void shutdownWrite() { ::shutdown(fd_, SHUT_WR); }

  // Everything until the peer closes; *closed tells whether it did within the timeout.
  std::string readAll(bool* closed = nullptr) {
    std::string out;
    bool eof = false;
    while (readSome(&out, &eof) && !eof) {
    }
    if (closed != nullptr) {
      *closed = eof;
    }
    return out;
  }
  // Reads until `out` ends with `suffix`.
  std::string readUntil(const std::string& suffix) {
    std::string out;
    bool eof = false;
    while (!(out.size() >= suffix.size() &&
             out.compare(out.size() - suffix.size(), suffix.size(), suffix) == 0) &&
           readSome(&out, &eof) && !eof) {
    }
    return out;
  }

 private:
  bool readSome(std::string* out, bool* eof) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, kTimeoutMs) <= 0) {
      return false;
    }
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      *eof = true;
      return true;
    }
    out->append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
};

class RuntimeSocketTest : public testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);
    char dir_template[] = "/tmp/tandem-sock-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    path_ = dir_ + "/admin.sock";
  }
  void TearDown() override {
    if (socket_) {
      loop_.post([this] { socket_->stop([this] { stopped_ = true; }); });
      EXPECT_TRUE(waitUntil([this] { return stopped_.load(); }));
      loop_.post([this] { socket_.reset(); });
    }
    std::filesystem::remove_all(dir_);
  }

  // Starts a socket whose runner answers "ran <command>\n" and records the command.
  bool startSocket(std::string* error) {
    socket_ = std::make_unique<RuntimeSocket>(loop_.loop(), path_, [this](std::string_view cmd) {
      std::lock_guard<std::mutex> lock(mutex_);
      commands_.emplace_back(cmd);
      if (cmd == "silent") {
        return CommandResult{true, ""};
      }
      if (cmd == "big") {
        return CommandResult{true, std::string(1 << 20, 'x') + "\n"};
      }
      return CommandResult{true, "ran " + std::string(cmd) + "\n"};
    });
    bool ok = socket_->start(error);
    loop_.run();
    return ok;
  }

  std::vector<std::string> commands() {
    std::lock_guard<std::mutex> lock(mutex_);
    return commands_;
  }

  static bool waitUntil(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) {
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }

  // The order matters: the socket must go before the loop it lives on.
  LoopThread loop_;
  std::unique_ptr<RuntimeSocket> socket_;
  std::string dir_;
  std::string path_;
  std::mutex mutex_;
  std::vector<std::string> commands_;
  std::atomic<bool> stopped_{false};
};

TEST_F(RuntimeSocketTest, AnswersOneLineThenCloses) {
  std::string error;
  ASSERT_TRUE(startSocket(&error)) << error;
  Client c(path_);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send("show info\n"));
  bool closed = false;
  EXPECT_EQ(c.readAll(&closed), "ran show info\n\n");
  EXPECT_TRUE(closed);
  EXPECT_EQ(commands(), (std::vector<std::string>{"show info"}));
}

TEST_F(RuntimeSocketTest, ACommandWithoutOutputAnswersAnEmptyLine) {
  std::string error;
  ASSERT_TRUE(startSocket(&error)) << error;
  Client c(path_);
  ASSERT_TRUE(c.send("silent\r\n"));
  EXPECT_EQ(c.readAll(), "\n");
}

TEST_F(RuntimeSocketTest, SemicolonsAndLinesSentTogetherRunInOrder) {
  std::string error;
  ASSERT_TRUE(startSocket(&error)) << error;
  Client c(path_);
  ASSERT_TRUE(c.send("a; b ;;silent\nc\n"));
  EXPECT_EQ(c.readAll(), "ran a\n\nran b\n\n\nran c\n\n");
  EXPECT_EQ(commands(), (std::vector<std::string>{"a", "b", "silent", "c"}));
}

TEST_F(RuntimeSocketTest, ALastLineWithoutNewlineRunsAtEof) {
  std::string error;
  ASSERT_TRUE(startSocket(&error)) << error;
  Client c(path_);
  ASSERT_TRUE(c.send("show stat"));
  c.shutdownWrite();
  EXPECT_EQ(c.readAll(), "ran show stat\n\n");
}

TEST_F(RuntimeSocketTest, PromptKeepsTheConnectionUntilQuit) {
  std::string error;
  ASSERT_TRUE(startSocket(&error)) << error;
  Client c(path_);
  ASSERT_TRUE(c.send("prompt\n"));
  EXPECT_EQ(c.readUntil("> "), "\n> ");
  ASSERT_TRUE(c.send("one\n"));
  EXPECT_EQ(c.readUntil("> "), "ran one\n\n> ");
  ASSERT_TRUE(c.send("two; three\n"));
  EXPECT_EQ(c.readUntil("three\n\n> "), "ran two\n\n> ran three\n\n> ");
  ASSERT_TRUE(c.send("quit\n"));
  bool closed = false;
  EXPECT_EQ(c.readAll(&closed), "");
  EXPECT_TRUE(closed);
  EXPECT_EQ(commands(), (std::vector<std::string>{"one", "two", "three"}));
}

TEST_F(RuntimeSocketTest, LargeAnswersReachASlowReaderWhole) {
  std::string error;
  ASSERT_TRUE(startSocket(&error)) << error;
  Client c(path_);
  ASSERT_TRUE(c.send("prompt\nbig\nbig\nbig\nquit\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the output pile up
  std::string big(1 << 20, 'x');
  bool closed = false;
  EXPECT_EQ(c.readAll(&closed), "\n> " + big + "\n\n> " + big + "\n\n> " + big + "\n\n> ");
  EXPECT_TRUE(closed);
}

// The client goes away with answers still queued: the failed and cancelled writes end the
// connection cleanly, and the socket goes on serving.
TEST_F(RuntimeSocketTest, AClientLeavingWithAnswersPendingIsCleanedUp) {
  std::string error;
  ASSERT_TRUE(startSocket(&error)) << error;
  {
    Client c(path_);
    ASSERT_TRUE(c.send("prompt\nbig\nbig\nbig\n"));
    ASSERT_TRUE(waitUntil([this] { return commands().size() >= 1; }));
  }
  EXPECT_TRUE(waitUntil([this] {
    size_t n = 1;
    loop_.post([&] { n = socket_->connectionCount(); });
    return n == 0;
  }));
  Client again(path_);
  ASSERT_TRUE(again.send("z\n"));
  EXPECT_EQ(again.readAll(), "ran z\n\n");
}

TEST_F(RuntimeSocketTest, ALineTooLongGetsAnErrorAndTheConnectionCloses) {
  std::string error;
  ASSERT_TRUE(startSocket(&error)) << error;
  Client c(path_);
  std::string line(RuntimeSocket::kMaxLine + 100, 'a');
  c.send(line);  // may fail part way once the socket closes
  bool closed = false;
  EXPECT_EQ(c.readAll(&closed), "Line too long (more than 65536 bytes).\n");
  EXPECT_TRUE(closed);
  EXPECT_TRUE(commands().empty());
}

TEST_F(RuntimeSocketTest, AnIdleConnectionIsClosed) {
  std::string error;
  ASSERT_TRUE(startSocket(&error)) << error;
  loop_.post([this] { socket_->setIdleTimeoutMs(50); });
  Client c(path_);
  ASSERT_TRUE(c.connected());
  bool closed = false;
  EXPECT_EQ(c.readAll(&closed), "");
  EXPECT_TRUE(closed);
}

TEST_F(RuntimeSocketTest, TheSocketIsOwnerOnly) {
  std::string error;
  ASSERT_TRUE(startSocket(&error)) << error;
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600U);
}

TEST_F(RuntimeSocketTest, AStaleSocketFileIsReplaced) {
  // A socket file nobody listens on, as a killed process leaves it.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(fd);

  std::string error;
  ASSERT_TRUE(startSocket(&error)) << error;
  Client c(path_);
  ASSERT_TRUE(c.send("x\n"));
  EXPECT_EQ(c.readAll(), "ran x\n\n");
}

TEST_F(RuntimeSocketTest, ALiveListenerIsNotTakenOver) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);

  std::string error;
  EXPECT_FALSE(startSocket(&error));
  EXPECT_EQ(error, "another process is listening on " + path_);
  EXPECT_TRUE(std::filesystem::exists(path_));
  ::close(fd);
}

TEST_F(RuntimeSocketTest, ARegularFileIsNotRemoved) {
  std::ofstream(path_) << "keep me";
  std::string error;
  EXPECT_FALSE(startSocket(&error));
  EXPECT_EQ(error, path_ + " exists and is not a socket");
  std::ifstream in(path_);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "keep me");
}

TEST_F(RuntimeSocketTest, APathTooLongIsRefused) {
  path_ = dir_ + "/" + std::string(200, 's');
  std::string error;
  EXPECT_FALSE(startSocket(&error));
  EXPECT_NE(error.find("longer than 107 bytes"), std::string::npos) << error;
}

TEST_F(RuntimeSocketTest, ConnectionsBeyondTheLimitAreClosed) {
  std::string error;
  ASSERT_TRUE(startSocket(&error)) << error;
  std::vector<std::unique_ptr<Client>> clients;
  for (size_t i = 0; i < RuntimeSocket::kMaxConnections; ++i) {
    clients.push_back(std::make_unique<Client>(path_));
    ASSERT_TRUE(clients.back()->connected());
  }
  ASSERT_TRUE(waitUntil([this] {
    size_t n = 0;
    loop_.post([&] { n = socket_->connectionCount(); });
    return n == RuntimeSocket::kMaxConnections;
  }));
  Client extra(path_);
  bool closed = false;
  EXPECT_EQ(extra.readAll(&closed), "");
  EXPECT_TRUE(closed);
  // The others still work.
  ASSERT_TRUE(clients[0]->send("y\n"));
  EXPECT_EQ(clients[0]->readAll(), "ran y\n\n");
}

TEST_F(RuntimeSocketTest, StopClosesConnectionsAndRemovesTheFile) {
  std::string error;
  ASSERT_TRUE(startSocket(&error)) << error;
  Client c(path_);
  ASSERT_TRUE(c.send("prompt\n"));
  EXPECT_EQ(c.readUntil("> "), "\n> ");

  loop_.post([this] { socket_->stop([this] { stopped_ = true; }); });
  ASSERT_TRUE(waitUntil([this] { return stopped_.load(); }));
  bool closed = false;
  c.readAll(&closed);
  EXPECT_TRUE(closed);
  EXPECT_FALSE(std::filesystem::exists(path_));
}

}  // namespace
}  // namespace tandem
