// Walks the TOML document table by table, in an order that lets each step rely on the last:
// [global], [defaults], then every [[backend]] (which copies [defaults]), then every
// [[frontend]] (which must name a backend already read). The first problem found throws.
#include <algorithm>
#include <cerrno>
#include <charconv>
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
// "hdr" is written "hdr(NAME)" in the file; the bare word only names Balance::kHdr.
constexpr ConfigWord<Balance> kBalances[] = {{"roundrobin", Balance::kRoundRobin},
                                             {"static-rr", Balance::kStaticRr},
                                             {"leastconn", Balance::kLeastConn},
                                             {"first", Balance::kFirst},
                                             {"source", Balance::kSource},
                                             {"random", Balance::kRandom},
                                             {"uri", Balance::kUri},
                                             {"hdr", Balance::kHdr}};
constexpr ConfigWord<CheckType> kCheckTypes[] = {
    {"tcp", CheckType::kTcp}, {"http", CheckType::kHttp}, {"mysql", CheckType::kMysql}};
constexpr ConfigWord<MysqlCheckMode> kMysqlCheckModes[] = {
    {"handshake", MysqlCheckMode::kHandshake},
    {"login", MysqlCheckMode::kLogin},
    {"replication", MysqlCheckMode::kReplication}};
constexpr ConfigWord<Role> kRoles[] = {{"writer", Role::kWriter}, {"reader", Role::kReader}};
constexpr ConfigWord<Failback> kFailbacks[] = {{"manual", Failback::kManual},
                                               {"auto", Failback::kAuto}};
constexpr ConfigWord<OnMarkedDown> kOnMarkedDown[] = {
    {"none", OnMarkedDown::kNothing}, {"shutdown-sessions", OnMarkedDown::kShutdownSessions}};
constexpr ConfigWord<LogLevel> kLogLevels[] = {{"debug", LogLevel::kDebug},
                                               {"info", LogLevel::kInfo},
                                               {"notice", LogLevel::kNotice},
                                               {"warning", LogLevel::kWarning},
                                               {"error", LogLevel::kError}};
constexpr ConfigWord<LogFormat> kLogFormats[] = {{"haproxy", LogFormat::kHaproxy},
                                                 {"json", LogFormat::kJson}};

template <typename E, size_t N>
const char* wordFor(const ConfigWord<E> (&words)[N], E value) {
  for (const ConfigWord<E>& word : words) {
    if (word.value == value) {
      return word.name;
    }
  }
  return "?";
}

bool isAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool isValidName(std::string_view name) {
  auto valid = [](char c) { return isAlnum(c) || c == '_' || c == '.' || c == '-'; };
  return !name.empty() && std::all_of(name.begin(), name.end(), valid);
}

// The character rules of the HTTP keys. They are narrower than RFC 9110 allows where the
// wider set only invites mistakes (a lowercase method, a header name with '_').
bool isHeaderNameChar(char c) {
  return isAlnum(c) || c == '-';
}
bool isCookieNameChar(char c) {
  return isAlnum(c) || std::string_view("!#$%&'*+.^_`|~-").find(c) != std::string_view::npos;
}
bool isMethodChar(char c) {
  return c >= 'A' && c <= 'Z';
}
bool isHostChar(char c) {
  return isAlnum(c) || std::string_view(".-_:[]").find(c) != std::string_view::npos;
}
// A request target goes into the request line as written: no byte may end or split it.
bool isPathChar(char c) {
  return c > ' ' && c < 0x7f;
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
  t.readWord("mode", kModes, &mode);
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

void copyHttpLimits(const DefaultsConfig& defaults, FrontendConfig& frontend) {
  frontend.timeout_http_request = defaults.timeout_http_request;
  frontend.timeout_http_keep_alive = defaults.timeout_http_keep_alive;
  frontend.max_header_size = defaults.max_header_size;
  frontend.max_headers = defaults.max_headers;
}

// The HTTP limits a frontend takes from [defaults] and may override, all with the same keys.
template <typename Holder>
void readHttpLimits(const ConfigTable& t, Holder& holder) {
  t.readPositiveDuration("timeout_http_request", &holder.timeout_http_request);
  t.readPositiveDuration("timeout_http_keep_alive", &holder.timeout_http_keep_alive);
  t.readInt("max_header_size", 1024, 1048576, &holder.max_header_size);
  t.readInt("max_headers", 1, 1000, &holder.max_headers);
}

// "stdout", "off" or a file path. The file is opened by the access log, not here, so that
// `tandem --check` never creates it.
void readAccessLog(const ConfigTable& t, std::string* out) {
  if (t.readString("access_log", out) && out->empty()) {
    t.fail("access_log", t.require("access_log"),
           "expected \"stdout\", \"off\" or a file path, found an empty string");
  }
}

std::string balanceChoices() {
  std::string choices;
  for (const ConfigWord<Balance>& word : kBalances) {
    std::string name = word.value == Balance::kHdr ? "hdr(NAME)" : word.name;
    choices += (choices.empty() ? "" : ", ") + name;
  }
  return choices;
}

// balance = "hdr(X-User)": the header to hash travels inside the word, as in HAProxy.
void readHeaderBalance(const ConfigTable& t, const std::string& text, BackendConfig& backend) {
  const toml::node& node = t.require("balance");
  if (!text.starts_with("hdr(") || !text.ends_with(")") || text.size() == 5) {
    t.fail("balance", node,
           quoted(text) + " needs a header name in parentheses, e.g. \"hdr(X-User)\"");
  }
  std::string name = text.substr(4, text.size() - 5);
  if (!std::all_of(name.begin(), name.end(), isHeaderNameChar)) {
    t.fail("balance", node,
           quoted(text) + ": " + quoted(name) +
               " is not a valid header name (use letters, digits and '-')");
  }
  backend.balance = Balance::kHdr;
  backend.balance_header = std::move(name);
}

void readBalance(const ConfigTable& t, BackendConfig& backend) {
  std::string text;
  if (!t.readString("balance", &text)) {
    return;
  }
  if (text == "hdr" || text.starts_with("hdr(")) {
    readHeaderBalance(t, text, backend);
    return;
  }
  for (const ConfigWord<Balance>& word : kBalances) {
    if (text == word.name) {
      backend.balance = word.value;
      return;
    }
  }
  t.fail("balance", t.require("balance"), quoted(text) + " is not one of: " + balanceChoices());
}

// uri, hdr(...) and cookie read the HTTP request; on a TCP backend they could only be ignored.
void requireHttpMode(const ConfigTable& t, const BackendConfig& backend) {
  if (backend.mode == Mode::kHttp) {
    return;
  }
  if (backend.balance == Balance::kUri || backend.balance == Balance::kHdr) {
    const toml::node& node = t.require("balance");
    t.fail("balance", node,
           "balance " + quoted(node.as_string()->get()) + " needs mode = \"http\"");
  }
  if (!backend.cookie.empty()) {
    t.fail("cookie", t.require("cookie"), "cookie needs mode = \"http\"");
  }
}

// How a backend picks a server: the algorithm, and the cookie that pins a client to one.
void readBalanceAndPersistence(const ConfigTable& t, BackendConfig& backend) {
  readBalance(t, backend);
  t.readToken("cookie", isCookieNameChar,
              "is not a valid cookie name (use letters, digits and !#$%&'*+.^_`|~-)",
              &backend.cookie);
  requireHttpMode(t, backend);
}

constexpr int kMinStatus = 100;
constexpr int kMaxStatus = 599;

std::string statusFormsHint() {
  return " (use a status such as 200, a range such as \"200-399\" or a class such as \"2xx\")";
}

// One status of a "low-high" range, 100..599; more than three digits is a typo, not a status.
int parseStatus(const ConfigTable& t, const toml::node& node, std::string_view digits) {
  int status = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), status);
  const std::string& text = node.as_string()->get();
  if (error != std::errc() || end != digits.data() + digits.size() || digits.size() > 3) {
    t.fail("expect", node, quoted(text) + " is not a status range" + statusFormsHint());
  }
  if (status < kMinStatus || status > kMaxStatus) {
    t.fail("expect", node,
           quoted(text) + ": " + std::to_string(status) + " is out of range 100..599");
  }
  return status;
}

// "2xx" is 200-299; "200-399" is itself.
StatusRange parseStatusText(const ConfigTable& t, const toml::node& node) {
  const std::string& text = node.as_string()->get();
  if (text.size() == 3 && text[0] >= '1' && text[0] <= '5' && text.ends_with("xx")) {
    int low = (text[0] - '0') * 100;
    return StatusRange{low, low + 99};
  }
  size_t dash = text.find('-');
  if (dash == std::string::npos) {
    t.fail("expect", node, quoted(text) + " is not a status range or class" + statusFormsHint());
  }
  std::string_view view = text;
  StatusRange range{parseStatus(t, node, view.substr(0, dash)),
                    parseStatus(t, node, view.substr(dash + 1))};
  if (range.low > range.high) {
    t.fail("expect", node,
           quoted(text) + ": " + std::to_string(range.low) + " is greater than " +
               std::to_string(range.high));
  }
  return range;
}

StatusRange parseStatusRange(const ConfigTable& t, const toml::node& node) {
  if (node.is_string()) {
    return parseStatusText(t, node);
  }
  if (!node.is_integer()) {
    t.failWrongType("expect", node, "a status, a \"low-high\" range or a \"Nxx\" class");
  }
  int64_t status = node.as_integer()->get();
  if (status < kMinStatus || status > kMaxStatus) {
    t.fail("expect", node, std::to_string(status) + " is out of range 100..599");
  }
  return StatusRange{static_cast<int>(status), static_cast<int>(status)};
}

// expect = 200, "200-399", "2xx", or an array mixing them; each error names its element's line.
void readExpect(const ConfigTable& t, std::vector<StatusRange>* out) {
  const toml::node* node = t.find("expect");
  if (node == nullptr) {
    return;
  }
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    *out = {parseStatusRange(t, *node)};
    return;
  }
  if (array->empty()) {
    t.fail("expect", *node, "expected at least one status, found an empty array");
  }
  out->clear();
  for (const toml::node& element : *array) {
    out->push_back(parseStatusRange(t, element));
  }
}

// The request keys of a check mean something only to type = "http"; anywhere else they would
// be silently ignored.
void rejectHttpCheckKeys(const ConfigTable& t, CheckType type) {
  if (type == CheckType::kHttp) {
    return;
  }
  for (std::string_view key : {"method", "path", "host", "expect"}) {
    if (const toml::node* node = t.find(key)) {
      t.fail(
          key, *node,
          "only for type = \"http\" (this check has type = " + quoted(checkTypeName(type)) + ")");
    }
  }
}

void readCheckPath(const ConfigTable& t, std::string* out) {
  if (t.readString("path", out) &&
      (!out->starts_with('/') || !std::all_of(out->begin(), out->end(), isPathChar))) {
    t.fail("path", t.require("path"),
           quoted(*out) +
               " is not a valid request path (it must start with \"/\" and hold no spaces, "
               "control characters or non-ASCII bytes)");
  }
}

// Empty (the default) sends the server's address as the Host header.
void readCheckHost(const ConfigTable& t, std::string* out) {
  if (t.readString("host", out) && !std::all_of(out->begin(), out->end(), isHostChar)) {
    t.fail("host", t.require("host"),
           quoted(*out) + " is not a valid host (use a host name or address, and \":port\")");
  }
}

void readHttpCheck(const ConfigTable& t, CheckConfig& check) {
  rejectHttpCheckKeys(t, check.type);
  t.readToken("method", isMethodChar, "is not an HTTP method (use uppercase letters, e.g. \"GET\")",
              &check.method);
  readCheckPath(t, &check.path);
  readCheckHost(t, &check.host);
  readExpect(t, &check.expect);
}

// The keys of a type = "mysql" check; anywhere else they would be silently ignored.
void rejectMysqlCheckKeys(const ConfigTable& t, CheckType type) {
  if (type == CheckType::kMysql) {
    return;
  }
  for (std::string_view key : {"mode", "user", "password", "password_file"}) {
    if (const toml::node* node = t.find(key)) {
      t.fail(
          key, *node,
          "only for type = \"mysql\" (this check has type = " + quoted(checkTypeName(type)) + ")");
    }
  }
}

// Far beyond any password; stops a mistaken path such as /dev/zero from eating memory.
constexpr size_t kMaxSecretBytes = 64 * 1024;

// Reads a whole secret file into *out. Returns 0, or the errno value that explains the
// failure (EFBIG for a file over kMaxSecretBytes).
int readSecretFile(const std::string& path, std::string* out) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(fopen(path.c_str(), "rb"), fclose);
  if (!file) {
    return errno;
  }
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), file.get())) > 0) {
    out->append(buffer, n);
    if (out->size() > kMaxSecretBytes) {
      return EFBIG;
    }
  }
  return ferror(file.get()) ? errno : 0;
}

// `echo secret > file` and most editors end the file with a newline that is no part of the
// password; only one is removed, so a password may still end in whitespace on purpose.
void stripTrailingNewline(std::string* text) {
  if (text->ends_with("\r\n")) {
    text->resize(text->size() - 2);
  } else if (text->ends_with('\n')) {
    text->pop_back();
  }
}

// Read at load time, so that `tandem --check` proves the secret is readable and a file
// removed later cannot fail a check at 3 a.m. A relative path is taken from the directory
// of the configuration file (unlike the other paths, which are taken from the working
// directory), so that a configuration and its secrets travel together: deploy/tandem.toml
// names secrets/tandem-admin and finds it both in the repository and in the container.
std::string secretPath(const ConfigTable& t, const std::string& path) {
  if (path.empty() || path.front() == '/') {
    return path;
  }
  std::string::size_type slash = t.file().rfind('/');
  return slash == std::string::npos ? path : t.file().substr(0, slash + 1) + path;
}

void readPasswordFile(const ConfigTable& t, std::string* out) {
  std::string path;
  t.readString("password_file", &path);
  const toml::node& node = t.require("password_file");
  if (path.empty()) {
    t.fail("password_file", node, "expected a file path, found an empty string");
  }
  std::string secret;
  int err = readSecretFile(secretPath(t, path), &secret);
  if (err != 0) {
    t.fail("password_file", node, quoted(secretPath(t, path)) + ": " + strerror(err));
  }
  stripTrailingNewline(&secret);
  *out = std::move(secret);
}

// A user needs exactly one of password and password_file (an account without a password is
// written password = ""); without a user there is nothing to log in with, so neither may be
// given.
void readMysqlCredentials(const ConfigTable& t, CheckConfig& check) {
  const toml::node* password = t.find("password");
  const toml::node* password_file = t.find("password_file");
  if (!t.readString("user", &check.user)) {
    if (const toml::node* node = password != nullptr ? password : password_file) {
      t.fail(password != nullptr ? "password" : "password_file", *node, "needs a user");
    }
    return;
  }
  if (check.user.empty()) {
    t.fail("user", t.require("user"), "expected a user name, found an empty string");
  }
  if (password != nullptr && password_file != nullptr) {
    t.fail("password_file", *password_file,
           "give either password (line " + std::to_string(lineOf(*password)) +
               ") or password_file, not both");
  }
  if (password == nullptr && password_file == nullptr) {
    t.fail("user", t.require("user"), "needs password or password_file");
  }
  if (password != nullptr) {
    t.readString("password", &check.password);
  } else {
    readPasswordFile(t, &check.password);
  }
}

// Without a mode the check does the most it can: the replication state when it may log in,
// the greeting otherwise.
void readMysqlMode(const ConfigTable& t, CheckConfig& check) {
  check.mysql_mode = check.user.empty() ? MysqlCheckMode::kHandshake : MysqlCheckMode::kReplication;
  if (!t.readWord("mode", kMysqlCheckModes, &check.mysql_mode)) {
    return;
  }
  if (check.mysql_mode != MysqlCheckMode::kHandshake && check.user.empty()) {
    const toml::node& node = t.require("mode");
    t.fail("mode", node, "mode " + quoted(node.as_string()->get()) + " needs a user");
  }
}

void readMysqlCheck(const ConfigTable& t, CheckConfig& check) {
  rejectMysqlCheckKeys(t, check.type);
  if (check.type == CheckType::kMysql) {
    readMysqlCredentials(t, check);
    readMysqlMode(t, check);
  }
}

// The keys of the MySQL roles, in the order they are checked against the backend.
constexpr std::string_view kRoleKeys[] = {"role",
                                          "failback",
                                          "failback_after",
                                          "max_lag",
                                          "allow_broken_replica_failover",
                                          "manage_read_only"};

std::string describeRole(Role role) {
  return role == Role::kNone ? "this backend has no role"
                             : "this backend has role = " + quoted(wordFor(kRoles, role));
}

// Roles balance MySQL connections, which only a TCP backend carries. The failback and
// election keys act on a writer; max_lag on either role (a writer's lag decides nothing
// itself, but the readers of the same servers use it).
void requireRoleContext(const ConfigTable& t, const BackendConfig& backend) {
  for (std::string_view key : kRoleKeys) {
    const toml::node* node = t.find(key);
    if (node == nullptr) {
      continue;
    }
    if (backend.mode != Mode::kTcp) {
      t.fail(key, *node, std::string(key) + " needs mode = \"tcp\"");
    }
    bool writer_only = key != "role" && key != "max_lag";
    if (writer_only && backend.role != Role::kWriter) {
      t.fail(key, *node, "only for role = \"writer\" (" + describeRole(backend.role) + ")");
    }
    if (key == "max_lag" && backend.role == Role::kNone) {
      t.fail(key, *node,
             "only for role = \"writer\" or \"reader\" (" + describeRole(backend.role) + ")");
    }
  }
}

void readRoleKeys(const ConfigTable& t, BackendConfig& backend) {
  t.readWord("role", kRoles, &backend.role);
  t.readWord("failback", kFailbacks, &backend.failback);
  t.readDuration("failback_after", &backend.failback_after);
  t.readDuration("max_lag", &backend.max_lag);
  t.readBool("allow_broken_replica_failover", &backend.allow_broken_replica_failover);
  t.readBool("manage_read_only", &backend.manage_read_only);
  requireRoleContext(t, backend);
  // Reads spread best by load: a reader without its own `balance` uses leastconn.
  if (backend.role == Role::kReader && t.find("balance") == nullptr) {
    backend.balance = Balance::kLeastConn;
  }
}

// A role is decided from replication facts, which only a MySQL check gathers.
void requireMysqlCheckForRole(const ConfigTable& t, const BackendConfig& backend) {
  if (backend.role == Role::kNone ||
      (backend.check.has_value() && backend.check->type == CheckType::kMysql)) {
    return;
  }
  std::string found = backend.check.has_value()
                          ? "its check has type = " + quoted(checkTypeName(backend.check->type))
                          : "it has no check";
  const toml::node& node = t.require("role");
  t.fail("role", node,
         "role = " + quoted(node.as_string()->get()) +
             " needs a [backend.check] with type = \"mysql\" (" + found + ")");
}

// A path, opened when the writers are saved, not here, so that `tandem --check` never
// creates it.
void readStateFile(const ConfigTable& t, std::string* out) {
  if (t.readString("state_file", out) && out->empty()) {
    t.fail("state_file", t.require("state_file"), "expected a file path, found an empty string");
  }
}

// "0s" turns periodic lookups off; anything else is at least kMinDnsRefresh, so that a typo
// such as "10ms" cannot flood the resolver. The hosts file is read at run time, not here:
// `tandem --check` may run where the file is not mounted yet.
constexpr Millis kMinDnsRefresh{100};

void readDnsKeys(const ConfigTable& t, GlobalConfig* global) {
  if (t.readDuration("dns_refresh", &global->dns_refresh) && global->dns_refresh.count() != 0 &&
      global->dns_refresh < kMinDnsRefresh) {
    t.fail("dns_refresh", t.require("dns_refresh"),
           "must be \"0s\" (off) or at least " + formatDuration(kMinDnsRefresh) + ", found " +
               formatDuration(global->dns_refresh));
  }
  if (t.readString("hosts_file", &global->hosts_file) && global->hosts_file.empty()) {
    t.fail("hosts_file", t.require("hosts_file"), "expected a file path, found an empty string");
  }
}

class Loader {
 public:
  Loader(const toml::table& root, const std::string& file)
      : file_(file),
        root_(root, file, "", {"global", "defaults", "admin", "backend", "frontend"}) {}

  Config load();

 private:
  void loadGlobal();
  void loadDefaults();
  void loadAdmin();
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
  loadAdmin();
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
  ConfigTable t(*table, file_, "global",
                {"threads", "log_level", "hard_stop_after", "access_log", "log_format",
                 "state_file", "dns_refresh", "hosts_file"});
  t.rejectUnknownKeys();
  GlobalConfig& global = config_.global;
  readThreads(t, &global.threads);
  t.readWord("log_level", kLogLevels, &global.log_level);
  t.readDuration("hard_stop_after", &global.hard_stop_after);
  readAccessLog(t, &global.access_log);
  t.readWord("log_format", kLogFormats, &global.log_format);
  readStateFile(t, &global.state_file);
  readDnsKeys(t, &global);
}

void Loader::loadDefaults() {
  const toml::table* table = findTable(root_, "defaults");
  if (table == nullptr) {
    return;
  }
  ConfigTable t(
      *table, file_, "defaults",
      {"timeout_connect", "timeout_client", "timeout_server", "retries", "timeout_http_request",
       "timeout_http_keep_alive", "max_header_size", "max_headers"});
  t.rejectUnknownKeys();
  DefaultsConfig& defaults = config_.defaults;
  t.readPositiveDuration("timeout_connect", &defaults.timeout_connect);
  t.readPositiveDuration("timeout_client", &defaults.timeout_client);
  t.readPositiveDuration("timeout_server", &defaults.timeout_server);
  t.readInt("retries", 0, 100, &defaults.retries);
  readHttpLimits(t, defaults);
}

// [admin] users: "name:password" strings, as HAProxy's `stats auth`.
void readAdminUsers(const ConfigTable& t, std::vector<AdminUser>* out) {
  const toml::node* node = t.find("users");
  if (node == nullptr) {
    return;
  }
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    t.failWrongType("users", *node, "an array of \"name:password\" strings");
  }
  for (const toml::node& element : *array) {
    if (!element.is_string()) {
      t.failWrongType("users", element, "a \"name:password\" string");
    }
    const std::string& text = element.as_string()->get();
    size_t colon = text.find(':');
    if (colon == std::string::npos || colon == 0) {
      t.fail("users", element, "expected \"name:password\", found " + quoted(text));
    }
    AdminUser user{text.substr(0, colon), text.substr(colon + 1)};
    for (const AdminUser& earlier : *out) {
      if (earlier.name == user.name) {
        t.fail("users", element, "duplicate user " + quoted(user.name));
      }
    }
    out->push_back(std::move(user));
  }
}

void Loader::loadAdmin() {
  const toml::table* table = findTable(root_, "admin");
  if (table == nullptr) {
    return;
  }
  ConfigTable t(*table, file_, "admin",
                {"listen", "socket", "token", "token_file", "users", "read_auth", "refresh"});
  t.rejectUnknownKeys();
  AdminConfig& admin = config_.admin;
  admin.enabled = true;
  admin.line = t.line();
  if (const toml::node* listen = t.find("listen")) {
    if (listen->is_string() && listen->as_string()->get().empty()) {
      admin.listen.reset();
    } else {
      admin.listen = readAddress(t, "listen", *listen);
    }
  }
  if (t.readString("socket", &admin.socket) && admin.socket.empty()) {
    t.fail("socket", t.require("socket"), "expected a socket path, found an empty string");
  }
  const toml::node* token = t.find("token");
  const toml::node* token_file = t.find("token_file");
  if (token != nullptr && token_file != nullptr) {
    t.fail("token_file", *token_file, "give token or token_file, not both");
  }
  if (token != nullptr) {
    t.readString("token", &admin.token);
    if (admin.token.empty()) {
      t.fail("token", *token, "expected a token, found an empty string");
    }
  }
  if (token_file != nullptr) {
    std::string path;
    t.readString("token_file", &path);
    if (path.empty()) {
      t.fail("token_file", *token_file, "expected a file path, found an empty string");
    }
    path = secretPath(t, path);
    int err = readSecretFile(path, &admin.token);
    if (err != 0) {
      t.fail("token_file", *token_file, quoted(path) + ": " + strerror(err));
    }
    stripTrailingNewline(&admin.token);
    if (admin.token.empty()) {
      t.fail("token_file", *token_file, quoted(path) + " is empty");
    }
  }
  readAdminUsers(t, &admin.users);
  t.readBool("read_auth", &admin.read_auth);
  if (admin.read_auth && admin.token.empty() && admin.users.empty()) {
    t.fail("read_auth", t.require("read_auth"), "needs token, token_file or users");
  }
  t.readPositiveDuration("refresh", &admin.refresh);
  if (admin.refresh < Millis(200)) {
    t.fail("refresh", t.require("refresh"), "must be at least 200ms");
  }
  if (admin.listen) {
    const toml::node* listen = t.find("listen");
    listens_.try_emplace(admin.listen->str(),
                         ListenUse{"admin", listen != nullptr ? lineOf(*listen) : t.line()});
  }
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
  ConfigTable t(
      table, file_, "backend[" + std::to_string(index) + "]",
      {"name", "mode", "balance", "on_marked_down", "timeout_connect", "timeout_server", "retries",
       "cookie", "error_limit", "check", "server", "servers", "role", "failback", "failback_after",
       "max_lag", "allow_broken_replica_failover", "manage_read_only"});
  BackendConfig backend;
  backend.line = t.line();
  backend.name = readName(t);
  t.setPath("backend[" + backend.name + "]");
  rejectDuplicateName(t, "backend", config_.backends, backend.name);
  t.rejectUnknownKeys();
  backend.mode = readMode(t);
  readBalanceAndPersistence(t, backend);
  t.readInt("error_limit", 0, 1000, &backend.error_limit);
  t.readWord("on_marked_down", kOnMarkedDown, &backend.on_marked_down);
  backend.timeout_connect = config_.defaults.timeout_connect;
  backend.timeout_server = config_.defaults.timeout_server;
  backend.retries = config_.defaults.retries;
  t.readPositiveDuration("timeout_connect", &backend.timeout_connect);
  t.readPositiveDuration("timeout_server", &backend.timeout_server);
  t.readInt("retries", 0, 100, &backend.retries);
  readRoleKeys(t, backend);
  backend.check = loadCheck(t);
  requireMysqlCheckForRole(t, backend);
  if (backend.manage_read_only && backend.check->user.empty()) {
    t.fail("manage_read_only", t.require("manage_read_only"),
           "needs a check user (the check's user sets read_only; grant it READ_ONLY ADMIN)");
  }
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
                {"type", "interval", "fastinter", "downinter", "timeout", "rise", "fall", "method",
                 "path", "host", "expect", "mode", "user", "password", "password_file"});
  t.rejectUnknownKeys();
  CheckConfig check;
  check.line = t.line();
  t.readWord("type", kCheckTypes, &check.type);
  t.readPositiveDuration("interval", &check.interval);
  check.fastinter = check.downinter = check.timeout = check.interval;
  t.readPositiveDuration("fastinter", &check.fastinter);
  t.readPositiveDuration("downinter", &check.downinter);
  t.readPositiveDuration("timeout", &check.timeout);
  t.readInt("rise", 1, 1000, &check.rise);
  t.readInt("fall", 1, 1000, &check.fall);
  readHttpCheck(t, check);
  readMysqlCheck(t, check);
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
  ConfigTable t(
      table, file_, "frontend[" + std::to_string(index) + "]",
      {"name", "listen", "mode", "backend", "maxconn", "timeout_client", "timeout_http_request",
       "timeout_http_keep_alive", "max_header_size", "max_headers"});
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
  copyHttpLimits(config_.defaults, frontend);
  readHttpLimits(t, frontend);
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
