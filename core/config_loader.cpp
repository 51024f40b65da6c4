// Walks the TOML document table by table, in an order that lets each step rely on the last:
// [global], [defaults], then every [[backend]] (which copies [defaults]), then every
// [[frontend]] (which must name a backend already read). The first problem found throws.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "core/config.h"
#include "core/config_table.h"

namespace tandem {

namespace {

constexpr ConfigWord<Mode> kModes[] = {{"tcp", Mode::kTcp}, {"http", Mode::kHttp}};
constexpr ConfigWord<Balance> kBalances[] = {
    {"roundrobin", Balance::kRoundRobin}, {"static-rr", Balance::kStaticRr},
    {"leastconn", Balance::kLeastConn},   {"first", Balance::kFirst},
    {"source", Balance::kSource},         {"random", Balance::kRandom}};
constexpr ConfigWord<CheckType> kCheckTypes[] = {
    {"tcp", CheckType::kTcp}, {"http", CheckType::kHttp}, {"mysql", CheckType::kMysql}};
constexpr ConfigWord<OnMarkedDown> kOnMarkedDown[] = {
    {"none", OnMarkedDown::kNothing}, {"shutdown-sessions", OnMarkedDown::kShutdownSessions}};
constexpr ConfigWord<LogLevel> kLogLevels[] = {{"debug", LogLevel::kDebug},
                                               {"info", LogLevel::kInfo},
                                               {"notice", LogLevel::kNotice},
                                               {"warning", LogLevel::kWarning},
                                               {"error", LogLevel::kError}};

template <typename E, size_t N>
const char* wordFor(const ConfigWord<E> (&words)[N], E value) {
  for (const ConfigWord<E>& word : words) {
    if (word.value == value) {
      return word.name;
    }
  }
  return "?";
}

// HTTP load balancing (issue #3) and MySQL checks (issue #4) are words of the schema whose
// runtime is not written yet. They are refused here, and only here: delete this function and
// its two calls when those issues land.
void rejectNotYetAvailable(const ConfigTable& t, std::string_view key, std::string_view word) {
  std::string issue;
  if (key == "mode" && word == "http") {
    issue = "HTTP load balancing is issue #3";
  } else if (key == "type" && word == "http") {
    issue = "\"http\" checks are issue #3";
  } else if (key == "type" && word == "mysql") {
    issue = "MySQL checks are issue #4";
  } else {
    return;
  }
  t.fail(key, t.require(key), quoted(word) + " is not available yet (" + issue + ")");
}

bool isValidName(std::string_view name) {
  auto valid = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  };
  return !name.empty() && std::all_of(name.begin(), name.end(), valid);
}

// Reads the required `name` first, so that every later error can say "backend[web]" rather
// than "backend[1]". A misspelt `name` key is reported as unknown, not as missing.
std::string readName(const ConfigTable& t) {
  if (t.find("name") == nullptr) {
    t.rejectUnknownKeys();
  }
  std::string name;
  if (!t.readString("name", &name)) {
    t.failMissing("name");
  }
  if (!isValidName(name)) {
    t.fail("name", t.require("name"),
           quoted(name) + " is not a valid name (use letters, digits, '_', '.' and '-')");
  }
  return name;
}

Mode readMode(const ConfigTable& t) {
  Mode mode = Mode::kTcp;
  if (t.readWord("mode", kModes, &mode)) {
    rejectNotYetAvailable(t, "mode", modeName(mode));
  }
  return mode;
}

// [[frontend]] blocks and `frontend = [{...}, {...}]` are the same TOML value: an array whose
// elements are all tables. Returns nullptr when the key is absent.
const toml::array* findArrayOfTables(const ConfigTable& t, std::string_view key,
                                     std::string_view spelling) {
  const toml::node* node = t.find(key);
  if (node == nullptr) {
    return nullptr;
  }
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    t.failWrongType(key, *node, "an array of tables (" + std::string(spelling) + ")");
  }
  for (const toml::node& element : *array) {
    if (!element.is_table()) {
      t.failWrongType(key, element, "a table");
    }
  }
  return array;
}

HostPort readAddress(const ConfigTable& t, std::string_view key, const toml::node& node) {
  if (!node.is_string()) {
    t.failWrongType(key, node, "a \"host:port\" string");
  }
  std::string why;
  std::optional<HostPort> address = parseHostPort(node.as_string()->get(), &why);
  if (!address) {
    t.fail(key, node, why);
  }
  return *address;
}

// The second table to use a name is the error; the message points back at the first one.
template <typename Earlier>
void rejectDuplicateName(const ConfigTable& t, std::string_view kind,
                         const std::vector<Earlier>& earlier, const std::string& name) {
  for (const Earlier& first : earlier) {
    if (first.name == name) {
      t.fail("name", t.require("name"),
             "duplicate " + std::string(kind) + " name " + quoted(name) +
                 " (first defined at line " + std::to_string(first.line) + ")");
    }
  }
}

// [global] and `global = {...}` are both tables; anything else is a type error.
const toml::table* findTable(const ConfigTable& t, std::string_view key) {
  const toml::node* node = t.find(key);
  if (node != nullptr && !node->is_table()) {
    t.failWrongType(key, *node, "a table");
  }
  return node == nullptr ? nullptr : node->as_table();
}

// threads = "auto" (stored as 0: one worker per core) or a count of 1..256.
void readThreads(const ConfigTable& t, int* out) {
  const toml::node* node = t.find("threads");
  if (node == nullptr || node->is_integer()) {
    t.readInt("threads", 1, 256, out);
    return;
  }
  if (!node->is_string()) {
    t.failWrongType("threads", *node, "\"auto\" or an integer");
  }
  if (node->as_string()->get() != "auto") {
    t.fail("threads", *node,
           "expected \"auto\" or an integer, found " + quoted(node->as_string()->get()));
  }
  *out = 0;
}

class Loader {
 public:
  Loader(const toml::table& root, const std::string& file)
      : file_(file), root_(root, file, "", {"global", "defaults", "backend", "frontend"}) {}

  Config load();

 private:
  void loadGlobal();
  void loadDefaults();
  void loadBackends();
  BackendConfig loadBackend(const toml::table& table, size_t index);
  std::optional<CheckConfig> loadCheck(const ConfigTable& backend);
  void loadServers(const ConfigTable& t, BackendConfig& backend);
  ServerConfig loadServer(const ConfigTable& backend_table, const toml::table& table, size_t index,
                          const BackendConfig& backend);
  HostPort readServerAddress(const ConfigTable& t);
  void loadFrontends();
  FrontendConfig loadFrontend(const toml::table& table, size_t index);
  void loadListen(const ConfigTable& t, FrontendConfig& frontend);
  void readBackendReference(const ConfigTable& t, FrontendConfig& frontend);

  struct ListenUse {
    std::string frontend;
    int line;
  };

  std::string file_;
  ConfigTable root_;
  Config config_;
  std::map<std::string, ListenUse> listens_;  // by HostPort::str(), to refuse duplicates
};

Config Loader::load() {
  root_.rejectUnknownKeys();
  loadGlobal();
  loadDefaults();
  loadBackends();
  loadFrontends();
  config_.path = file_;
  return std::move(config_);
}

void Loader::loadGlobal() {
  const toml::table* table = findTable(root_, "global");
  if (table == nullptr) {
    return;
  }
  ConfigTable t(*table, file_, "global", {"threads", "log_level", "hard_stop_after"});
  t.rejectUnknownKeys();
  GlobalConfig& global = config_.global;
  readThreads(t, &global.threads);
  t.readWord("log_level", kLogLevels, &global.log_level);
  t.readDuration("hard_stop_after", &global.hard_stop_after);
}

void Loader::loadDefaults() {
  const toml::table* table = findTable(root_, "defaults");
  if (table == nullptr) {
    return;
  }
  ConfigTable t(*table, file_, "defaults",
                {"timeout_connect", "timeout_client", "timeout_server", "retries"});
  t.rejectUnknownKeys();
  DefaultsConfig& defaults = config_.defaults;
  t.readPositiveDuration("timeout_connect", &defaults.timeout_connect);
  t.readPositiveDuration("timeout_client", &defaults.timeout_client);
  t.readPositiveDuration("timeout_server", &defaults.timeout_server);
  t.readInt("retries", 0, 100, &defaults.retries);
}

void Loader::loadBackends() {
  const toml::array* backends = findArrayOfTables(root_, "backend", "[[backend]]");
  if (backends == nullptr) {
    return;
  }
  for (size_t i = 0; i < backends->size(); ++i) {
    config_.backends.push_back(loadBackend(*(*backends)[i].as_table(), i));
  }
}

BackendConfig Loader::loadBackend(const toml::table& table, size_t index) {
  ConfigTable t(table, file_, "backend[" + std::to_string(index) + "]",
                {"name", "mode", "balance", "on_marked_down", "timeout_connect", "timeout_server",
                 "retries", "check", "server", "servers"});
  BackendConfig backend;
  backend.line = t.line();
  backend.name = readName(t);
  t.setPath("backend[" + backend.name + "]");
  rejectDuplicateName(t, "backend", config_.backends, backend.name);
  t.rejectUnknownKeys();
  backend.mode = readMode(t);
  t.readWord("balance", kBalances, &backend.balance);
  t.readWord("on_marked_down", kOnMarkedDown, &backend.on_marked_down);
  backend.timeout_connect = config_.defaults.timeout_connect;
  backend.timeout_server = config_.defaults.timeout_server;
  backend.retries = config_.defaults.retries;
  t.readPositiveDuration("timeout_connect", &backend.timeout_connect);
  t.readPositiveDuration("timeout_server", &backend.timeout_server);
  t.readInt("retries", 0, 100, &backend.retries);
  backend.check = loadCheck(t);
  loadServers(t, backend);
  return backend;
}

// Without an explicit timeout, fastinter or downinter, each takes the interval, as in HAProxy:
// a check that may not outlive its interval never overlaps the next one.
std::optional<CheckConfig> Loader::loadCheck(const ConfigTable& backend) {
  const toml::table* table = findTable(backend, "check");
  if (table == nullptr) {
    return std::nullopt;
  }
  ConfigTable t(*table, file_, backend.keyPath("check"),
                {"type", "interval", "fastinter", "downinter", "timeout", "rise", "fall"});
  t.rejectUnknownKeys();
  CheckConfig check;
  check.line = t.line();
  if (t.readWord("type", kCheckTypes, &check.type)) {
    rejectNotYetAvailable(t, "type", checkTypeName(check.type));
  }
  t.readPositiveDuration("interval", &check.interval);
  check.fastinter = check.downinter = check.timeout = check.interval;
  t.readPositiveDuration("fastinter", &check.fastinter);
  t.readPositiveDuration("downinter", &check.downinter);
  t.readPositiveDuration("timeout", &check.timeout);
  t.readInt("rise", 1, 1000, &check.rise);
  t.readInt("fall", 1, 1000, &check.fall);
  return check;
}

// Servers come either as [[backend.server]] blocks or as `servers = [{...}, {...}]`; one
// backend mixing both would leave the reader guessing their order, so that is refused.
void Loader::loadServers(const ConfigTable& t, BackendConfig& backend) {
  const toml::array* blocks = findArrayOfTables(t, "server", "[[backend.server]]");
  const toml::array* list = findArrayOfTables(t, "servers", "servers = [{...}, {...}]");
  if (blocks != nullptr && list != nullptr) {
    t.fail("servers", *list,
           "servers are given both as [[backend.server]] (line " + std::to_string(lineOf(*blocks)) +
               ") and as servers = [...]; use one spelling");
  }
  const toml::array* servers = blocks != nullptr ? blocks : list;
  if (servers == nullptr || servers->empty()) {
    t.fail("server", t.table(),
           "at least one server is required ([[backend.server]] or servers = [...])");
  }
  for (size_t i = 0; i < servers->size(); ++i) {
    const toml::table& table = *(*servers)[i].as_table();
    backend.servers.push_back(loadServer(t, table, i, backend));
  }
}

ServerConfig Loader::loadServer(const ConfigTable& backend_table, const toml::table& table,
                                size_t index, const BackendConfig& backend) {
  ConfigTable t(table, file_, backend_table.keyPath("server[" + std::to_string(index) + "]"),
                {"name", "address", "weight", "backup", "maxconn", "check", "disabled"});
  ServerConfig server;
  server.line = t.line();
  server.name = readName(t);
  t.setPath(backend_table.keyPath("server[" + server.name + "]"));
  rejectDuplicateName(t, "server", backend.servers, server.name);
  t.rejectUnknownKeys();
  server.address = readServerAddress(t);
  t.readInt("weight", 0, 256, &server.weight);
  t.readBool("backup", &server.backup);
  t.readInt("maxconn", 0, 1000000, &server.maxconn);
  t.readBool("check", &server.check);
  t.readBool("disabled", &server.disabled);
  return server;
}

// parseHostPort turns "*:80" and ":80" into 0.0.0.0, which suits a listener; a server needs a
// real host, or connections would silently go to this machine.
HostPort Loader::readServerAddress(const ConfigTable& t) {
  const toml::node& node = t.require("address");
  HostPort address = readAddress(t, "address", node);
  std::string_view text = node.as_string()->get();
  if (text.starts_with(':') || text.starts_with("*:")) {
    t.fail("address", node, "a server needs a host to connect to, found " + quoted(text));
  }
  return address;
}

void Loader::loadFrontends() {
  const toml::array* frontends = findArrayOfTables(root_, "frontend", "[[frontend]]");
  if (frontends == nullptr || frontends->empty()) {
    root_.fail("frontend", root_.table(), "at least one [[frontend]] is required");
  }
  for (size_t i = 0; i < frontends->size(); ++i) {
    config_.frontends.push_back(loadFrontend(*(*frontends)[i].as_table(), i));
  }
}

FrontendConfig Loader::loadFrontend(const toml::table& table, size_t index) {
  ConfigTable t(table, file_, "frontend[" + std::to_string(index) + "]",
                {"name", "listen", "mode", "backend", "maxconn", "timeout_client"});
  FrontendConfig frontend;
  frontend.line = t.line();
  frontend.name = readName(t);
  t.setPath("frontend[" + frontend.name + "]");
  rejectDuplicateName(t, "frontend", config_.frontends, frontend.name);
  t.rejectUnknownKeys();
  loadListen(t, frontend);
  frontend.mode = readMode(t);
  readBackendReference(t, frontend);
  t.readInt("maxconn", 0, 1000000, &frontend.maxconn);
  frontend.timeout_client = config_.defaults.timeout_client;
  t.readPositiveDuration("timeout_client", &frontend.timeout_client);
  return frontend;
}

// Two frontends on one address would both bind it (SO_REUSEPORT) and silently split its
// connections between them, so a repeated address is an error, even within one frontend.
void Loader::loadListen(const ConfigTable& t, FrontendConfig& frontend) {
  const toml::node& listen = t.require("listen");
  const toml::array* array = listen.as_array();
  if (array != nullptr && array->empty()) {
    t.fail("listen", listen, "expected at least one \"host:port\" address, found an empty array");
  }
  auto add = [&](const toml::node& node) {
    HostPort address = readAddress(t, "listen", node);
    auto [it, inserted] = listens_.try_emplace(address.str(), ListenUse{t.path(), lineOf(node)});
    if (!inserted) {
      t.fail("listen", node,
             "duplicate listen address " + quoted(address.str()) + " (first used by " +
                 it->second.frontend + " at line " + std::to_string(it->second.line) + ")");
    }
    frontend.listen.push_back(address);
  };
  if (array == nullptr) {
    add(listen);
    return;
  }
  for (const toml::node& node : *array) {
    add(node);
  }
}

void Loader::readBackendReference(const ConfigTable& t, FrontendConfig& frontend) {
  if (!t.readString("backend", &frontend.backend)) {
    t.failMissing("backend");
  }
  const BackendConfig* backend = config_.findBackend(frontend.backend);
  if (backend == nullptr) {
    std::string known;
    for (const BackendConfig& b : config_.backends) {
      known += (known.empty() ? "" : ", ") + b.name;
    }
    t.fail("backend", t.require("backend"),
           "unknown backend " + quoted(frontend.backend) +
               " (defined backends: " + (known.empty() ? "none" : known) + ")");
  }
  if (backend->mode != frontend.mode) {
    t.fail("backend", t.require("backend"),
           "frontend mode " + quoted(modeName(frontend.mode)) + " does not match backend " +
               quoted(backend->name) + " mode " + quoted(modeName(backend->mode)));
  }
}

// Far beyond any real configuration; stops a mistaken path such as /dev/zero from eating memory.
constexpr size_t kMaxConfigBytes = 16 * 1024 * 1024;

// Reads the whole file first so that a read error is reported as such, not as a TOML error.
std::string readWholeFile(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(fopen(path.c_str(), "rb"), fclose);
  if (!file) {
    throw ConfigError(path, 0, "", strerror(errno));
  }
  std::string text;
  char buffer[8192];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), file.get())) > 0) {
    text.append(buffer, n);
    if (text.size() > kMaxConfigBytes) {
      throw ConfigError(path, 0, "", "larger than 16 MiB: not a configuration file");
    }
  }
  if (ferror(file.get())) {
    throw ConfigError(path, 0, "", strerror(errno));
  }
  return text;
}

// "FILE:LINE: KEY: MESSAGE"; errors that belong to no key (an unreadable file, a TOML syntax
// error) read "FILE:LINE: MESSAGE" rather than carry an empty key.
std::string formatError(const std::string& file, int line, const std::string& key,
                        const std::string& message) {
  std::string where = file + ":" + std::to_string(line) + ": ";
  return key.empty() ? where + message : where + key + ": " + message;
}

}  // namespace

ConfigError::ConfigError(std::string file, int line, std::string key, std::string message)
    : std::runtime_error(formatError(file, line, key, message)),
      file_(std::move(file)),
      line_(line),
      key_(std::move(key)) {}

const char* modeName(Mode m) {
  return wordFor(kModes, m);
}
const char* balanceName(Balance b) {
  return wordFor(kBalances, b);
}
const char* checkTypeName(CheckType t) {
  return wordFor(kCheckTypes, t);
}

const BackendConfig* Config::findBackend(const std::string& name) const {
  for (const BackendConfig& backend : backends) {
    if (backend.name == name) {
      return &backend;
    }
  }
  return nullptr;
}

Config loadConfigFile(const std::string& path) {
  return loadConfigString(readWholeFile(path), path);
}

Config loadConfigString(const std::string& text, const std::string& path) {
  toml::table root;
  try {
    root = toml::parse(std::string_view(text), std::string_view(path));
  } catch (const toml::parse_error& e) {
    throw ConfigError(path, static_cast<int>(e.source().begin.line), "",
                      std::string(e.description()));
  }
  return Loader(root, path).load();
}

}  // namespace tandem
