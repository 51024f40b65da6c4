// The process side of the harness: ports, files, the config text and the tandem child.
// Sockets and in-process servers are in peers.cpp.
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace tandem::it {

namespace {

constexpr milliseconds kPollStep{10};

bool pastDeadline(Clock::time_point deadline) {
  return Clock::now() >= deadline;
}

void sleepStep() {
  std::this_thread::sleep_for(kPollStep);
}

// "0100007F:1F90" -> true if the address is 127.0.0.1 or 0.0.0.0 and the port matches.
bool localAddressMatches(const std::string& field, uint16_t port) {
  size_t colon = field.find(':');
  if (colon == std::string::npos) {
    return false;
  }
  std::string addr = field.substr(0, colon);
  unsigned long parsed_port = std::strtoul(field.c_str() + colon + 1, nullptr, 16);
  return parsed_port == port && (addr == "0100007F" || addr == "00000000");
}

ExitStatus decodeWaitStatus(int status) {
  ExitStatus out;
  if (WIFEXITED(status)) {
    out.exited = true;
    out.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    out.signal = WTERMSIG(status);
  }
  return out;
}

// Polls waitpid until the child ends or the deadline passes.
std::optional<ExitStatus> reapBefore(pid_t pid, Clock::time_point deadline) {
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return decodeWaitStatus(status);
    }
    if (r < 0 && errno != EINTR) {
      throw std::runtime_error(std::string("waitpid: ") + strerror(errno));
    }
    if (pastDeadline(deadline)) {
      return std::nullopt;
    }
    sleepStep();
  }
}

int openForChild(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw std::runtime_error("cannot open " + path + ": " + strerror(errno));
  }
  return fd;
}

// Runs in the child between fork and exec, so it uses only async-signal-safe calls: the
// test process has other threads (the peers) whose locks may be held at fork time.
[[noreturn]] void execChild(char* const argv[], int null_fd, int out_fd, int err_fd, pid_t parent) {
  dup2(null_fd, STDIN_FILENO);
  dup2(out_fd, STDOUT_FILENO);
  dup2(err_fd, STDERR_FILENO);
  // A test process that dies (crash, ctest timeout) takes its tandem with it instead of
  // leaving a process that holds ports. Tied to the forking thread: tests fork from main.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) {
    _exit(127);
  }
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) {
    sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execv(argv[0], argv);
  _exit(127);
}

// Starts TANDEM_BINARY with `args`; stdout and stderr go to the given files.
pid_t spawnTandem(const std::vector<std::string>& args, const std::string& out_path,
                  const std::string& err_path) {
  std::vector<std::string> full = {TANDEM_BINARY};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : full) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out_fd = openForChild(out_path);
  int err_fd = out_path == err_path ? out_fd : openForChild(err_path);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    execChild(argv.data(), null_fd, out_fd, err_fd, parent);
  }
  ::close(null_fd);
  ::close(out_fd);
  if (err_fd != out_fd) {
    ::close(err_fd);
  }
  if (pid < 0) {
    throw std::runtime_error(std::string("fork: ") + strerror(errno));
  }
  return pid;
}

void appendServer(std::ostringstream& out, const ServerSpec& s) {
  out << "\n[[backend.server]]\n"
      << "name = \"" << s.name << "\"\n"
      << "address = \"127.0.0.1:" << s.port << "\"\n"
      << "weight = " << s.weight << "\n"
      << "backup = " << (s.backup ? "true" : "false") << "\n"
      << "maxconn = " << s.maxconn << "\n"
      << "check = " << (s.check ? "true" : "false") << "\n";
}

void appendStringIfSet(std::ostringstream& out, const char* key, const std::string& value) {
  if (!value.empty()) {
    out << key << " = \"" << value << "\"\n";
  }
}

void appendIntIfSet(std::ostringstream& out, const char* key, int value) {
  if (value != 0) {
    out << key << " = " << value << "\n";
  }
}

void appendCheck(std::ostringstream& out, const CheckSpec& c) {
  out << "\n[backend.check]\n"
      << "type = \"" << c.type << "\"\n"
      << "interval = \"" << c.interval << "\"\n"
      << "rise = " << c.rise << "\n"
      << "fall = " << c.fall << "\n";
  appendStringIfSet(out, "method", c.method);
  appendStringIfSet(out, "path", c.path);
  appendStringIfSet(out, "host", c.host);
  if (!c.expect.empty()) {
    out << "expect = " << c.expect << "\n";
  }
}

void appendBackend(std::ostringstream& out, const BackendSpec& b) {
  out << "\n[[backend]]\n"
      << "name = \"" << b.name << "\"\n"
      << "balance = \"" << b.balance << "\"\n";
  if (!b.mode.empty()) {
    out << "mode = \"" << b.mode << "\"\n";
  }
  if (!b.on_marked_down.empty()) {
    out << "on_marked_down = \"" << b.on_marked_down << "\"\n";
  }
  appendStringIfSet(out, "cookie", b.cookie);
  appendIntIfSet(out, "error_limit", b.error_limit);
  if (b.check) {
    appendCheck(out, *b.check);
  }
  for (const ServerSpec& s : b.servers) {
    appendServer(out, s);
  }
}

void appendFrontend(std::ostringstream& out, const FrontendSpec& f) {
  out << "\n[[frontend]]\n"
      << "name = \"" << f.name << "\"\n"
      << "listen = \"127.0.0.1:" << f.port << "\"\n"
      << "backend = \"" << f.backend << "\"\n"
      << "maxconn = " << f.maxconn << "\n";
  if (!f.mode.empty()) {
    out << "mode = \"" << f.mode << "\"\n";
  }
}

}  // namespace

uint16_t freePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw std::runtime_error(std::string("socket: ") + strerror(errno));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("bind/getsockname: ") + strerror(errno));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

int listeningSockets(uint16_t port) {
  constexpr const char* kListenState = "0A";
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  int count = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    if (state == kListenState && localAddressMatches(local, port)) {
      ++count;
    }
  }
  return count;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base ? base : "/tmp") + "/tandem-it-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error(std::string("mkdtemp: ") + strerror(errno));
  }
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::write(const std::string& name, const std::string& content) const {
  std::string full = (path_ / name).string();
  std::ofstream out(full, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out.flush()) {
    throw std::runtime_error("cannot write " + full);
  }
  return full;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

ConfigSpec ConfigSpec::simpleTcp(std::vector<ServerSpec> servers) {
  ConfigSpec spec;
  FrontendSpec fe;
  fe.port = freePort();
  spec.frontends.push_back(fe);
  BackendSpec be;
  be.servers = std::move(servers);
  spec.backends.push_back(be);
  return spec;
}

std::string ConfigSpec::toml() const {
  std::ostringstream out;
  out << "[global]\n"
      << "threads = " << threads << "\n"
      << "log_level = \"" << log_level << "\"\n"
      << "hard_stop_after = \"" << hard_stop_after << "\"\n";
  appendStringIfSet(out, "access_log", access_log);
  appendStringIfSet(out, "log_format", log_format);
  out << "\n[defaults]\n"
      << "timeout_connect = \"" << timeout_connect << "\"\n"
      << "timeout_client = \"" << timeout_client << "\"\n"
      << "timeout_server = \"" << timeout_server << "\"\n"
      << "retries = " << retries << "\n";
  appendStringIfSet(out, "timeout_http_request", timeout_http_request);
  appendStringIfSet(out, "timeout_http_keep_alive", timeout_http_keep_alive);
  appendIntIfSet(out, "max_header_size", max_header_size);
  appendIntIfSet(out, "max_headers", max_headers);
  for (const FrontendSpec& f : frontends) {
    appendFrontend(out, f);
  }
  for (const BackendSpec& b : backends) {
    appendBackend(out, b);
  }
  out << extra;
  return out.str();
}

std::string ExitStatus::str() const {
  if (exited) {
    return "exit code " + std::to_string(code);
  }
  return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
}

RunResult runTandem(const std::vector<std::string>& args, milliseconds timeout) {
  TempDir dir;
  std::string out_path = (dir.path() / "stdout").string();
  std::string err_path = (dir.path() / "stderr").string();
  pid_t pid = spawnTandem(args, out_path, err_path);
  RunResult result;
  result.status = reapBefore(pid, Clock::now() + timeout);
  if (!result.status) {
    kill(pid, SIGKILL);
    reapBefore(pid, Clock::now() + kIoTimeout);
  }
  result.out = readFile(out_path);
  result.err = readFile(err_path);
  return result;
}

TandemProcess::TandemProcess(const std::string& config_path) : log_path_(config_path + ".log") {
  pid_ = spawnTandem({"-c", config_path}, log_path_, log_path_);
}

TandemProcess::~TandemProcess() {
  if (running()) {
    kill(pid_, SIGKILL);
    reapBefore(pid_, Clock::now() + kIoTimeout);
  }
  if (::testing::Test::HasFailure()) {
    std::cerr << "---- tandem log (" << log_path_ << ") ----\n"
              << log() << "---- end of tandem log ----\n";
  }
}

std::string TandemProcess::log() const {
  return readFile(log_path_);
}

bool TandemProcess::waitForLog(const std::string& needle, milliseconds timeout, size_t from) const {
  Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    std::string text = log();
    if (text.size() > from && text.find(needle, from) != std::string::npos) {
      return true;
    }
    if (pastDeadline(deadline)) {
      return false;
    }
    sleepStep();
  }
}

bool TandemProcess::waitUntilListening(uint16_t port, milliseconds timeout, int sockets) {
  Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    if (listeningSockets(port) >= sockets) {
      return true;
    }
    if (!running() || pastDeadline(deadline)) {
      return false;
    }
    sleepStep();
  }
}

bool TandemProcess::sendSignal(int sig) const {
  return kill(pid_, sig) == 0;
}

std::optional<ExitStatus> TandemProcess::waitExit(milliseconds timeout) {
  if (!exit_) {
    exit_ = reapBefore(pid_, Clock::now() + timeout);
  }
  return exit_;
}

bool TandemProcess::running() {
  return !waitExit(milliseconds(0)).has_value();
}

PeakRss::PeakRss(const TandemProcess& process) : process_(process) {
  sampler_ = std::thread([this] {
    while (!stop_) {
      peak_kib_ = std::max(peak_kib_.load(), process_.rssKiB());
      std::this_thread::sleep_for(milliseconds(5));
    }
  });
}

PeakRss::~PeakRss() {
  stop_ = true;
  sampler_.join();
}

void IntegrationTest::startTandem(const ConfigSpec& spec) {
  tandem_ = std::make_unique<TandemProcess>(dir_.write("tandem.toml", spec.toml()));
  for (const FrontendSpec& fe : spec.frontends) {
    ASSERT_TRUE(tandem_->waitUntilListening(fe.port, kStartTimeout))
        << "frontend " << fe.name << " is not listening on port " << fe.port;
  }
}

long TandemProcess::rssKiB() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::strtol(line.c_str() + 6, nullptr, 10);
    }
  }
  return 0;
}

}  // namespace tandem::it
