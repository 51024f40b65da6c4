// The HTTP peers that are processes or threads: php -S web servers running tests/app, the
// bounded GET load generator, and the small JSON reader for /headers and JSON access logs.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "tests/integration/http_harness.h"

extern char** environ;

namespace tandem::it {

namespace {

constexpr size_t kKeptFailures = 10;
constexpr int kPhpWorkers = 4;

// The first executable `name` on PATH, resolved before fork (execvp may allocate).
std::string findOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return name;
}

// Runs in the child between fork and exec: async-signal-safe calls only (see harness.cpp).
[[noreturn]] void execPhp(char* const argv[], char* const envp[], int log_fd, pid_t parent) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) {
    _exit(127);
  }
  int null_fd = ::open("/dev/null", O_RDONLY);
  dup2(null_fd, STDIN_FILENO);
  dup2(log_fd, STDOUT_FILENO);
  dup2(log_fd, STDERR_FILENO);
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) {
    sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execve(argv[0], argv, envp);
  _exit(127);
}

std::vector<char*> pointersTo(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) {
    out.push_back(s.data());
  }
  out.push_back(nullptr);
  return out;
}

// Our own environment plus `extra`, which wins over inherited names.
std::vector<std::string> childEnvironment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    if (extra.count(entry.substr(0, entry.find('='))) == 0) {
      out.push_back(entry);
    }
  }
  for (const auto& [name, value] : extra) {
    out.push_back(name + "=" + value);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// JSON: just enough for flat log lines and the app's /headers.

class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : text_(text) {}

  bool readDocument(std::map<std::string, std::string>* out) {
    skipSpace();
    if (peek() != '{' || !readValue("", out)) {
      return false;
    }
    skipSpace();
    return pos_ == text_.size();
  }

 private:
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void skipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) {
      ++pos_;
    }
  }
  bool consume(char c) {
    skipSpace();
    if (peek() != c) {
      return false;
    }
    ++pos_;
    return true;
  }

  bool readValue(const std::string& key, std::map<std::string, std::string>* out) {
    skipSpace();
    if (peek() == '{') {
      return readObject(key, out);
    }
    if (peek() == '[') {
      return readArray(key, out);
    }
    std::string value;
    if (!(peek() == '"' ? readString(&value) : readScalar(&value))) {
      return false;
    }
    (*out)[key] = value;
    return true;
  }

  bool readObject(const std::string& prefix, std::map<std::string, std::string>* out) {
    ++pos_;
    if (consume('}')) {
      return true;
    }
    do {
      std::string name;
      skipSpace();
      if (!readString(&name) || !consume(':') ||
          !readValue(prefix.empty() ? name : prefix + "." + name, out)) {
        return false;
      }
    } while (consume(','));
    return consume('}');
  }

  bool readArray(const std::string& prefix, std::map<std::string, std::string>* out) {
    ++pos_;
    if (consume(']')) {
      return true;
    }
    int index = 0;
    do {
      if (!readValue(prefix + "." + std::to_string(index++), out)) {
        return false;
      }
    } while (consume(','));
    return consume(']');
  }

  bool readString(std::string* out) {
    if (peek() != '"') {
      return false;
    }
    for (++pos_; pos_ < text_.size(); ++pos_) {
      char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c == '\\') {
        if (!readEscape(out)) {
          return false;
        }
      } else {
        out->push_back(c);
      }
    }
    return false;
  }

  // At a backslash; non-ASCII \u escapes become '?' (the tests compare ASCII only).
  bool readEscape(std::string* out) {
    if (++pos_ >= text_.size()) {
      return false;
    }
    char c = text_[pos_];
    static const std::string kFrom = "\"\\/bfnrt", kTo = "\"\\/\b\f\n\r\t";
    size_t simple = kFrom.find(c);
    if (simple != std::string::npos) {
      out->push_back(kTo[simple]);
      return true;
    }
    if (c != 'u' || pos_ + 4 >= text_.size()) {
      return false;
    }
    unsigned long code = std::strtoul(std::string(text_.substr(pos_ + 1, 4)).c_str(), nullptr, 16);
    out->push_back(code < 0x80 ? static_cast<char>(code) : '?');
    pos_ += 4;
    return true;
  }

  bool readScalar(std::string* out) {
    size_t begin = pos_;
    while (pos_ < text_.size() &&
           std::string_view(",}] \t\r\n").find(text_[pos_]) == std::string_view::npos) {
      ++pos_;
    }
    *out = std::string(text_.substr(begin, pos_ - begin));
    return !out->empty();
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// PhpServer

std::string phpRouterPath() {
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "app" / "router.php")
      .string();
}

PhpServer::PhpServer(std::string name, std::map<std::string, std::string> env)
    : name_(std::move(name)), env_(std::move(env)), port_(freePort()) {}

PhpServer::~PhpServer() {
  kill();
  if (::testing::Test::HasFailure()) {
    std::cerr << "---- php " << name_ << " log ----\n" << log() << "---- end of php log ----\n";
  }
}

bool PhpServer::start() {
  if (pid_ > 0) {
    return true;
  }
  std::vector<std::string> args = {findOnPath("php"),
                                   "-d",
                                   "session.save_path=" + dir_.path().string(),
                                   "-S",
                                   "127.0.0.1:" + std::to_string(port_),
                                   phpRouterPath()};
  std::map<std::string, std::string> env = env_;
  env["WEB_NAME"] = name_;
  env["PHP_CLI_SERVER_WORKERS"] = std::to_string(kPhpWorkers);
  env["WEB_HEALTH_FILE"] = (dir_.path() / "health").string();
  std::vector<std::string> envs = childEnvironment(env);
  std::vector<char*> argv = pointersTo(args), envp = pointersTo(envs);
  std::string log_path = (dir_.path() / "php.log").string();
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    throw std::runtime_error("cannot open " + log_path);
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    execPhp(argv.data(), envp.data(), log_fd, parent);
  }
  ::close(log_fd);
  if (pid < 0) {
    throw std::runtime_error(std::string("fork: ") + strerror(errno));
  }
  setpgid(pid, pid);  // also done by the child: whichever runs first wins the race
  pid_ = pid;
  return waitReady(Clock::now() + kStartTimeout);
}

bool PhpServer::exited() {
  int status = 0;
  if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
  }
  return pid_ <= 0;
}

bool PhpServer::waitReady(Clock::time_point deadline) {
  // /health answers whatever WEB_STATUS and the health file say about the server.
  std::string probe = "GET /health HTTP/1.1\r\nHost: ready\r\nConnection: close\r\n\r\n";
  while (Clock::now() < deadline) {
    if (exited()) {
      return false;
    }
    std::optional<HttpResponse> r = fetch(port_, probe, milliseconds(1000));
    if (r && r->body.rfind(name_ + " health ", 0) == 0) {
      return true;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return false;
}

void PhpServer::kill() {
  if (pid_ <= 0) {
    return;
  }
  ::kill(-pid_, SIGKILL);  // the process group: the master and its workers
  Clock::time_point deadline = Clock::now() + kStateTimeout;
  while (!exited() && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  // Orphaned workers die a moment later; until then they would keep the port accepting.
  eventually([this] { return listeningSockets(port_) == 0; }, kStateTimeout);
  pid_ = -1;
}

void PhpServer::setHealth(int status) {
  // Written aside and renamed, so that php never reads a half-written file.
  std::string tmp = dir_.write("health.tmp", std::to_string(status));
  std::filesystem::rename(tmp, dir_.path() / "health");
}

std::string PhpServer::log() const {
  return readFile((dir_.path() / "php.log").string());
}

// ---------------------------------------------------------------------------------------
// GetLoad

GetLoad::GetLoad(uint16_t port, std::string path, int threads, milliseconds duration,
                 int max_per_thread)
    : port_(port),
      path_(std::move(path)),
      max_per_thread_(max_per_thread),
      deadline_(Clock::now() + duration),
      results_(static_cast<size_t>(threads)) {
  for (LoadResult& r : results_) {
    threads_.emplace_back(&GetLoad::client, this, &r);
  }
}

GetLoad::~GetLoad() {
  for (std::thread& t : threads_) {
    if (t.joinable()) {
      t.join();
    }
  }
}

LoadResult GetLoad::wait() {
  LoadResult total;
  for (size_t i = 0; i < threads_.size(); ++i) {
    threads_[i].join();
    const LoadResult& r = results_[i];
    total.ok += r.ok;
    total.failed += r.failed;
    for (const std::string& f : r.failures) {
      if (total.failures.size() < kKeptFailures) {
        total.failures.push_back(f);
      }
    }
    for (const auto& [body, n] : r.bodies) {
      total.bodies[body] += n;
    }
  }
  return total;
}

void GetLoad::client(LoadResult* out) {
  auto fail = [out](const std::string& why) {
    ++out->failed;
    if (out->failures.size() < kKeptFailures) {
      out->failures.push_back(why);
    }
  };
  Socket sock;
  int on_this_connection = 0;
  for (int i = 0; i < max_per_thread_ && Clock::now() < deadline_; ++i) {
    if (!sock.valid()) {
      sock = connectTo(port_);
      on_this_connection = 0;
    }
    if (!sock.valid()) {
      fail("request " + std::to_string(i) + ": connect failed");
      continue;
    }
    std::optional<HttpResponse> r = roundTrip(sock, getRequest(path_));
    ++on_this_connection;
    if (!r) {
      fail("request " + std::to_string(i) + ": no response (request " +
           std::to_string(on_this_connection) + " on its connection)");
      sock.close();
    } else if (r->status != 200) {
      fail("request " + std::to_string(i) + ": status " + std::to_string(r->status));
    } else {
      ++out->ok;
      ++out->bodies[r->body];
    }
    if (r && r->closes()) {
      sock.close();
    }
  }
}

// ---------------------------------------------------------------------------------------
// Helpers

std::optional<std::map<std::string, std::string>> parseJsonObject(std::string_view text) {
  std::map<std::string, std::string> out;
  JsonReader reader(text);
  if (!reader.readDocument(&out)) {
    return std::nullopt;
  }
  return out;
}

std::vector<std::string> linesWith(const std::string& text, const std::string& needle) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(needle) != std::string::npos) {
      out.push_back(line);
    }
  }
  return out;
}

ConfigSpec HttpTest::httpSpec(std::vector<ServerSpec> servers) {
  ConfigSpec spec = ConfigSpec::simpleTcp(std::move(servers));
  spec.frontends.at(0).mode = "http";
  spec.backend().mode = "http";
  return spec;
}

}  // namespace tandem::it
