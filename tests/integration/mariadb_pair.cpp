// MariaDbPair: runs scripts/mariadb-pair.sh and the `mariadb` client as child processes with
// deadlines, and keeps a registry of live pairs so that exit() still stops them.
#include "tests/integration/mariadb_pair.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace tandem::it {

namespace {

constexpr milliseconds kPollStep{50};
// Bootstrapping both data directories on a loaded 2-core machine takes ~10 s at worst.
constexpr milliseconds kStartDeadline{180000};
constexpr milliseconds kControlDeadline{60000};
constexpr milliseconds kSqlDeadline{60000};
constexpr int kStartAttempts = 3;
// How long SharedMariaDbPair::require() waits before it starts to heal the pair.
constexpr milliseconds kQuickCheck{2000};

// ---------------------------------------------------------------- child processes

struct ProcessResult {
  std::optional<ExitStatus> status;  // nullopt: killed at the deadline
  std::string out;
  std::string err;

  bool ok() const { return status && status->ok(); }
};

ExitStatus decodeStatus(int status) {
  ExitStatus out;
  if (WIFEXITED(status)) {
    out.exited = true;
    out.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    out.signal = WTERMSIG(status);
  }
  return out;
}

std::optional<ExitStatus> reapBy(pid_t pid, Clock::time_point deadline) {
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return decodeStatus(status);
    }
    if ((r < 0 && errno != EINTR) || Clock::now() >= deadline) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
}

// Reads both pipes until each reaches EOF or the deadline passes. False on the deadline.
bool drain(int out_fd, int err_fd, std::string& out, std::string& err, Clock::time_point deadline) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {&out, &err};
  int open_count = 2;
  char buf[4096];
  while (open_count > 0) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      return false;
    }
    int n = poll(fds, 2, static_cast<int>(left));
    if (n < 0 && errno != EINTR) {
      return false;
    }
    for (int k = 0; k < 2 && n > 0; ++k) {
      if (fds[k].fd < 0 || fds[k].revents == 0) {
        continue;
      }
      ssize_t got = read(fds[k].fd, buf, sizeof(buf));
      if (got > 0) {
        sinks[k]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        fds[k].fd = -1;
        --open_count;
      }
    }
  }
  return true;
}

// Runs argv (argv[0] an absolute path) with `extra_env` added to the environment, capturing
// stdout and stderr. The child leads its own process group so that a deadline kills the
// script together with its subshells (the servers it starts live in sessions of their own).
ProcessResult runProcess(const std::vector<std::string>& args,
                         const std::vector<std::string>& extra_env, milliseconds timeout) {
  std::vector<std::string> owned = args;
  std::vector<char*> argv;
  for (std::string& a : owned) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  std::vector<std::string> env_owned = extra_env;
  std::vector<char*> envp;
  for (std::string& e : env_owned) {
    envp.push_back(e.data());
  }
  for (char** e = environ; *e != nullptr; ++e) {
    envp.push_back(*e);
  }
  envp.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe: ") + strerror(errno));
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    throw std::runtime_error(std::string("pipe: ") + strerror(errno));
  }
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec: the test has other threads.
    setpgid(0, 0);
    dup2(null_fd, STDIN_FILENO);
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) {
      sigaction(sig, &dfl, nullptr);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  ::close(null_fd);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (pid < 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    throw std::runtime_error(std::string("fork: ") + strerror(errno));
  }

  Clock::time_point deadline = Clock::now() + timeout;
  ProcessResult result;
  bool drained = drain(out_pipe[0], err_pipe[0], result.out, result.err, deadline);
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  if (drained) {
    result.status = reapBy(pid, deadline);
  }
  if (!result.status) {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    reapBy(pid, Clock::now() + kIoTimeout);
    result.err += "\n(killed after " + std::to_string(timeout.count()) + " ms)";
  }
  return result;
}

// ---------------------------------------------------------------- locations

std::string findProgram(const std::string& name) {
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/usr/bin:/sbin:/bin";
  std::istringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) {
      continue;
    }
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

// scripts/mariadb-pair.sh of this source tree (TANDEM_MARIADB_PAIR_SCRIPT overrides).
std::string scriptPath() {
  if (const char* env = std::getenv("TANDEM_MARIADB_PAIR_SCRIPT")) {
    return env;
  }
  std::filesystem::path here(__FILE__);
  return (here.parent_path().parent_path().parent_path() / "scripts" / "mariadb-pair.sh").string();
}

// Bootstrapped system tables are kept per user and MariaDB version under $TMPDIR, so that
// every test process after the first skips mariadb-install-db (~4 s of a ~5 s start).
std::string templateCacheEnv() {
  if (std::getenv("MARIADB_PAIR_TEMPLATE_CACHE") != nullptr) {
    return "";  // inherited from the environment as it is
  }
  const char* base = std::getenv("TMPDIR");
  return std::string("MARIADB_PAIR_TEMPLATE_CACHE=") + (base ? base : "/tmp") +
         "/tandem-mariadb-cache-" + std::to_string(getuid());
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

std::vector<std::string> splitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
  }
  return lines;
}

// "1-1-5,2-2-3" -> {"1-1-5", "2-2-3"}: GTID positions list one entry per domain, in an
// order that may differ between servers.
std::set<std::string> gtidSet(const std::string& pos) {
  std::set<std::string> out;
  std::istringstream in(pos);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) {
      out.insert(item);
    }
  }
  return out;
}

SqlResult toSqlResult(const ProcessResult& r) {
  SqlResult out;
  out.ok = r.ok();
  out.rows = splitLines(r.out);
  out.error = trimmed(r.err);
  if (!out.ok && out.error.empty()) {
    out.error = r.status ? r.status->str() : "timed out";
  }
  return out;
}

// The mariadb client as root over a unix socket, in batch mode (tab-separated, escaped).
// Without column names for result rows; with them for vertical (\G) output, where -N would
// print bare values.
ProcessResult runClient(const std::string& socket, const std::string& statements,
                        bool column_names) {
  static const std::string client = findProgram("mariadb");
  std::vector<std::string> argv = {client, "--no-defaults", "--protocol=socket", "-S", socket};
  argv.insert(argv.end(), {"-uroot", "-B", "--connect-timeout=5"});
  if (!column_names) {
    argv.push_back("-N");
  }
  argv.push_back("-e");
  argv.push_back(statements);
  return runProcess(argv, {}, kSqlDeadline);
}

bool pollUntil(const std::function<bool()>& condition, milliseconds timeout) {
  Clock::time_point deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(kPollStep);
  }
  return true;
}

// ---------------------------------------------------------------- registry of live pairs

std::mutex& registryMutex() {
  static auto* mu = new std::mutex;  // never destroyed: used from atexit
  return *mu;
}

std::set<MariaDbPair*>& livePairs() {
  static auto* pairs = new std::set<MariaDbPair*>;
  return *pairs;
}

void stopLivePairs() {
  std::lock_guard<std::mutex> lock(registryMutex());
  for (MariaDbPair* pair : livePairs()) {
    pair->stop();
  }
}

void registerPair(MariaDbPair* pair) {
  static std::once_flag hook;
  std::call_once(hook, [] { std::atexit(stopLivePairs); });
  std::lock_guard<std::mutex> lock(registryMutex());
  livePairs().insert(pair);
}

void unregisterPair(MariaDbPair* pair) {
  std::lock_guard<std::mutex> lock(registryMutex());
  livePairs().erase(pair);
}

}  // namespace

struct MariaDbPair::ScriptResult : ProcessResult {};

bool MariaDbPair::available(std::string* why) {
  for (const char* program : {"mariadbd", "mariadb-install-db", "mariadb"}) {
    if (findProgram(program).empty()) {
      *why = std::string(program) + " not found: install mariadb-server and mariadb-client " +
             "(scripts/install-deps.sh)";
      return false;
    }
  }
  if (access(scriptPath().c_str(), R_OK) != 0) {
    *why = "cannot read " + scriptPath();
    return false;
  }
  return true;
}

MariaDbPair::MariaDbPair() {
  registerPair(this);
  std::string failures;
  for (int attempt = 1; attempt <= kStartAttempts; ++attempt) {
    ports_[0] = freePort();
    do {
      ports_[1] = freePort();
    } while (ports_[1] == ports_[0]);
    ScriptResult r =
        runScript({"start", dir().string(), std::to_string(ports_[0]), std::to_string(ports_[1])},
                  kStartDeadline);
    if (r.ok()) {
      return;
    }
    failures += "attempt " + std::to_string(attempt) + ":\n" + r.out + r.err + "\n";
    // Only a port taken between freePort() and the server's bind is worth another try.
    if ((r.out + r.err).find("Address already in use") == std::string::npos) {
      break;
    }
    runScript({"stop", dir().string()}, kControlDeadline);
    for (const auto& entry : std::filesystem::directory_iterator(dir())) {
      std::filesystem::remove_all(entry.path());
    }
  }
  stopped_ = true;
  unregisterPair(this);
  throw std::runtime_error("mariadb-pair.sh start failed\n" + failures);
}

MariaDbPair::~MariaDbPair() {
  stop();
  unregisterPair(this);
}

MariaDbPair::ScriptResult MariaDbPair::runScript(const std::vector<std::string>& args,
                                                 milliseconds timeout) const {
  std::vector<std::string> argv = {"/bin/bash", scriptPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> env = {"MARIADB_PAIR_OWNER_PID=" + std::to_string(getpid()),
                                  "MARIADB_PAIR_OWNER_CLEANUP=1"};
  std::string cache = templateCacheEnv();
  if (!cache.empty()) {
    env.push_back(cache);
  }
  return ScriptResult{runProcess(argv, env, timeout)};
}

void MariaDbPair::runScriptOrThrow(const std::vector<std::string>& args,
                                   milliseconds timeout) const {
  ScriptResult r = runScript(args, timeout);
  if (!r.ok()) {
    std::string cmd;
    for (const std::string& a : args) {
      cmd += " " + a;
    }
    throw std::runtime_error("mariadb-pair.sh" + cmd + " failed: " + r.out + r.err);
  }
}

void MariaDbPair::checkIndex(int i) const {
  if (i != 1 && i != 2) {
    throw std::invalid_argument("MariaDbPair: server index must be 1 or 2, got " +
                                std::to_string(i));
  }
}

uint16_t MariaDbPair::port(int i) const {
  checkIndex(i);
  return ports_[i - 1];
}

std::string MariaDbPair::socket(int i) const {
  checkIndex(i);
  return (dir() / ("db" + std::to_string(i)) / "sock").string();
}

std::filesystem::path MariaDbPair::dataDir(int i) const {
  checkIndex(i);
  return dir() / ("db" + std::to_string(i)) / "data";
}

std::string MariaDbPair::errorLog(int i) const {
  checkIndex(i);
  return readFile((dir() / ("db" + std::to_string(i)) / "error.log").string());
}

pid_t MariaDbPair::pid(int i) const {
  checkIndex(i);
  std::string dbdir = (dir() / ("db" + std::to_string(i))).string();
  std::string text = trimmed(readFile(dbdir + "/mariadbd.pid"));
  pid_t pid = static_cast<pid_t>(std::atoi(text.c_str()));
  if (pid <= 0) {
    return -1;
  }
  // The pid file outlives a kill -9: trust it only while that pid runs our server.
  std::string cmdline = readFile("/proc/" + std::to_string(pid) + "/cmdline");
  std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
  bool ours = cmdline.find("--defaults-file=" + dbdir + "/my.cnf ") != std::string::npos;
  return ours ? pid : -1;
}

SqlResult MariaDbPair::trySql(int i, const std::string& statements) const {
  checkIndex(i);
  return toSqlResult(runClient(socket(i), statements, /*column_names=*/false));
}

SqlResult MariaDbPair::tcpSql(uint16_t port, const std::string& user, const std::string& password,
                              const std::string& statements, const std::string& database) {
  std::vector<std::string> argv = {findProgram("mariadb"),
                                   "--no-defaults",
                                   "--protocol=tcp",
                                   "-h127.0.0.1",
                                   "-P" + std::to_string(port),
                                   "-u" + user,
                                   "--password=" + password,
                                   "-N",
                                   "-B",
                                   "--connect-timeout=5"};
  if (!database.empty()) {
    argv.push_back("-D" + database);
  }
  argv.push_back("-e");
  argv.push_back(statements);
  return toSqlResult(runProcess(argv, {}, kSqlDeadline));
}

std::vector<std::string> MariaDbPair::sql(int i, const std::string& statements) const {
  SqlResult r = trySql(i, statements);
  if (!r.ok) {
    throw std::runtime_error("db" + std::to_string(i) + ": " + r.error + "\n  in: " + statements);
  }
  return r.rows;
}

std::string MariaDbPair::value(int i, const std::string& query) const {
  std::vector<std::string> rows = sql(i, query);
  if (rows.empty()) {
    return "";
  }
  return rows[0].substr(0, rows[0].find('\t'));
}

std::map<std::string, std::string> MariaDbPair::slaveStatus(int i) const {
  checkIndex(i);
  std::map<std::string, std::string> fields;
  ProcessResult r = runClient(socket(i), "SHOW SLAVE STATUS\\G", /*column_names=*/true);
  if (!r.ok()) {
    return fields;
  }
  // "          Slave_IO_Running: Yes"; the row header line has no ": ".
  for (const std::string& line : splitLines(r.out)) {
    size_t colon = line.find(": ");
    size_t start = line.find_first_not_of(' ');
    if (colon == std::string::npos || start == std::string::npos || start >= colon) {
      continue;
    }
    fields[line.substr(start, colon - start)] = line.substr(colon + 2);
  }
  return fields;
}

std::string MariaDbPair::globalStatus(int i, const std::string& name) const {
  SqlResult r = trySql(i, "SHOW GLOBAL STATUS LIKE '" + name + "'");
  if (!r.ok || r.rows.empty()) {
    return "";
  }
  size_t tab = r.rows[0].find('\t');
  return tab == std::string::npos ? "" : r.rows[0].substr(tab + 1);
}

// Signals the pid the server wrote itself (checked against its command line), so that the
// kill does not depend on scanning /proc while the test spawns clients by the hundred.
void MariaDbPair::kill9(int i) {
  checkIndex(i);
  pid_t target = pid(i);
  if (target <= 0) {
    throw std::runtime_error("db" + std::to_string(i) + " is not running before kill -9:\n" +
                             describe() + "\n" + errorLog(i));
  }
  ::kill(target, SIGKILL);
  auto deadline = std::chrono::steady_clock::now() + kControlDeadline;
  while (::kill(target, 0) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  if (::kill(target, 0) == 0) {
    throw std::runtime_error("db" + std::to_string(i) + " survived SIGKILL");
  }
}

void MariaDbPair::restart(int i) {
  checkIndex(i);
  runScriptOrThrow({"restart", dir().string(), std::to_string(i)}, kStartDeadline);
}

void MariaDbPair::stopSqlThread(int i) {
  sql(i, "STOP SLAVE SQL_THREAD");
}

void MariaDbPair::startSqlThread(int i) {
  sql(i, "START SLAVE SQL_THREAD");
}

void MariaDbPair::heal() {
  for (int i : {1, 2}) {
    if (!running(i)) {
      restart(i);
    }
  }
  for (int i : {1, 2}) {
    trySql(i, "START SLAVE");  // a warning, not an error, when it already runs
  }
}

void MariaDbPair::stop() {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  ScriptResult r = runScript({"stop", dir().string()}, kControlDeadline);
  if (!r.ok()) {
    std::cerr << "MariaDbPair: stop failed: " << r.out << r.err << "\n";
  }
}

bool MariaDbPair::waitReplicationHealthy(milliseconds timeout) const {
  return pollUntil(
      [this] {
        for (int i : {1, 2}) {
          std::map<std::string, std::string> s = slaveStatus(i);
          if (s["Slave_IO_Running"] != "Yes" || s["Slave_SQL_Running"] != "Yes") {
            return false;
          }
        }
        return true;
      },
      timeout);
}

bool MariaDbPair::waitCaughtUp(milliseconds timeout) const {
  Clock::time_point deadline = Clock::now() + timeout;
  if (!waitReplicationHealthy(timeout)) {
    return false;
  }
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return pollUntil(
      [this] {
        SqlResult a = trySql(1, "SELECT @@gtid_binlog_pos");
        SqlResult b = trySql(2, "SELECT @@gtid_binlog_pos");
        return a.ok && b.ok && !a.rows.empty() && !b.rows.empty() &&
               gtidSet(a.rows[0]) == gtidSet(b.rows[0]);
      },
      std::max(left, milliseconds(0)));
}

std::string MariaDbPair::describe() const {
  ScriptResult r = runScript({"status", dir().string()}, kControlDeadline);
  return r.out + r.err;
}

// ---------------------------------------------------------------- SharedMariaDbPair

void SharedMariaDbPair::start() {
  skip_reason_.clear();
  start_error_.clear();
  if (!MariaDbPair::available(&skip_reason_)) {
    return;
  }
  try {
    pair_ = std::make_unique<MariaDbPair>();
  } catch (const std::exception& e) {
    start_error_ = e.what();
  }
}

void SharedMariaDbPair::require() {
  // scripts/install-deps.sh installs MariaDB: without it the suite fails, never skips.
  ASSERT_TRUE(skip_reason_.empty()) << "MariaDB is not installed: " << skip_reason_;
  ASSERT_TRUE(pair_ != nullptr) << "the MariaDB pair did not start: " << start_error_;
  if (pair_->waitCaughtUp(kQuickCheck)) {
    return;
  }
  pair_->heal();
  if (!pair_->waitCaughtUp(kReplicationTimeout)) {
    std::cerr << "SharedMariaDbPair: replication did not recover, starting a new pair:\n"
              << pair_->describe();
    pair_.reset();
    start();
    ASSERT_TRUE(pair_ != nullptr) << "the MariaDB pair did not start: " << start_error_;
  }
  ASSERT_TRUE(pair_->waitCaughtUp(kReplicationTimeout))
      << "replication is not healthy and caught up:\n"
      << pair_->describe();
}

void SharedMariaDbPair::stop() {
  pair_.reset();
}

}  // namespace tandem::it
