// What ships under deploy/ and scripts/demo.sh: every configuration passes `tandem --check`,
// the compose file is valid for Debian's docker-compose and describes the stack the README
// promises, the Dockerfile has its stages and container settings, and the local demo runs
// the whole stack (two PHP servers, a MariaDB pair, Tandem) and leaves nothing behind.
//
// No Docker engine runs here, so the image and the compose stack are checked as files
// (`docker-compose config` needs no engine); the demo runs the same app and an equivalent
// Tandem configuration as real processes.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/http_harness.h"
#include "tests/integration/mariadb_pair.h"

extern char** environ;

namespace tandem::it {
namespace {

namespace fs = std::filesystem;

// The demo's bounds: MariaDB's first start on a loaded 2-core machine dominates.
constexpr milliseconds kDemoStartTimeout{150000};
constexpr milliseconds kDemoStopTimeout{60000};
constexpr milliseconds kCommandTimeout{60000};

fs::path repoRoot() {
  return fs::path(__FILE__).parent_path().parent_path().parent_path();
}

std::string readText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---------------------------------------------------------------- child processes

// A child process with its own process group, stdout and stderr in one file, and the
// test's environment plus `env`. Killed (with its group) if still running at destruction.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
        const std::string& log_path)
      : log_path_(log_path) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string entry(*e);
      if (env.count(entry.substr(0, entry.find('='))) == 0) {
        env_strings.push_back(entry);
      }
    }
    for (const auto& [key, value] : env) {
      env_strings.push_back(key + "=" + value);
    }
    std::vector<std::string> args = argv;
    std::vector<char*> cargv;
    std::vector<char*> cenv;
    for (std::string& a : args) {
      cargv.push_back(a.data());
    }
    cargv.push_back(nullptr);
    for (std::string& e : env_strings) {
      cenv.push_back(e.data());
    }
    cenv.push_back(nullptr);
    int out = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (out < 0 || in < 0) {
      throw std::runtime_error("cannot open " + log_path + ": " + strerror(errno));
    }
    pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls until exec: the test process has other threads.
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // a dying test takes the demo (its watchdogs clean)
      if (getppid() != parent) {
        _exit(127);
      }
      dup2(in, STDIN_FILENO);
      dup2(out, STDOUT_FILENO);
      dup2(out, STDERR_FILENO);
      struct sigaction dfl;
      memset(&dfl, 0, sizeof(dfl));
      dfl.sa_handler = SIG_DFL;
      for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) {
        sigaction(sig, &dfl, nullptr);
      }
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      execve(cargv[0], cargv.data(), cenv.data());
      _exit(127);
    }
    ::close(out);
    ::close(in);
    if (pid_ < 0) {
      throw std::runtime_error(std::string("fork: ") + strerror(errno));
    }
    setpgid(pid_, pid_);  // also from here, so that it holds before the child runs
  }

  ~Child() {
    if (!exit_) {
      ::kill(-pid_, SIGKILL);
      waitExit(kIoTimeout);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  std::string log() const { return readText(log_path_); }

  // The exit status, or nullopt while it still runs after `timeout`.
  std::optional<ExitStatus> waitExit(milliseconds timeout) {
    Clock::time_point deadline = Clock::now() + timeout;
    while (!exit_) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        ExitStatus s;
        s.exited = WIFEXITED(status);
        s.code = s.exited ? WEXITSTATUS(status) : -1;
        s.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        exit_ = s;
        break;
      }
      if (Clock::now() >= deadline) {
        return std::nullopt;
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
    return exit_;
  }

  // True once `needle` is in the log; false on timeout or when the child exited first.
  bool waitForLog(const std::string& needle, milliseconds timeout) {
    return eventually(
               [&] { return contains(log(), needle) || waitExit(milliseconds(0)).has_value(); },
               timeout) &&
           contains(log(), needle);
  }

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  std::optional<ExitStatus> exit_;
};

// Runs argv to completion with output captured; nullopt status when it did not finish.
struct CommandResult {
  std::optional<ExitStatus> status;
  std::string output;
};

CommandResult runCommand(const std::vector<std::string>& argv, const TempDir& dir,
                         const std::map<std::string, std::string>& env = {},
                         milliseconds timeout = kCommandTimeout) {
  static int counter = 0;
  std::string log = (dir.path() / ("command-" + std::to_string(++counter) + ".log")).string();
  Child child(argv, env, log);
  CommandResult r;
  r.status = child.waitExit(timeout);
  r.output = child.log();
  return r;
}

// The full path of `program` in PATH, or "".
std::string findInPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    fs::path candidate = fs::path(dir) / program;
    if (access(candidate.c_str(), X_OK) == 0) {
      return candidate.string();
    }
  }
  return "";
}

// ---------------------------------------------------------------- configurations

// Every TOML file directly under deploy/, as shipped. The compose configuration names its
// token relative to itself (secrets/tandem-admin), which is deploy/secrets/ here and
// /etc/tandem/secrets/ in the container.
TEST(DeployConfigs, EveryShippedConfigPassesCheck) {
  fs::path deploy = repoRoot() / "deploy";
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(deploy)) {
    if (entry.path().extension() != ".toml") {
      continue;
    }
    std::string path = entry.path().string();
    RunResult r = runTandem({"--check", "-c", path});
    ASSERT_TRUE(r.status.has_value()) << entry.path();
    EXPECT_TRUE(r.status->ok()) << entry.path() << ": " << r.err;
    ++checked;
  }
  EXPECT_GE(checked, 3) << "deploy/ should hold the example, the demo and the compose config";
}

// The compose config names its servers by compose service name; a name that does not
// resolve (here, outside compose) must not make the configuration invalid.
TEST(DeployConfigs, ComposeConfigUsesServiceNames) {
  std::string text = readText(repoRoot() / "deploy" / "tandem.toml");
  for (const char* address : {"\"web1:80\"", "\"web2:80\"", "\"db1:3306\"", "\"db2:3306\""}) {
    EXPECT_TRUE(contains(text, address)) << address;
  }
  for (const char* listen :
       {"\"0.0.0.0:8090\"", "\"0.0.0.0:3306\"", "\"0.0.0.0:3307\"", "\"0.0.0.0:8081\""}) {
    EXPECT_TRUE(contains(text, listen)) << listen;
  }
  EXPECT_TRUE(contains(text, "token_file = \"secrets/tandem-admin\""));
  EXPECT_TRUE(fs::is_regular_file(repoRoot() / "deploy" / "secrets" / "tandem-admin"));
}

// ---------------------------------------------------------------- docker-compose.yml

// The lines of one service in `docker-compose config` output (services at two spaces).
std::string serviceBlock(const std::string& yaml, const std::string& service) {
  std::istringstream in(yaml);
  std::string line;
  std::string out;
  bool in_services = false;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] != ' ') {
      in_services = line == "services:";
      inside = false;
      continue;
    }
    if (!in_services) {
      continue;
    }
    if (line.size() > 2 && line[2] != ' ') {
      inside = line == "  " + service + ":";
      continue;
    }
    if (inside) {
      out += line + "\n";
    }
  }
  return out;
}

// Published `port` on the host, in either form docker-compose prints.
bool publishes(const std::string& block, int port) {
  std::string p = std::to_string(port);
  std::regex long_form("published: [\"']?" + p + "[\"']?\\s*\\n\\s*target: [\"']?" + p);
  std::regex short_form("- ([0-9.]+:)?" + p + ":" + p + "(/tcp)?\\n");
  return std::regex_search(block, long_form) || std::regex_search(block, short_form);
}

bool dependsHealthy(const std::string& block, const std::string& service) {
  std::regex re("\\n\\s+" + service + ":\\n\\s+condition: service_healthy\\n");
  return std::regex_search("\n" + block, re);
}

class DeployComposeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    compose_ = findInPath("docker-compose");
    ASSERT_FALSE(compose_.empty())
        << "docker-compose not found: scripts/install-deps.sh installs Debian's package";
  }

  CommandResult compose(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {compose_, "-f",
                                     (repoRoot() / "deploy" / "docker-compose.yml").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return runCommand(argv, dir_);
  }

  TempDir dir_;
  std::string compose_;
};

TEST_F(DeployComposeTest, ConfigIsValidAndNamesTheServices) {
  CommandResult r = compose({"config", "--services"});
  ASSERT_TRUE(r.status && r.status->ok()) << r.output;
  std::set<std::string> services;
  std::istringstream in(r.output);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) {
      services.insert(line);
    }
  }
  std::set<std::string> want = {"lb",         "web1",   "web2", "db1", "db2", "replication-setup",
                                "prometheus", "grafana"};
  EXPECT_EQ(services, want) << r.output;

  CommandResult profile = compose({"--profile", "monitoring", "config", "--quiet"});
  EXPECT_TRUE(profile.status && profile.status->ok()) << profile.output;
}

TEST_F(DeployComposeTest, PortsHealthchecksAndStartOrder) {
  CommandResult r = compose({"config"});
  ASSERT_TRUE(r.status && r.status->ok()) << r.output;
  const std::string& yaml = r.output;

  std::string lb = serviceBlock(yaml, "lb");
  for (int port : {8090, 3306, 3307, 8081}) {
    EXPECT_TRUE(publishes(lb, port)) << "lb does not publish " << port << ":\n" << lb;
  }
  EXPECT_TRUE(contains(lb, "dockerfile: deploy/Dockerfile")) << lb;
  EXPECT_TRUE(contains(lb, "/deploy/tandem.toml:/etc/tandem/tandem.toml:ro")) << lb;
  EXPECT_TRUE(contains(lb, "/deploy/secrets/tandem-admin:/etc/tandem/secrets/tandem-admin:ro"))
      << lb;
  EXPECT_TRUE(contains(lb, "/healthz")) << lb;
  for (const char* dep : {"web1", "web2", "db1", "db2"}) {
    EXPECT_TRUE(dependsHealthy(lb, dep)) << "lb should wait for " << dep << ":\n" << lb;
  }

  // Every long-running service has a healthcheck; only the one-shot setup has none.
  for (const char* service : {"lb", "web1", "web2", "db1", "db2", "prometheus", "grafana"}) {
    std::string block = serviceBlock(yaml, service);
    ASSERT_FALSE(block.empty()) << service;
    EXPECT_TRUE(contains(block, "healthcheck:\n")) << service << ":\n" << block;
  }
  for (const char* web : {"web1", "web2"}) {
    std::string block = serviceBlock(yaml, web);
    EXPECT_TRUE(contains(block, "/health.php")) << block;
    EXPECT_TRUE(contains(block, "/deploy/app:/var/www/html")) << block;
    EXPECT_TRUE(contains(block, std::string("WEB_NAME: ") + web)) << block;
  }
  for (int n : {1, 2}) {
    std::string id = std::to_string(n);
    std::string block = serviceBlock(yaml, "db" + id);
    EXPECT_TRUE(contains(block, "image: mariadb:10.11")) << block;
    EXPECT_TRUE(contains(block, "--server-id=" + id)) << block;
    EXPECT_TRUE(contains(block, "--gtid-domain-id=" + id)) << block;
    EXPECT_TRUE(contains(block, "--auto-increment-offset=" + id)) << block;
    EXPECT_TRUE(contains(block, "db" + id + "-data:/var/lib/mysql")) << block;
    EXPECT_TRUE(contains(block, "/docker-entrypoint-initdb.d")) << block;
  }
  std::string setup = serviceBlock(yaml, "replication-setup");
  EXPECT_TRUE(dependsHealthy(setup, "db1") && dependsHealthy(setup, "db2")) << setup;
  EXPECT_TRUE(contains(setup, "setup-replication.sh")) << setup;
  for (const char* service : {"prometheus", "grafana"}) {
    EXPECT_TRUE(contains(serviceBlock(yaml, service), "- monitoring")) << service;
  }
  for (const char* volume : {"db1-data:", "db2-data:", "lb-state:"}) {
    EXPECT_TRUE(contains(yaml.substr(yaml.rfind("\nvolumes:")), volume)) << volume;
  }
}

// The files the compose stack mounts, and what they must say.
TEST(DeployFiles, MountedFilesExistAndAgree) {
  fs::path deploy = repoRoot() / "deploy";
  std::string cnf = readText(deploy / "mariadb" / "replication.cnf");
  for (const char* setting : {"log_bin", "log_slave_updates = ON", "auto_increment_increment = 2",
                              "rpl_semi_sync_master_enabled = ON",
                              "rpl_semi_sync_slave_enabled = ON", "read_only = OFF"}) {
    EXPECT_TRUE(contains(cnf, setting)) << setting;
  }
  std::string users = readText(deploy / "mariadb" / "initdb" / "01-users.sql");
  EXPECT_EQ(users.find("SET SESSION sql_log_bin = 0;"), users.find("SET SESSION"))
      << "users must be made outside the binary log, before anything else";
  EXPECT_LT(users.find("sql_log_bin = 0"), users.find("CREATE USER"));
  std::string setup = readText(deploy / "mariadb" / "setup-replication.sh");
  EXPECT_TRUE(contains(setup, "MASTER_USE_GTID = slave_pos"));
  EXPECT_TRUE(contains(setup, "START SLAVE"));
  std::string prometheus = readText(deploy / "monitoring" / "prometheus.yml");
  EXPECT_TRUE(contains(prometheus, "lb:8081"));
  std::string dashboard =
      readText(deploy / "monitoring" / "grafana" / "dashboards" / "tandem.json");
  for (const char* metric :
       {"haproxy_backend_http_responses_total", "haproxy_server_status",
        "haproxy_frontend_current_sessions", "tandem_server_replication_lag_seconds"}) {
    EXPECT_TRUE(contains(dashboard, metric)) << metric;
  }
  EXPECT_TRUE(fs::is_regular_file(deploy / "monitoring" / "grafana" / "provisioning" /
                                  "datasources" / "prometheus.yml"));
  EXPECT_TRUE(fs::is_regular_file(deploy / "monitoring" / "grafana" / "provisioning" /
                                  "dashboards" / "tandem.yml"));
  EXPECT_TRUE(fs::is_regular_file(deploy / "web" / "Dockerfile"));
}

// ---------------------------------------------------------------- Dockerfile

std::vector<std::string> dockerfileInstructions() {
  std::vector<std::string> out;
  std::istringstream in(readText(repoRoot() / "deploy" / "Dockerfile"));
  std::string line;
  std::string current;
  while (std::getline(in, line)) {
    if (current.empty() && (line.empty() || line[0] == '#')) {
      continue;
    }
    bool continued = !line.empty() && line.back() == '\\';
    current += continued ? line.substr(0, line.size() - 1) : line;
    if (!continued) {
      out.push_back(current);
      current.clear();
    }
  }
  return out;
}

TEST(DeployImage, DockerfileStagesAndContainerSettings) {
  std::vector<std::string> lines = dockerfileInstructions();
  std::vector<std::string> from;
  std::map<std::string, std::string> last;  // instruction -> its last occurrence
  std::string runs;
  for (const std::string& line : lines) {
    std::string word = line.substr(0, line.find(' '));
    last[word] = line;
    if (word == "FROM") {
      from.push_back(line);
    }
    if (word == "RUN") {
      runs += line + "\n";
    }
  }
  ASSERT_EQ(from.size(), 2u) << "a build stage and a runtime stage";
  EXPECT_EQ(from[0], "FROM debian:12 AS build");
  EXPECT_EQ(from[1], "FROM debian:12-slim AS runtime");
  EXPECT_TRUE(contains(runs, "scripts/install-deps.sh --build-only"));
  EXPECT_TRUE(contains(runs, "-DTANDEM_TESTS=OFF") && contains(runs, "-DTANDEM_BENCH=OFF"));
  EXPECT_TRUE(contains(last["COPY"], "--from=build"));
  ASSERT_TRUE(last.count("USER"));
  std::string user = last["USER"].substr(5);
  EXPECT_NE(user, "root");
  EXPECT_NE(user, "0");
  std::string expose = last["EXPOSE"] + " ";
  for (const char* port : {" 8090 ", " 3306 ", " 3307 ", " 8081 "}) {
    EXPECT_TRUE(contains(expose, port)) << expose;
  }
  EXPECT_TRUE(contains(last["HEALTHCHECK"], "http://127.0.0.1:8081/healthz"));
  EXPECT_EQ(last["STOPSIGNAL"], "STOPSIGNAL SIGTERM");
  EXPECT_EQ(last["ENTRYPOINT"], "ENTRYPOINT [\"tandem\", \"-c\", \"/etc/tandem/tandem.toml\"]");
}

// The runtime stage installs a Debian package for every shared library the binary links,
// so a new dependency cannot ship an image that fails to start.
TEST(DeployImage, RuntimeStageHasEveryLinkedLibrary) {
  TempDir dir;
  CommandResult ldd = runCommand({"/usr/bin/ldd", TANDEM_BINARY}, dir);
  ASSERT_TRUE(ldd.status && ldd.status->ok()) << ldd.output;
  std::string dockerfile = readText(repoRoot() / "deploy" / "Dockerfile");
  std::string runtime = dockerfile.substr(dockerfile.find("AS runtime"));
  // In debian:12-slim already, or pulled in by libmariadb3; the sanitizer runtimes exist
  // only in the CI's sanitizer build.
  std::set<std::string> provided = {"libc6",   "libstdc++6", "libgcc-s1", "zlib1g",
                                    "libssl3", "libasan8",   "libubsan1"};
  std::regex lib_re("=> (/[^ ]+) \\(");
  int libraries = 0;
  for (std::sregex_iterator it(ldd.output.begin(), ldd.output.end(), lib_re), end; it != end;
       ++it) {
    std::string path = (*it)[1];
    CommandResult owner = runCommand({"/usr/bin/dpkg", "-S", fs::canonical(path).string()}, dir);
    if (!owner.status || !owner.status->ok()) {
      owner = runCommand({"/usr/bin/dpkg", "-S", path}, dir);
    }
    ASSERT_TRUE(owner.status && owner.status->ok()) << path << ": " << owner.output;
    std::string package = owner.output.substr(0, owner.output.find_first_of(":,"));
    ++libraries;
    if (provided.count(package) == 0) {
      EXPECT_TRUE(std::regex_search(runtime, std::regex("\\s" + package + "\\s")))
          << path << " comes from " << package << ", which the runtime stage does not install";
    }
  }
  EXPECT_GE(libraries, 4) << ldd.output;
}

// ---------------------------------------------------------------- the local demo

// Processes whose command line mentions `needle` (the demo's temporary directory: the
// PHP servers, mariadbd, tandem and the watchdogs all name it).
std::vector<pid_t> processesMentioning(const std::string& needle) {
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    pid_t pid = std::stoi(name);
    if (pid == getpid()) {
      continue;
    }
    std::string cmdline = readText(entry.path() / "cmdline");
    std::string stat = readText(entry.path() / "stat");
    bool zombie = contains(stat, ") Z ");
    if (!zombie && contains(cmdline, needle)) {
      out.push_back(pid);
    }
  }
  return out;
}

std::string commOf(pid_t pid) {
  std::string comm = readText("/proc/" + std::to_string(pid) + "/comm");
  while (!comm.empty() && comm.back() == '\n') {
    comm.pop_back();
  }
  return comm;
}

// Names of everything under the folders the demo works from.
std::set<std::string> listing() {
  std::set<std::string> out;
  for (const char* folder : {"deploy", "scripts"}) {
    for (const auto& entry : fs::recursive_directory_iterator(repoRoot() / folder)) {
      out.insert(entry.path().string());
    }
  }
  return out;
}

struct DemoPorts {
  std::map<std::string, uint16_t> ports;

  DemoPorts() {
    std::set<uint16_t> used;
    for (const char* name :
         {"DEMO_HTTP_PORT", "DEMO_MYSQL_WRITE_PORT", "DEMO_MYSQL_READ_PORT", "DEMO_ADMIN_PORT",
          "DEMO_WEB1_PORT", "DEMO_WEB2_PORT", "DEMO_DB1_PORT", "DEMO_DB2_PORT"}) {
      uint16_t port = freePort();
      while (used.count(port) != 0) {
        port = freePort();
      }
      used.insert(port);
      ports[name] = port;
    }
  }
  uint16_t operator[](const std::string& name) const { return ports.at(name); }
};

std::map<std::string, std::string> demoEnv(const DemoPorts& p) {
  std::map<std::string, std::string> env = {{"DEMO_SKIP_BUILD", "1"},
                                            {"TANDEM_BINARY", TANDEM_BINARY}};
  for (const auto& [name, port] : p.ports) {
    env[name] = std::to_string(port);
  }
  // The MariaDB tests' cache of bootstrapped system tables, outside the repo.
  if (std::getenv("MARIADB_PAIR_TEMPLATE_CACHE") == nullptr) {
    const char* tmp = std::getenv("TMPDIR");
    env["MARIADB_PAIR_TEMPLATE_CACHE"] = std::string(tmp != nullptr ? tmp : "/tmp") +
                                         "/tandem-mariadb-cache-" + std::to_string(getuid());
  }
  return env;
}

std::vector<std::string> demoCommand() {
  return {"/bin/bash", (repoRoot() / "scripts" / "demo.sh").string()};
}

// The demo's temporary directory, from the line it prints once ready.
std::string demoStateDir(const std::string& log) {
  std::smatch m;
  std::regex re("state +(/[^ \\n]+)");
  return std::regex_search(log, m, re) ? m[1].str() : "";
}

std::string servedBy(const HttpResponse& r) {
  return r.headers.get("X-Served-By").value_or("");
}

// The value of cookie `name` from the response's Set-Cookie fields, or "".
std::string setCookie(const HttpResponse& r, const std::string& name) {
  for (const auto& [field, value] : r.headers.fields) {
    if (equalsIgnoreCase(field, "Set-Cookie") && value.rfind(name + "=", 0) == 0) {
      return value.substr(0, value.find(';'));
    }
  }
  return "";
}

// Every metric the provisioned Grafana dashboard queries is one Tandem exports.
void expectDashboardMetricsIn(const std::string& metrics) {
  std::string dashboard =
      readText(repoRoot() / "deploy" / "monitoring" / "grafana" / "dashboards" / "tandem.json");
  std::regex name_re("(haproxy|tandem)_[a-z_]+");
  std::set<std::string> names;
  for (std::sregex_iterator it(dashboard.begin(), dashboard.end(), name_re), end; it != end; ++it) {
    names.insert(it->str());
  }
  EXPECT_GE(names.size(), 8u);
  for (const std::string& name : names) {
    EXPECT_TRUE(contains(metrics, "\n" + name + "{") || contains(metrics, "\n" + name + " "))
        << "the dashboard queries " << name << ", which /metrics does not export";
  }
}

class DemoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    ASSERT_TRUE(MariaDbPair::available(&why)) << why;
    for (const char* tool : {"php", "curl", "setsid"}) {
      ASSERT_FALSE(findInPath(tool).empty()) << tool << " is not installed";
    }
  }

  // Everything the demo started is gone, its directory too, and its ports are free.
  void expectNothingLeft(const std::string& state_dir, const DemoPorts& ports,
                         const std::set<std::string>& listing_before) {
    if (!state_dir.empty()) {
      EXPECT_TRUE(eventually([&] { return processesMentioning(state_dir).empty(); }, kIoTimeout));
      for (pid_t pid : processesMentioning(state_dir)) {
        ADD_FAILURE() << "left running: pid " << pid << " (" << commOf(pid) << ")";
      }
      EXPECT_FALSE(fs::exists(state_dir)) << state_dir;
    }
    for (const auto& [name, port] : ports.ports) {
      EXPECT_EQ(listeningSockets(port), 0) << name << " " << port << " still listens";
    }
    std::set<std::string> after = listing();
    for (const std::string& path : after) {
      EXPECT_TRUE(listing_before.count(path)) << "left in the repo: " << path;
    }
  }
};

// The README's main command, on free ports: the app answers through Tandem from both web
// servers, a guestbook entry written through the writer is read back through the readers,
// the admin listener answers, and Ctrl-C (SIGINT to the process group) stops it all.
TEST_F(DemoTest, RunsTheStackAndCtrlCLeavesNothing) {
  DemoPorts ports;
  TempDir dir;
  std::set<std::string> before = listing();
  Child demo(demoCommand(), demoEnv(ports), (dir.path() / "demo.log").string());
  ASSERT_TRUE(demo.waitForLog("demo: ready", kDemoStartTimeout)) << demo.log();
  std::string state_dir = demoStateDir(demo.log());
  ASSERT_FALSE(state_dir.empty()) << demo.log();
  EXPECT_EQ(state_dir.rfind(repoRoot().string(), 0), std::string::npos)
      << "the demo's data must live outside the repo";

  std::set<std::string> started;
  for (pid_t pid : processesMentioning(state_dir)) {
    started.insert(commOf(pid));
  }
  for (const char* program : {"php", "mariadbd", "tandem"}) {
    EXPECT_TRUE(started.count(program)) << program << " not found among the demo's processes";
  }

  uint16_t http = ports["DEMO_HTTP_PORT"];
  // Without a cookie, round robin answers from both web servers.
  std::set<std::string> web;
  for (int i = 0; i < 8; ++i) {
    std::optional<HttpResponse> r = fetch(http, getRequest("/"));
    ASSERT_TRUE(r) << demo.log();
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_TRUE(contains(r->body, "Hello from " + servedBy(*r))) << r->body;
    web.insert(servedBy(*r));
  }
  EXPECT_EQ(web, (std::set<std::string>{"web1", "web2"}));

  // With the cookies of the first answer, the session stays on one server and counts.
  std::optional<HttpResponse> first = fetch(http, getRequest("/api.php?action=whoami"));
  ASSERT_TRUE(first);
  std::string cookies = setCookie(*first, "SERVERID") + "; " + setCookie(*first, "PHPSESSID");
  for (int i = 2; i <= 4; ++i) {
    std::optional<HttpResponse> r =
        fetch(http, getRequest("/api.php?action=whoami", "Cookie: " + cookies + "\r\n"));
    ASSERT_TRUE(r);
    EXPECT_EQ(servedBy(*r), servedBy(*first)) << cookies;
    EXPECT_TRUE(contains(r->body, "\"session_count\":" + std::to_string(i))) << r->body;
  }

  // A guestbook entry through the writer frontend, read back through the readers.
  std::string text = "deploy-test-" + std::to_string(getpid()) + "-" +
                     std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  std::optional<HttpResponse> written =
      fetch(http, getRequest("/api.php?action=write&text=" + text));
  ASSERT_TRUE(written);
  ASSERT_EQ(written->status, 200) << written->body << demo.log();
  EXPECT_TRUE(contains(written->body,
                       "\"via\":\"127.0.0.1:" + std::to_string(ports["DEMO_MYSQL_WRITE_PORT"])))
      << written->body;
  std::set<std::string> read_from;
  std::string read_port = std::to_string(ports["DEMO_MYSQL_READ_PORT"]);
  std::regex db_port_re("\"db\":\\{[^}]*\"port\":([0-9]+)");
  bool found = eventually(
      [&] {
        std::optional<HttpResponse> r = fetch(http, getRequest("/api.php?action=read&limit=100"));
        std::smatch m;
        if (!r || r->status != 200 || !contains(r->body, "\"via\":\"127.0.0.1:" + read_port) ||
            !std::regex_search(r->body, m, db_port_re)) {
          return false;
        }
        if (contains(r->body, text)) {
          read_from.insert(m[1].str());
        }
        return read_from.size() == 2;
      },
      kStateTimeout);
  EXPECT_TRUE(found) << "the entry should be read back from both database servers, got "
                     << read_from.size();
  for (const std::string& port : read_from) {
    EXPECT_TRUE(port == std::to_string(ports["DEMO_DB1_PORT"]) ||
                port == std::to_string(ports["DEMO_DB2_PORT"]))
        << port;
  }

  // The admin listener. Failures here are not fatal, so that the stop below still runs.
  uint16_t admin = ports["DEMO_ADMIN_PORT"];
  for (const char* path : {"/healthz", "/", "/metrics"}) {
    std::optional<HttpResponse> r = fetch(admin, getRequest(path));
    if (!r) {
      ADD_FAILURE() << "admin listener on " << admin << " does not answer " << path;
      continue;
    }
    EXPECT_EQ(r->status, 200) << path;
    if (std::string(path) == "/metrics") {
      expectDashboardMetricsIn(r->body);
    }
  }

  // Ctrl-C: the terminal sends SIGINT to the whole foreground process group.
  ASSERT_EQ(::kill(-demo.pid(), SIGINT), 0);
  std::optional<ExitStatus> status = demo.waitExit(kDemoStopTimeout);
  ASSERT_TRUE(status) << demo.log();
  EXPECT_TRUE(status->ok()) << status->str() << "\n" << demo.log();
  EXPECT_TRUE(contains(demo.log(), "demo: stopped")) << demo.log();
  expectNothingLeft(state_dir, ports, before);
}

// SIGTERM to the script alone (as a service manager sends it) while MariaDB is still
// starting: it finishes the step it is in, then stops what it started.
TEST_F(DemoTest, SigtermDuringStartupLeavesNothing) {
  DemoPorts ports;
  TempDir dir;
  std::set<std::string> before = listing();
  Child demo(demoCommand(), demoEnv(ports), (dir.path() / "demo.log").string());
  ASSERT_TRUE(demo.waitForLog("demo: starting the MariaDB pair", kDemoStartTimeout)) << demo.log();
  std::smatch m;
  std::string log = demo.log();
  // The state directory is not printed yet: find it from a web server's command line.
  std::string state_dir;
  std::regex re("session\\.save_path=(/[^ ]+)/sessions");
  for (pid_t pid : processesMentioning("session.save_path=")) {
    std::string cmdline = readText("/proc/" + std::to_string(pid) + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (contains(cmdline, std::to_string(ports["DEMO_WEB1_PORT"])) &&
        std::regex_search(cmdline, m, re)) {
      state_dir = m[1].str();
    }
  }
  ASSERT_FALSE(state_dir.empty()) << "web1 not found running";
  ASSERT_EQ(::kill(demo.pid(), SIGTERM), 0);
  std::optional<ExitStatus> status = demo.waitExit(kDemoStopTimeout);
  ASSERT_TRUE(status) << demo.log();
  EXPECT_TRUE(status->ok()) << status->str() << "\n" << demo.log();
  EXPECT_TRUE(contains(demo.log(), "demo: SIGTERM received")) << demo.log();
  expectNothingLeft(state_dir, ports, before);
}

// The demo killed outright (SIGKILL: no trap runs): its watchdogs stop what it started and
// remove its directory.
TEST_F(DemoTest, SigkillLeavesNothingOnceWatchdogsRan) {
  DemoPorts ports;
  TempDir dir;
  std::set<std::string> before = listing();
  Child demo(demoCommand(), demoEnv(ports), (dir.path() / "demo.log").string());
  ASSERT_TRUE(demo.waitForLog("demo: ready", kDemoStartTimeout)) << demo.log();
  std::string state_dir = demoStateDir(demo.log());
  ASSERT_FALSE(state_dir.empty()) << demo.log();
  ASSERT_EQ(::kill(demo.pid(), SIGKILL), 0);
  ASSERT_TRUE(demo.waitExit(kIoTimeout));
  EXPECT_TRUE(eventually([&] { return !fs::exists(state_dir); }, kDemoStopTimeout)) << state_dir;
  expectNothingLeft(state_dir, ports, before);
}

// A port in use is refused before anything starts, with the port and the variable named.
TEST_F(DemoTest, TakenPortIsRefusedClearly) {
  DemoPorts ports;
  TempDir dir;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(ports["DEMO_MYSQL_READ_PORT"]);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << strerror(errno);
  ASSERT_EQ(::listen(fd, 8), 0);
  CommandResult r = runCommand(demoCommand(), dir, demoEnv(ports));
  ::close(fd);
  ASSERT_TRUE(r.status) << r.output;
  EXPECT_TRUE(r.status->exited && r.status->code == 1) << r.status->str() << "\n" << r.output;
  EXPECT_TRUE(contains(
      r.output, "port " + std::to_string(ports["DEMO_MYSQL_READ_PORT"]) + " is already in use"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "DEMO_MYSQL_READ_PORT")) << r.output;
  EXPECT_FALSE(contains(r.output, "started")) << r.output;
}

}  // namespace
}  // namespace tandem::it
