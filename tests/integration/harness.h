// Integration harness: runs the real `tandem` binary against peers on 127.0.0.1.
//
// A test builds a config, starts the binary, drives clients through it and looks at what the
// peers saw and what tandem logged:
//
//   class MyTest : public IntegrationTest {};
//   TEST_F(MyTest, SendsToS1) {
//     TestServer s1(nameHandler("s1"));
//     ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", s1.port()}});
//     ASSERT_NO_FATAL_FAILURE(startTandem(spec));  // writes the file, waits for listeners
//     Socket c = connectTo(spec.frontendPort());
//     EXPECT_EQ(c.readLine(kIoTimeout), "s1");
//     EXPECT_TRUE(tandem().waitForLog("...", kStateTimeout));
//   }
//
// Everything here blocks with a timeout and reports failure as a value, so that each test
// asserts on it. Every socket is opened close-on-exec: a peer's socket inherited by the
// tandem child would keep a "killed" server's port accepting.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace tandem::it {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Generous bounds for things that normally take milliseconds; they exist so that a broken
// binary fails a test instead of hanging it, and say nothing about speed.
inline constexpr milliseconds kStartTimeout{10000};
inline constexpr milliseconds kIoTimeout{5000};
inline constexpr milliseconds kStateTimeout{10000};

// Polls `condition` until it holds (true) or `timeout` passes (false).
bool eventually(const std::function<bool()>& condition, milliseconds timeout);

// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
uint16_t freePort();

// Number of sockets listening on 127.0.0.1:port (or the wildcard), read from /proc/net/tcp.
// Observing listeners this way opens no session, so it does not disturb what a test counts.
int listeningSockets(uint16_t port);

// A private directory under $TMPDIR (or /tmp), removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Writes `content` to path()/name and returns the full path.
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

std::string readFile(const std::string& path);

// ---------------------------------------------------------------------------------------
// Configuration: a small model of the TOML file, enough for the tests to vary what matters.

struct CheckSpec {
  std::string type = "tcp";
  std::string interval = "100ms";
  int rise = 2;
  int fall = 2;
  // type = "http": each is written only when set. `expect` is a TOML value written as is,
  // e.g. "200", "[200, 204]" or "\"2xx\"".
  std::string method;
  std::string path;
  std::string host;
  std::string expect;
};

struct ServerSpec {
  std::string name;
  uint16_t port = 0;
  int weight = 1;
  bool backup = false;
  int maxconn = 0;
  bool check = true;
};

struct BackendSpec {
  std::string name = "be";
  std::string mode;  // empty: not written, the loader's default applies
  std::string balance = "roundrobin";
  std::string on_marked_down;  // empty: not written
  std::string cookie;          // HTTP persistence cookie name; empty: not written
  int error_limit = 0;         // passive checks; 0: not written
  std::optional<CheckSpec> check;
  std::vector<ServerSpec> servers;
};

struct FrontendSpec {
  std::string name = "fe";
  uint16_t port = 0;
  std::string mode;  // empty: not written
  std::string backend = "be";
  int maxconn = 0;
};

struct ConfigSpec {
  int threads = 2;
  std::string log_level = "info";
  std::string hard_stop_after = "10s";
  std::string timeout_connect = "1s";
  std::string timeout_client = "30s";
  std::string timeout_server = "30s";
  int retries = 3;
  // HTTP settings, each written only when set (empty or 0), so that the loader's defaults
  // apply otherwise.
  std::string access_log;  // [global]: "stdout", "off" or a file path
  std::string log_format;  // [global]: "haproxy" or "json"
  std::string timeout_http_request;
  std::string timeout_http_keep_alive;
  int max_header_size = 0;
  int max_headers = 0;
  std::vector<FrontendSpec> frontends;
  std::vector<BackendSpec> backends;
  // Appended verbatim, for tables this model does not know yet (e.g. [admin]).
  std::string extra;

  // One frontend "fe" on a fresh free port in front of backend "be" with these servers,
  // without health checks.
  static ConfigSpec simpleTcp(std::vector<ServerSpec> servers);

  uint16_t frontendPort() const { return frontends.at(0).port; }
  BackendSpec& backend() { return backends.at(0); }
  std::string toml() const;
};

// ---------------------------------------------------------------------------------------
// The binary under test.

struct ExitStatus {
  bool exited = false;  // false: killed by a signal
  int code = -1;        // exit code when exited
  int signal = 0;       // terminating signal otherwise

  bool ok() const { return exited && code == 0; }
  std::string str() const;
};

// Runs TANDEM_BINARY to completion (for --check, --version ...), capturing both streams.
struct RunResult {
  std::optional<ExitStatus> status;  // nullopt: did not finish in time and was killed
  std::string out;
  std::string err;
};
RunResult runTandem(const std::vector<std::string>& args, milliseconds timeout = kIoTimeout);

// `tandem -c CONFIG` in the foreground. Its stderr goes to a file next to the config so that
// tests can wait for log lines. The destructor kills it with SIGKILL if it is still running
// and, when the test has failed, prints its log to help the reader.
class TandemProcess {
 public:
  explicit TandemProcess(const std::string& config_path);
  ~TandemProcess();
  TandemProcess(const TandemProcess&) = delete;
  TandemProcess& operator=(const TandemProcess&) = delete;

  pid_t pid() const { return pid_; }
  std::string log() const;
  // A position in the log; pass it to waitForLog to ignore lines written before it.
  size_t logMark() const { return log().size(); }
  // True once `needle` appears in the log after `from`.
  bool waitForLog(const std::string& needle, milliseconds timeout, size_t from = 0) const;
  // True once at least `sockets` listeners are bound on `port` (one per worker thread with
  // SO_REUSEPORT). False on timeout or if the process exited first.
  bool waitUntilListening(uint16_t port, milliseconds timeout, int sockets = 1);

  bool sendSignal(int sig) const;
  // The exit status, or nullopt if the process is still running after `timeout`.
  std::optional<ExitStatus> waitExit(milliseconds timeout);
  bool running();
  // VmRSS from /proc/PID/status in KiB; 0 when the process is gone.
  long rssKiB() const;

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  std::optional<ExitStatus> exit_;
};

// Samples a process's VmRSS every few milliseconds on its own thread and keeps the peak.
class PeakRss {
 public:
  explicit PeakRss(const TandemProcess& process);
  ~PeakRss();
  PeakRss(const PeakRss&) = delete;
  PeakRss& operator=(const PeakRss&) = delete;

  long peakKiB() const { return peak_kib_.load(); }

 private:
  const TandemProcess& process_;
  std::atomic<bool> stop_{false};
  std::atomic<long> peak_kib_{0};
  std::thread sampler_;
};

// ---------------------------------------------------------------------------------------
// Peers: blocking sockets with per-call deadlines.

// One connected TCP socket, owned. Receives honour the timeout passed to each call.
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket();
  Socket(Socket&& other) noexcept;
  Socket& operator=(Socket&& other) noexcept;

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

  bool sendAll(const void* data, size_t len);
  bool sendAll(const std::string& data) { return sendAll(data.data(), data.size()); }
  // Returns bytes read (>0), 0 on EOF, -1 on timeout or error.
  ssize_t recvSome(void* buf, size_t len, milliseconds timeout);
  // Exactly n bytes, or nullopt on timeout, error or early EOF.
  std::optional<std::string> recvExact(size_t n, milliseconds timeout);
  // Up to and without the next '\n'; nullopt if none arrives in time.
  std::optional<std::string> readLine(milliseconds timeout);
  // Everything until EOF; nullopt if EOF does not arrive in time.
  std::optional<std::string> readToEof(milliseconds timeout);
  // True if no byte arrives during `window` (and the peer did not close). Peeks only.
  bool quietFor(milliseconds window);
  // Discards incoming bytes until the peer closes (EOF or reset): true, or false if the
  // connection is still open after `timeout`.
  bool waitClosed(milliseconds timeout);
  bool shutdownWrite();
  void close();
  // Gives up ownership: the caller closes the returned descriptor.
  int release();

 private:
  bool setRecvTimeout(milliseconds timeout);

  int fd_ = -1;
};

// A connected socket to 127.0.0.1:port, or an invalid Socket with errno_out set.
Socket connectTo(uint16_t port, int* errno_out = nullptr);

// Sends `data` from a second thread while reading the same amount back, so that a large
// echo cannot deadlock on full buffers. Returns what came back (possibly short on timeout).
std::string echoExchange(Socket& sock, const std::string& data, milliseconds timeout);

// Connects through tandem to a server running nameHandler and returns the name it announced,
// or an empty string if the connection failed or nothing arrived in time.
std::string askName(uint16_t port, milliseconds timeout = kIoTimeout);

// askName `count` times in a row, each on a new connection.
std::vector<std::string> askNames(uint16_t port, int count);
// How many entries of `names` equal `name`.
int countOf(const std::vector<std::string>& names, const std::string& name);

// Random bytes from a fixed seed (reproducible failures).
std::string randomBytes(size_t n, uint64_t seed);

// A running 64-bit FNV-1a over a stream, fed in chunks.
struct StreamDigest {
  uint64_t bytes = 0;
  uint64_t hash = 14695981039346656037ull;
  void add(const void* data, size_t len);
};

// Produces the deterministic byte stream that sourceHandler sends: chunk i is a function of
// i alone, so a client can recompute the digest of what it should have received.
void patternChunk(uint64_t offset, char* out, size_t len);

// ---------------------------------------------------------------------------------------
// In-process backend servers.

// Called on its own thread for each accepted connection. The server closes the socket once the
// handler returns (the handler must not close it: stop() may still shut it down).
using Handler = std::function<void(Socket&)>;

// Listens on 127.0.0.1 (a free port, or the given one when restarting a "killed" server) and
// runs `handler` per connection. stop() simulates a dead server: the listener closes, so new
// connects are refused, and every open connection is shut down and closed.
class TestServer {
 public:
  explicit TestServer(Handler handler, uint16_t port = 0);
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  uint16_t port() const { return port_; }
  // Connections accepted so far, health checks included.
  int accepted() const { return accepted_.load(); }
  // Connections open now (their handler has not returned yet).
  int active() const { return active_.load(); }
  // Listens again on the same port with the same handler.
  void start();
  // Closes only the listener: new connects (and TCP checks) are refused while the open
  // connections carry on, like a server whose accept queue is gone but whose sessions live.
  void stopListening();
  void stop();

 private:
  struct Conn {
    int fd = -1;
    bool done = false;
    std::thread thread;
  };

  void acceptLoop(int listen_fd);
  void serve(std::shared_ptr<Conn> conn);

  Handler handler_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::atomic<int> accepted_{0};
  std::atomic<int> active_{0};
  std::mutex mu_;  // guards conns_ and each Conn's fd/done
  std::vector<std::shared_ptr<Conn>> conns_;
};

// Echoes until EOF, then closes.
Handler echoHandler();
// Writes "name\n" at once, then echoes.
Handler nameHandler(const std::string& name);
// Reads until EOF, adding the byte count to *total.
Handler sinkHandler(std::shared_ptr<std::atomic<uint64_t>> total);
// Reads `chunk` bytes every `pause` until EOF, feeding *digest. Read the digest once the
// server's active() is back to 0: the atomic count orders it after the handler's writes.
Handler slowReaderHandler(size_t chunk, milliseconds pause, std::shared_ptr<StreamDigest> digest);
// Sends `bytes` of patternChunk's stream, then closes.
Handler sourceHandler(uint64_t bytes);
// Reads until EOF, then sends `reply` and closes; *received gets what it read (read it once
// active() is back to 0).
Handler replyAfterEofHandler(std::string reply, std::shared_ptr<std::string> received);

// ---------------------------------------------------------------------------------------
// Fixture: a temp dir and one tandem, stopped (SIGKILL) when the test ends.

class IntegrationTest : public ::testing::Test {
 protected:
  // Writes `spec` as tandem.toml, starts tandem and waits until every frontend listens.
  // Call through ASSERT_NO_FATAL_FAILURE.
  void startTandem(const ConfigSpec& spec);
  TandemProcess& tandem() { return *tandem_; }

  TempDir dir_;
  std::unique_ptr<TandemProcess> tandem_;  // declared after dir_: its log lives in dir_
};

}  // namespace tandem::it
