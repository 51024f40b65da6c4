#include "admin/stats.h"

#include <arpa/inet.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdio>
#include <iterator>
#include <mutex>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

#include "core/log.h"

namespace tandem {

namespace {

// HAProxy 2.6's CSV columns, in order (tests/data/haproxy-2.6-stats-csv-columns.txt). "-"
// separates the core columns from the ones of HAProxy's stats modules (SSL, HTTP/2, HTTP/1),
// which Tandem leaves empty.
// Packed as in HAProxy's header line, not one name a line.
// clang-format off
constexpr const char* kColumns[] = {
    "pxname", "svname", "qcur", "qmax", "scur", "smax", "slim", "stot", "bin", "bout", "dreq",
    "dresp", "ereq", "econ", "eresp", "wretr", "wredis", "status", "weight", "act", "bck",
    "chkfail", "chkdown", "lastchg", "downtime", "qlimit", "pid", "iid", "sid", "throttle",
    "lbtot", "tracked", "type", "rate", "rate_lim", "rate_max", "check_status", "check_code",
    "check_duration", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other",
    "hanafail", "req_rate", "req_rate_max", "req_tot", "cli_abrt", "srv_abrt", "comp_in",
    "comp_out", "comp_byp", "comp_rsp", "lastsess", "last_chk", "last_agt", "qtime", "ctime",
    "rtime", "ttime", "agent_status", "agent_code", "agent_duration", "check_desc", "agent_desc",
    "check_rise", "check_fall", "check_health", "agent_rise", "agent_fall", "agent_health", "addr",
    "cookie", "mode", "algo", "conn_rate", "conn_rate_max", "conn_tot", "intercepted", "dcon",
    "dses", "wrew", "connect", "reuse", "cache_lookups", "cache_hits", "srv_icur", "src_ilim",
    "qtime_max", "ctime_max", "rtime_max", "ttime_max", "eint", "idle_conn_cur", "safe_conn_cur",
    "used_conn_cur", "need_conn_est", "uweight", "agg_server_status", "agg_server_check_status",
    "agg_check_status", "-", "ssl_sess", "ssl_reused_sess", "ssl_failed_handshake",
    "h2_headers_rcvd", "h2_data_rcvd", "h2_settings_rcvd", "h2_rst_stream_rcvd", "h2_goaway_rcvd",
    "h2_detected_conn_protocol_errors", "h2_detected_strm_protocol_errors", "h2_rst_stream_resp",
    "h2_goaway_resp", "h2_open_connections", "h2_backend_open_streams", "h2_total_connections",
    "h2_backend_total_streams", "h1_open_connections", "h1_open_streams", "h1_total_connections",
    "h1_total_streams", "h1_bytes_in", "h1_bytes_out", "h1_spliced_bytes_in",
    "h1_spliced_bytes_out"};
// clang-format on
constexpr size_t kColumnCount = std::size(kColumns);

// A column's index by name, resolved at compile time: a misspelt name does not compile.
consteval size_t col(std::string_view name) {
  for (size_t i = 0; i < kColumnCount; ++i) {
    if (name == kColumns[i]) {
      return i;
    }
  }
  throw "unknown stats column";
}

// HAProxy's `type` column.
constexpr int64_t kTypeFrontend = 0;
constexpr int64_t kTypeBackend = 1;
constexpr int64_t kTypeServer = 2;

// One cell: empty (HAProxy has nothing there), a number or a text.
struct Field {
  enum class Kind : uint8_t { kEmpty, kNumber, kText };
  Kind kind = Kind::kEmpty;
  int64_t number = 0;
  std::string text;
};

class Row {
 public:
  void set(size_t column, int64_t value) {
    fields_[column].kind = Field::Kind::kNumber;
    fields_[column].number = value;
  }
  void set(size_t column, uint64_t value) { set(column, static_cast<int64_t>(value)); }
  void set(size_t column, int value) { set(column, static_cast<int64_t>(value)); }
  void set(size_t column, std::string value) {
    fields_[column].kind = Field::Kind::kText;
    fields_[column].text = std::move(value);
  }
  void set(size_t column, const char* value) { set(column, std::string(value)); }
  const Field& operator[](size_t column) const { return fields_[column]; }

 private:
  std::array<Field, kColumnCount> fields_;
};

uint64_t load(const std::atomic<uint64_t>& value) {
  return value.load(std::memory_order_relaxed);
}
int64_t load(const std::atomic<int64_t>& value) {
  return value.load(std::memory_order_relaxed);
}

// Everything the renderers need about one server, read once: the atomics and, under the
// check mutex, the check and replication facts.
struct ServerSnapshot {
  bool up = true;
  bool has_addr = true;  // false while its host name has never resolved
  AdminState admin = AdminState::kReady;
  int weight = 0;
  int rise = 0;
  int fall = 0;
  CheckInfo check;
  ReplicationInfo replication;
};

ServerSnapshot snapshot(const Server& server, bool with_replication) {
  ServerSnapshot s;
  s.up = server.up.load(std::memory_order_relaxed);
  s.has_addr = server.hasAddr();
  s.admin = server.admin.load(std::memory_order_relaxed);
  s.weight = server.weight.load(std::memory_order_relaxed);
  const std::optional<CheckConfig>& cfg = server.backend().cfg().check;
  if (cfg) {
    s.rise = cfg->rise;
    s.fall = cfg->fall;
  }
  std::lock_guard<std::mutex> lock(server.check_mutex);
  s.check = server.check_info;
  if (with_replication) {
    s.replication = server.replication;
  }
  return s;
}

// HAProxy's server states (stats.c, srv_stats_state), reduced to what Tandem has: no agent
// checks, no NOLB (Tandem never soft-stops a server on its own). kResolution is HAProxy's
// "MAINT (resolution)": a host name that has not resolved, so the server has no address.
enum class State {
  kUp,
  kUpGoingDown,
  kDown,
  kGoingUp,
  kDrain,
  kDrainGoingDown,
  kMaint,
  kResolution,
  kNoCheck
};

bool checked(const ServerSnapshot& s) {
  return s.check.enabled && s.rise > 0 && s.fall > 0;
}

State stateOf(const ServerSnapshot& s) {
  if (s.admin == AdminState::kMaint) {
    return State::kMaint;
  }
  if (!s.has_addr) {
    return State::kResolution;
  }
  bool check = checked(s);
  if (s.up) {
    bool going_down = check && s.check.health < s.rise + s.fall - 1;
    // A weight of 0 takes no new traffic: shown as DRAIN, as in HAProxy.
    if (s.admin == AdminState::kDrain || s.weight == 0) {
      return going_down ? State::kDrainGoingDown : State::kDrain;
    }
    if (going_down) {
      return State::kUpGoingDown;
    }
    return check ? State::kUp : State::kNoCheck;
  }
  if (check && s.check.health > 0) {
    return State::kGoingUp;
  }
  return State::kDown;
}

// HAProxy prints the progress of a running server as (health - rise + 1)/fall, the failures
// still needed to take it DOWN, and of a stopped one as health/rise, the successes so far.
std::string statusText(const ServerSnapshot& s) {
  auto down_fraction = [&s] {
    return std::to_string(s.check.health - s.rise + 1) + "/" + std::to_string(s.fall);
  };
  switch (stateOf(s)) {
    case State::kMaint:
      return "MAINT";
    case State::kResolution:
      return "MAINT (resolution)";
    case State::kUp:
      return "UP";
    case State::kNoCheck:
      return "no check";
    case State::kUpGoingDown:
      return "UP " + down_fraction();
    case State::kDrain:
      return "DRAIN";
    case State::kDrainGoingDown:
      return "DRAIN " + down_fraction();
    case State::kGoingUp:
      return "DOWN " + std::to_string(s.check.health) + "/" + std::to_string(s.rise);
    case State::kDown:
      break;
  }
  return "DOWN";
}

// The page's colour word (admin/API.md).
const char* stateWord(const ServerSnapshot& s) {
  switch (stateOf(s)) {
    case State::kMaint:
      return "MAINT";
    case State::kUp:
      return "UP";
    case State::kNoCheck:
      return "NOCHECK";
    case State::kUpGoingDown:
      return "GOING_DOWN";
    case State::kDrain:
    case State::kDrainGoingDown:
      return "DRAIN";
    case State::kGoingUp:
      return "GOING_UP";
    case State::kResolution:  // a fault to fix, not maintenance: the page shows it DOWN
    case State::kDown:
      break;
  }
  return "DOWN";
}

const char* goingWord(const ServerSnapshot& s) {
  switch (stateOf(s)) {
    case State::kUpGoingDown:
    case State::kDrainGoingDown:
      return "down";
    case State::kGoingUp:
      return "up";
    default:
      return nullptr;
  }
}

// HAProxy's get_check_status_description().
const char* checkDescription(const std::string& status) {
  static const std::pair<const char*, const char*> kDescriptions[] = {
      {"UNK", "Unknown"},
      {"INI", "Initializing"},
      {"SOCKERR", "Socket error"},
      {"L4OK", "Layer4 check passed"},
      {"L4TOUT", "Layer4 timeout"},
      {"L4CON", "Layer4 connection problem"},
      {"L6OK", "Layer6 check passed"},
      {"L6TOUT", "Layer6 timeout"},
      {"L6RSP", "Layer6 invalid response"},
      {"L7TOUT", "Layer7 timeout"},
      {"L7RSP", "Layer7 invalid response"},
      {"L7OK", "Layer7 check passed"},
      {"L7OKC", "Layer7 check conditionally passed"},
      {"L7STS", "Layer7 wrong status"},
  };
  for (const auto& [name, description] : kDescriptions) {
    if (status == name) {
      return description;
    }
  }
  return "Unknown";
}

// HAProxy's numeric check status (enum healthcheck_status) for `show servers state`.
int checkStatusNumber(const std::string& status) {
  static const std::pair<const char*, int> kNumbers[] = {
      {"UNK", 0},    {"INI", 1},   {"SOCKERR", 5}, {"L4OK", 6},   {"L4TOUT", 7},
      {"L4CON", 8},  {"L6OK", 9},  {"L6TOUT", 10}, {"L6RSP", 11}, {"L7TOUT", 12},
      {"L7RSP", 13}, {"L7OK", 15}, {"L7OKC", 16},  {"L7STS", 17},
  };
  for (const auto& [name, number] : kNumbers) {
    if (status == name) {
      return number;
    }
  }
  return 0;
}

bool checkPassed(const std::string& status) {
  return status == "L4OK" || status == "L6OK" || status == "L7OK" || status == "L7OKC";
}

// The HTTP status of an HTTP check, from its reason ("Layer7 wrong status: 503 Service
// Unavailable"); nullopt for any other check.
std::optional<int> httpCheckCode(const Server& server, const CheckInfo& check) {
  const std::optional<CheckConfig>& cfg = server.backend().cfg().check;
  if (!cfg || cfg->type != CheckType::kHttp ||
      (check.status != "L7OK" && check.status != "L7STS")) {
    return std::nullopt;
  }
  size_t colon = check.reason.find(": ");
  if (colon == std::string::npos) {
    return std::nullopt;
  }
  int code = 0;
  size_t digits = 0;
  for (size_t i = colon + 2; i < check.reason.size() && digits < 3; ++i, ++digits) {
    char c = check.reason[i];
    if (c < '0' || c > '9') {
      break;
    }
    code = code * 10 + (c - '0');
  }
  if (digits != 3) {
    return std::nullopt;
  }
  return code;
}

int64_t secondsSince(int64_t then_ms, int64_t now_ms) {
  return std::max<int64_t>(0, (now_ms - then_ms) / 1000);
}

// The moment of the last state change; a server that never changed counts from start-up,
// as in HAProxy.
int64_t lastChangeMs(const ServerSnapshot& s, const StatsView& view) {
  return s.check.last_change_ms > 0 ? s.check.last_change_ms : view.process.start_ms;
}

// Total time DOWN, the current period included (HAProxy's srv_downtime).
int64_t downtimeMs(const ServerSnapshot& s, const StatsView& view) {
  int64_t total = s.check.downtime_ms;
  if (!s.up) {
    total += std::max<int64_t>(0, view.now_ms - lastChangeMs(s, view));
  }
  return total;
}

RateTracker::Rate rateOf(const StatsView& view, const void* object) {
  return view.rates != nullptr ? view.rates->rate(object) : RateTracker::Rate{};
}

// The proxy ids HAProxy calls iid: frontends first, then backends, in config order.
int frontendId(const StatsView& view, const Frontend& frontend) {
  const auto& list = view.runtime.frontends();
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i].get() == &frontend) {
      return static_cast<int>(i) + 1;
    }
  }
  return 0;
}

int backendId(const StatsView& view, const Backend& backend) {
  const auto& list = view.runtime.backends();
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i].get() == &backend) {
      return static_cast<int>(view.runtime.frontends().size() + i) + 1;
    }
  }
  return 0;
}

void setHttpColumns(Row& row, const Counters& c) {
  static constexpr size_t kHrsp[] = {col("hrsp_1xx"), col("hrsp_2xx"), col("hrsp_3xx"),
                                     col("hrsp_4xx"), col("hrsp_5xx"), col("hrsp_other")};
  for (size_t i = 0; i < 6; ++i) {
    row.set(kHrsp[i], load(c.responses[i]));
  }
  row.set(col("req_tot"), load(c.http_requests));
}

void setTimers(Row& row, const Counters& c) {
  row.set(col("qtime"), load(c.avg_queue_ms));
  row.set(col("ctime"), load(c.avg_connect_ms));
  row.set(col("rtime"), load(c.avg_response_ms));
  row.set(col("ttime"), load(c.avg_total_ms));
}

// The session and byte columns every row fills alike; slim only where a limit is set.
void setSessionColumns(Row& row, const Counters& c, int slim) {
  row.set(col("scur"), load(c.cur_conns));
  row.set(col("smax"), load(c.max_conns));
  if (slim > 0) {
    row.set(col("slim"), slim);
  }
  row.set(col("stot"), load(c.total_conns));
  row.set(col("bin"), load(c.bytes_in));
  row.set(col("bout"), load(c.bytes_out));
}

// The errors met toward servers, which backend and server rows share.
void setServerErrorColumns(Row& row, const Counters& c) {
  row.set(col("econ"), load(c.connect_errors));
  row.set(col("eresp"), load(c.response_errors));
  row.set(col("wretr"), load(c.retries));
  row.set(col("wredis"), load(c.redispatches));
}

// The identity and session-rate columns: a Row is indexed by column, so the order in which
// they are set does not show in the output.
void setIdentityColumns(Row& row, int iid, int sid, int64_t type, RateTracker::Rate rate) {
  row.set(col("pid"), 1);
  row.set(col("iid"), iid);
  row.set(col("sid"), sid);
  row.set(col("type"), type);
  row.set(col("rate"), rate.sessions);
  row.set(col("rate_max"), rate.sessions_max);
}

Row frontendRow(const StatsView& view, const Frontend& frontend) {
  const FrontendConfig& cfg = frontend.cfg();
  const Counters& c = frontend.counters;
  RateTracker::Rate rate = rateOf(view, &frontend);
  Row row;
  int64_t cur = load(c.cur_conns);
  row.set(col("pxname"), cfg.name);
  row.set(col("svname"), "FRONTEND");
  setSessionColumns(row, c, cfg.maxconn);
  row.set(col("dreq"), load(c.denied_requests));
  row.set(col("ereq"), load(c.request_errors));
  row.set(col("status"), cfg.maxconn > 0 && cur >= cfg.maxconn ? "FULL" : "OPEN");
  setIdentityColumns(row, frontendId(view, frontend), 0, kTypeFrontend, rate);
  if (cfg.mode == Mode::kHttp) {
    setHttpColumns(row, c);
    row.set(col("req_rate"), rate.requests);
    row.set(col("req_rate_max"), rate.requests_max);
  }
  row.set(col("mode"), modeName(cfg.mode));
  // Tandem makes one session per accepted connection, so connections and sessions agree.
  row.set(col("conn_rate"), rate.sessions);
  row.set(col("conn_rate_max"), rate.sessions_max);
  row.set(col("conn_tot"), load(c.total_conns));
  return row;
}

std::string addressOnly(const Server& server) {
  const sockaddr_storage& ss = server.addr();
  char text[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    return text;
  }
  if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    return text;
  }
  return "";
}

// "ip:port" as HAProxy's addr column ("[v6]:port"); the configured name before resolution.
std::string addressColumn(const Server& server) {
  std::string ip = addressOnly(server);
  if (ip.empty()) {
    return server.cfg().address.str();
  }
  std::string port = std::to_string(server.cfg().address.port);
  return server.addr().ss_family == AF_INET6 ? "[" + ip + "]:" + port : ip + ":" + port;
}

Row serverRow(const StatsView& view, const Server& server, const ServerSnapshot& s) {
  const ServerConfig& cfg = server.cfg();
  const BackendConfig& bcfg = server.backend().cfg();
  const Counters& c = server.counters;
  RateTracker::Rate rate = rateOf(view, &server);
  Row row;
  row.set(col("pxname"), bcfg.name);
  row.set(col("svname"), cfg.name);
  setSessionColumns(row, c, cfg.maxconn);
  setServerErrorColumns(row, c);
  row.set(col("status"), statusText(s));
  row.set(col("weight"), s.weight);
  row.set(col("act"), cfg.backup ? 0 : 1);
  row.set(col("bck"), cfg.backup ? 1 : 0);
  if (s.check.enabled) {
    row.set(col("chkfail"), s.check.failed_checks);
    row.set(col("chkdown"), s.check.down_transitions);
    row.set(col("downtime"), downtimeMs(s, view) / 1000);
  }
  row.set(col("lastchg"), secondsSince(lastChangeMs(s, view), view.now_ms));
  setIdentityColumns(row, backendId(view, server.backend()), server.id(), kTypeServer, rate);
  row.set(col("lbtot"), server.picks.load(std::memory_order_relaxed));
  if (s.check.enabled) {
    row.set(col("check_status"), (s.check.checking ? "* " : "") + s.check.status);
    if (std::optional<int> code = httpCheckCode(server, s.check)) {
      row.set(col("check_code"), *code);
    }
    if (s.check.duration_ms >= 0) {
      row.set(col("check_duration"), s.check.duration_ms);
    }
    row.set(col("check_desc"), checkDescription(s.check.status));
    row.set(col("last_chk"), s.check.reason);
    row.set(col("check_rise"), s.rise);
    row.set(col("check_fall"), s.fall);
    row.set(col("check_health"), s.check.health);
  }
  if (bcfg.mode == Mode::kHttp) {
    setHttpColumns(row, c);
  }
  setTimers(row, c);
  row.set(col("addr"), addressColumn(server));
  row.set(col("mode"), modeName(bcfg.mode));
  row.set(col("uweight"), cfg.weight);
  return row;
}

Row backendRow(const StatsView& view, const Backend& backend) {
  const BackendConfig& cfg = backend.cfg();
  const Counters& c = backend.counters;
  RateTracker::Rate rate = rateOf(view, &backend);
  // HAProxy's weight is the sum over the servers that take traffic: the active ones, or
  // the backups when no active one is left.
  int active = backend.usableActive();
  int backup = backend.usableBackup();
  int64_t weight = 0;
  int64_t uweight = 0;
  uint64_t lbtot = 0;
  for (const auto& server : backend.servers()) {
    lbtot += server->picks.load(std::memory_order_relaxed);
    if (server->usable() && server->cfg().backup == (active == 0)) {
      weight += server->weight.load(std::memory_order_relaxed);
      uweight += server->cfg().weight;
    }
  }
  Row row;
  row.set(col("pxname"), cfg.name);
  row.set(col("svname"), "BACKEND");
  setSessionColumns(row, c, 0);  // a backend has no session limit of its own
  row.set(col("dreq"), load(c.denied_requests));
  setServerErrorColumns(row, c);
  row.set(col("status"), weight > 0 || backend.servers().empty() ? "UP" : "DOWN");
  row.set(col("weight"), weight);
  row.set(col("act"), active);
  row.set(col("bck"), backup);
  setIdentityColumns(row, backendId(view, backend), 0, kTypeBackend, rate);
  row.set(col("lbtot"), lbtot);
  if (cfg.mode == Mode::kHttp) {
    setHttpColumns(row, c);
  }
  setTimers(row, c);
  if (!cfg.cookie.empty()) {
    row.set(col("cookie"), cfg.cookie);
  }
  row.set(col("mode"), modeName(cfg.mode));
  row.set(col("algo"), balanceName(cfg.balance));
  row.set(col("uweight"), uweight);
  return row;
}

std::vector<Row> buildRows(const StatsView& view) {
  std::vector<Row> rows;
  for (const auto& frontend : view.runtime.frontends()) {
    rows.push_back(frontendRow(view, *frontend));
  }
  for (const auto& backend : view.runtime.backends()) {
    for (const auto& server : backend->servers()) {
      rows.push_back(serverRow(view, *server, snapshot(*server, false)));
    }
    rows.push_back(backendRow(view, *backend));
  }
  return rows;
}

// HAProxy quotes a text holding a comma or a quote (doubling the quotes); line breaks become
// spaces so that each row stays on one line for line-based scripts.
void appendCsvText(std::string& out, const std::string& text) {
  bool quote = text.find_first_of(",\"") != std::string::npos;
  if (quote) {
    out += '"';
  }
  for (char ch : text) {
    if (ch == '\r' || ch == '\n') {
      out += ' ';
    } else if (ch == '"') {
      out += "\"\"";
    } else {
      out += ch;
    }
  }
  if (quote) {
    out += '"';
  }
}

void appendNumber(std::string& out, int64_t value) {
  char buffer[24];
  int n = std::snprintf(buffer, sizeof(buffer), "%" PRId64, value);
  out.append(buffer, static_cast<size_t>(n));
}

void appendJsonField(std::string& out, const char* name, int64_t value, bool& first) {
  if (!first) {
    out += ',';
  }
  first = false;
  out += jsonQuote(name);
  out += ':';
  appendNumber(out, value);
}

void appendJsonField(std::string& out, const char* name, std::string_view value, bool& first) {
  if (!first) {
    out += ',';
  }
  first = false;
  out += jsonQuote(name);
  out += ':';
  out += jsonQuote(value);
}

// `show info` lines: name and value (a number or a text).
struct InfoLine {
  const char* name;
  std::optional<int64_t> number;
  std::string text;
};

std::string uptimeText(int64_t seconds) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%" PRId64 "d %" PRId64 "h%02" PRId64 "m%02" PRId64 "s",
                seconds / 86400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
  return buffer;
}

std::vector<InfoLine> infoLines(const StatsView& view) {
  int64_t cur = 0;
  int64_t listeners = 0;
  uint64_t cum_conns = 0;
  uint64_t cum_req = 0;
  uint64_t bytes_out = 0;
  for (const auto& frontend : view.runtime.frontends()) {
    cur += load(frontend->counters.cur_conns);
    cum_conns += load(frontend->counters.total_conns);
    cum_req += load(frontend->counters.http_requests);
    bytes_out += load(frontend->counters.bytes_out);
    listeners += static_cast<int64_t>(frontend->cfg().listen.size());
  }
  RateTracker::Rate rate = rateOf(view, &view.runtime);
  int64_t uptime = secondsSince(view.process.start_ms, view.now_ms);
  rlimit files{};
  int64_t ulimit_n = getrlimit(RLIMIT_NOFILE, &files) == 0
                         ? static_cast<int64_t>(files.rlim_cur == RLIM_INFINITY
                                                    ? INT64_MAX
                                                    : static_cast<int64_t>(files.rlim_cur))
                         : 0;
  auto number = [](const char* name, int64_t value) { return InfoLine{name, value, ""}; };
  auto text = [](const char* name, std::string value) {
    return InfoLine{name, std::nullopt, std::move(value)};
  };
  return {
      text("Name", "tandem"),
      text("Version", view.process.version),
      number("Nbthread", view.process.threads),
      number("Nbproc", 1),
      number("Process_num", 1),
      number("Pid", view.process.pid),
      text("Uptime", uptimeText(uptime)),
      number("Uptime_sec", uptime),
      number("Ulimit-n", ulimit_n),
      number("CurrConns", cur),
      number("CumConns", static_cast<int64_t>(cum_conns)),
      number("CumReq", static_cast<int64_t>(cum_req)),
      number("ConnRate", static_cast<int64_t>(rate.sessions)),
      number("MaxConnRate", static_cast<int64_t>(rate.sessions_max)),
      number("SessRate", static_cast<int64_t>(rate.sessions)),
      number("MaxSessRate", static_cast<int64_t>(rate.sessions_max)),
      text("node", view.process.node),
      number("Stopping", 0),
      number("Jobs", cur + listeners),
      number("Listeners", listeners),
      number("TotalBytesOut", static_cast<int64_t>(bytes_out)),
      number("Start_time_sec", view.process.start_ms / 1000),
  };
}

void appendHrspArray(std::string& out, const Counters& c) {
  out += '[';
  for (size_t i = 0; i < 6; ++i) {
    if (i > 0) {
      out += ',';
    }
    appendNumber(out, static_cast<int64_t>(load(c.responses[i])));
  }
  out += ']';
}

void appendHistory(std::string& out, const StatsView& view, const void* object) {
  out += "\"history\":[";
  if (view.rates != nullptr) {
    bool first = true;
    for (const RateTracker::Point& point : view.rates->history(object)) {
      out += first ? "" : ",";
      first = false;
      out += "{\"t\":";
      appendNumber(out, point.time_ms);
      out += ",\"sess\":";
      appendNumber(out, static_cast<int64_t>(point.sessions));
      out += ",\"req\":";
      appendNumber(out, static_cast<int64_t>(point.requests));
      out += '}';
    }
  }
  out += ']';
}

// The counter runs the overview objects share. Each object keeps its own field order (the
// page reads the fields by name, but the output stays byte for byte what it was), so the
// helpers cover runs that stand in the same order everywhere they are used.

// scur and smax, slim where the object has a limit to show (0 shown as such), then stot.
void appendSessionFields(std::string& out, const Counters& c, std::optional<int64_t> slim,
                         bool& first) {
  appendJsonField(out, "scur", load(c.cur_conns), first);
  appendJsonField(out, "smax", load(c.max_conns), first);
  if (slim) {
    appendJsonField(out, "slim", *slim, first);
  }
  appendJsonField(out, "stot", static_cast<int64_t>(load(c.total_conns)), first);
}

// The session rate, and its peak where the object shows one.
void appendRateFields(std::string& out, RateTracker::Rate rate, bool with_max, bool& first) {
  appendJsonField(out, "rate", static_cast<int64_t>(rate.sessions), first);
  if (with_max) {
    appendJsonField(out, "rate_max", static_cast<int64_t>(rate.sessions_max), first);
  }
}

// Which errors an object counts: a frontend those of its clients, a backend or a server
// those met toward the servers.
enum class ErrorSide : uint8_t { kClient, kServer };

// bin and bout, the errors of that side, then the responses by class.
void appendTrafficFields(std::string& out, const Counters& c, ErrorSide side, bool& first) {
  appendJsonField(out, "bin", static_cast<int64_t>(load(c.bytes_in)), first);
  appendJsonField(out, "bout", static_cast<int64_t>(load(c.bytes_out)), first);
  if (side == ErrorSide::kClient) {
    appendJsonField(out, "dreq", static_cast<int64_t>(load(c.denied_requests)), first);
    appendJsonField(out, "ereq", static_cast<int64_t>(load(c.request_errors)), first);
  } else {
    appendJsonField(out, "econ", static_cast<int64_t>(load(c.connect_errors)), first);
    appendJsonField(out, "eresp", static_cast<int64_t>(load(c.response_errors)), first);
    appendJsonField(out, "wretr", static_cast<int64_t>(load(c.retries)), first);
    appendJsonField(out, "wredis", static_cast<int64_t>(load(c.redispatches)), first);
  }
  out += ",\"hrsp\":";
  appendHrspArray(out, c);
}

// The average times: connect and response always, queue and total where asked (a server's
// row on the page shows only the first two).
void appendTimerFields(std::string& out, const Counters& c, bool with_queue_and_total,
                       bool& first) {
  if (with_queue_and_total) {
    appendJsonField(out, "qtime", load(c.avg_queue_ms), first);
  }
  appendJsonField(out, "ctime", load(c.avg_connect_ms), first);
  appendJsonField(out, "rtime", load(c.avg_response_ms), first);
  if (with_queue_and_total) {
    appendJsonField(out, "ttime", load(c.avg_total_ms), first);
  }
}

const char* boolText(bool value) {
  return value ? "true" : "false";
}

const char* roleName(Role role) {
  switch (role) {
    case Role::kWriter:
      return "writer";
    case Role::kReader:
      return "reader";
    case Role::kNone:
      break;
  }
  return "";
}

bool hasReplicationCheck(const Backend& backend) {
  const std::optional<CheckConfig>& cfg = backend.cfg().check;
  return cfg && cfg->type == CheckType::kMysql && cfg->mysql_mode == MysqlCheckMode::kReplication;
}

void appendReplication(std::string& out, const ReplicationInfo& r) {
  bool first = true;
  out += '{';
  auto flag = [&out, &first](const char* name, bool value) {
    out += first ? "" : ",";
    first = false;
    out += jsonQuote(name);
    out += ':';
    out += boolText(value);
  };
  flag("known", r.known);
  flag("is_replica", r.is_replica);
  flag("read_only", r.read_only);
  flag("io_running", r.io_running);
  flag("sql_running", r.sql_running);
  out += ",\"lag_seconds\":";
  if (r.lag_seconds < 0) {
    out += "null";
  } else {
    appendNumber(out, r.lag_seconds);
  }
  appendJsonField(out, "last_io_error", r.last_io_error, first);
  appendJsonField(out, "last_sql_error", r.last_sql_error, first);
  appendJsonField(out, "gtid_executed", r.gtid_executed, first);
  appendJsonField(out, "gtid_received", r.gtid_received, first);
  flag("applied_all", r.applied_all_received);
  out += '}';
}

void appendServerOverview(std::string& out, const StatsView& view, const Server& server) {
  const Backend& backend = server.backend();
  bool replication = hasReplicationCheck(backend);
  ServerSnapshot s = snapshot(server, replication);
  const Counters& c = server.counters;
  RateTracker::Rate rate = rateOf(view, &server);
  bool first = true;
  out += '{';
  appendJsonField(out, "name", server.name(), first);
  appendJsonField(out, "address", server.cfg().address.str(), first);
  appendJsonField(out, "status", statusText(s), first);
  appendJsonField(out, "state", stateWord(s), first);
  appendJsonField(out, "admin", adminStateName(s.admin), first);
  appendJsonField(out, "op", s.up ? "UP" : "DOWN", first);
  out += ",\"going\":";
  const char* going = goingWord(s);
  out += going != nullptr ? jsonQuote(going) : "null";
  appendJsonField(out, "health", s.check.health, first);
  appendJsonField(out, "rise", s.rise, first);
  appendJsonField(out, "fall", s.fall, first);
  appendJsonField(out, "weight", s.weight, first);
  appendJsonField(out, "config_weight", server.cfg().weight, first);
  out += ",\"backup\":";
  out += boolText(server.cfg().backup);
  out += ",\"is_writer\":";
  out += boolText(backend.writer.load(std::memory_order_relaxed) == &server);
  out += ",\"reads_ok\":";
  out += boolText(server.reads_ok.load(std::memory_order_relaxed));
  out += ",\"check\":{";
  bool check_first = true;
  out += "\"enabled\":";
  out += boolText(s.check.enabled);
  check_first = false;
  appendJsonField(out, "status", s.check.status, check_first);
  appendJsonField(out, "reason", s.check.reason, check_first);
  out += ",\"duration_ms\":";
  if (s.check.duration_ms < 0) {
    out += "null";
  } else {
    appendNumber(out, s.check.duration_ms);
  }
  appendJsonField(out, "failed", static_cast<int64_t>(s.check.failed_checks), check_first);
  appendJsonField(out, "downs", static_cast<int64_t>(s.check.down_transitions), check_first);
  out += ",\"running\":";
  out += boolText(s.check.checking);
  out += '}';
  appendJsonField(out, "last_change_ms", lastChangeMs(s, view), first);
  appendJsonField(out, "downtime_ms", downtimeMs(s, view), first);
  appendSessionFields(out, c, server.cfg().maxconn, first);
  appendRateFields(out, rate, false, first);
  appendJsonField(out, "lbtot", static_cast<int64_t>(server.picks.load(std::memory_order_relaxed)),
                  first);
  appendTrafficFields(out, c, ErrorSide::kServer, first);
  appendTimerFields(out, c, false, first);
  out += ",\"replication\":";
  if (replication) {
    appendReplication(out, s.replication);
  } else {
    out += "null";
  }
  out += '}';
}

void appendBackendOverview(std::string& out, const StatsView& view, const Backend& backend) {
  const BackendConfig& cfg = backend.cfg();
  const Counters& c = backend.counters;
  RateTracker::Rate rate = rateOf(view, &backend);
  Row row = backendRow(view, backend);
  bool first = true;
  out += '{';
  appendJsonField(out, "name", cfg.name, first);
  appendJsonField(out, "mode", modeName(cfg.mode), first);
  appendJsonField(out, "balance", balanceName(cfg.balance), first);
  appendJsonField(out, "role", roleName(cfg.role), first);
  out += ",\"writer\":";
  const Server* writer = backend.writer.load(std::memory_order_relaxed);
  out += writer != nullptr ? jsonQuote(writer->name()) : "null";
  appendJsonField(out, "status", row[col("status")].text, first);
  appendJsonField(out, "act", row[col("act")].number, first);
  appendJsonField(out, "bck", row[col("bck")].number, first);
  appendSessionFields(out, c, std::nullopt, first);
  appendRateFields(out, rate, true, first);
  appendJsonField(out, "req_tot", static_cast<int64_t>(load(c.http_requests)), first);
  appendTrafficFields(out, c, ErrorSide::kServer, first);
  appendTimerFields(out, c, true, first);
  out += ',';
  appendHistory(out, view, &backend);
  out += ",\"servers\":[";
  bool first_server = true;
  for (const auto& server : backend.servers()) {
    out += first_server ? "" : ",";
    first_server = false;
    appendServerOverview(out, view, *server);
  }
  out += "]}";
}

void appendFrontendOverview(std::string& out, const StatsView& view, const Frontend& frontend) {
  const FrontendConfig& cfg = frontend.cfg();
  const Counters& c = frontend.counters;
  RateTracker::Rate rate = rateOf(view, &frontend);
  bool first = true;
  out += '{';
  appendJsonField(out, "name", cfg.name, first);
  appendJsonField(out, "mode", modeName(cfg.mode), first);
  out += ",\"listen\":[";
  for (size_t i = 0; i < cfg.listen.size(); ++i) {
    out += i > 0 ? "," : "";
    out += jsonQuote(cfg.listen[i].str());
  }
  out += ']';
  appendJsonField(out, "backend", cfg.backend, first);
  appendSessionFields(out, c, cfg.maxconn, first);
  appendRateFields(out, rate, true, first);
  appendJsonField(out, "req_rate", static_cast<int64_t>(rate.requests), first);
  appendJsonField(out, "req_rate_max", static_cast<int64_t>(rate.requests_max), first);
  appendJsonField(out, "req_tot", static_cast<int64_t>(load(c.http_requests)), first);
  appendTrafficFields(out, c, ErrorSide::kClient, first);
  out += ',';
  appendHistory(out, view, &frontend);
  out += '}';
}

// Length of the valid UTF-8 sequence starting at text[i], or 0 if it is not one.
size_t utf8Length(std::string_view text, size_t i) {
  auto byte = [&text](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char lead = byte(i);
  size_t length = 0;
  uint32_t min = 0;
  uint32_t cp = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    cp = lead & 0x1F;
    min = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    cp = lead & 0x0F;
    min = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    cp = lead & 0x07;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + length > text.size()) {
    return 0;
  }
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return length;
}

}  // namespace

// --- RateTracker ---

RateTracker::RateTracker(const Runtime& runtime) {
  for (const auto& frontend : runtime.frontends()) {
    entries_[frontend.get()].counters = &frontend->counters;
  }
  for (const auto& backend : runtime.backends()) {
    entries_[backend.get()].counters = &backend->counters;
    for (const auto& server : backend->servers()) {
      entries_[server.get()].counters = &server->counters;
    }
  }
  // The whole process (`show info`'s SessRate), keyed by the runtime: the frontends' sum.
  Entry& process = entries_[&runtime];
  process.counters = nullptr;
  for (const auto& frontend : runtime.frontends()) {
    process_parts_.push_back(&frontend->counters);
  }
}

void RateTracker::sample(int64_t now_ms) {
  int64_t elapsed = now_ms - last_ms_;
  bool first = last_ms_ == 0;
  if (!first && elapsed <= 0) {
    return;  // a clock step back or a second call in the same millisecond
  }
  last_ms_ = now_ms;
  for (auto& [key, entry] : entries_) {
    uint64_t sessions = 0;
    uint64_t requests = 0;
    if (entry.counters != nullptr) {
      sessions = load(entry.counters->total_conns);
      requests = load(entry.counters->http_requests);
    } else {
      for (const Counters* part : process_parts_) {
        sessions += load(part->total_conns);
        requests += load(part->http_requests);
      }
    }
    if (!first) {
      // Rounded to the nearest per-second value: a sample a little late still reads right.
      auto per_second = [elapsed](uint64_t now, uint64_t before) -> uint64_t {
        uint64_t delta = now > before ? now - before : 0;
        return (delta * 1000 + static_cast<uint64_t>(elapsed) / 2) / static_cast<uint64_t>(elapsed);
      };
      entry.rate.sessions = per_second(sessions, entry.last_sessions);
      entry.rate.requests = per_second(requests, entry.last_requests);
      entry.rate.sessions_max = std::max(entry.rate.sessions_max, entry.rate.sessions);
      entry.rate.requests_max = std::max(entry.rate.requests_max, entry.rate.requests);
      entry.history.push_back(Point{now_ms, entry.rate.sessions, entry.rate.requests});
      if (entry.history.size() > kHistorySeconds) {
        entry.history.pop_front();
      }
    }
    entry.last_sessions = sessions;
    entry.last_requests = requests;
  }
}

RateTracker::Rate RateTracker::rate(const void* object) const {
  auto it = entries_.find(object);
  return it == entries_.end() ? Rate{} : it->second.rate;
}

const std::deque<RateTracker::Point>& RateTracker::history(const void* object) const {
  static const std::deque<Point> kEmpty;
  auto it = entries_.find(object);
  return it == entries_.end() ? kEmpty : it->second.history;
}

// --- Renderers ---

std::string serverStatusText(const Server& server) {
  return statusText(snapshot(server, false));
}

std::string renderStatsCsv(const StatsView& view) {
  std::string out = "# ";
  for (const char* name : kColumns) {
    out += name;
    out += ',';
  }
  out += '\n';
  for (const Row& row : buildRows(view)) {
    for (size_t i = 0; i < kColumnCount; ++i) {
      const Field& field = row[i];
      if (field.kind == Field::Kind::kNumber) {
        appendNumber(out, field.number);
      } else if (field.kind == Field::Kind::kText) {
        appendCsvText(out, field.text);
      }
      out += ',';
    }
    out += '\n';
  }
  return out;
}

std::string renderStatsJson(const StatsView& view) {
  std::string out = "{\"info\":{";
  bool first = true;
  for (const InfoLine& line : infoLines(view)) {
    if (line.number) {
      appendJsonField(out, line.name, *line.number, first);
    } else {
      appendJsonField(out, line.name, line.text, first);
    }
  }
  out += "},\"stats\":[";
  bool first_row = true;
  for (const Row& row : buildRows(view)) {
    out += first_row ? "{" : ",{";
    first_row = false;
    bool first_field = true;
    for (size_t i = 0; i < kColumnCount; ++i) {
      const Field& field = row[i];
      if (field.kind == Field::Kind::kNumber) {
        appendJsonField(out, kColumns[i], field.number, first_field);
      } else if (field.kind == Field::Kind::kText) {
        appendJsonField(out, kColumns[i], field.text, first_field);
      }
    }
    out += '}';
  }
  out += "]}\n";
  return out;
}

std::string renderShowInfo(const StatsView& view) {
  std::string out;
  for (const InfoLine& line : infoLines(view)) {
    out += line.name;
    out += ": ";
    if (line.number) {
      appendNumber(out, *line.number);
    } else {
      // One value per line, whatever the host name or path holds.
      for (char ch : line.text) {
        out += (ch == '\n' || ch == '\r') ? ' ' : ch;
      }
    }
    out += '\n';
  }
  return out;
}

bool renderServersState(const StatsView& view, const std::string& backend, std::string* out,
                        std::string* error) {
  const Backend* only = nullptr;
  if (!backend.empty()) {
    only = view.runtime.findBackend(backend);
    if (only == nullptr) {
      *error = "Can't find backend.";
      return false;
    }
  }
  std::string text =
      "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
      "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
      "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
      "srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr "
      "srv_agent_port\n";
  for (const auto& b : view.runtime.backends()) {
    if (only != nullptr && b.get() != only) {
      continue;
    }
    for (const auto& server : b->servers()) {
      ServerSnapshot s = snapshot(*server, false);
      // srv_op_state: 0 stopped, 2 running. srv_admin_state: HAProxy's flags, 0x01 forced
      // maintenance, 0x08 forced drain.
      int admin = s.admin == AdminState::kMaint ? 0x01 : s.admin == AdminState::kDrain ? 0x08 : 0;
      // srv_check_result: 0 unknown, 2 failed, 3 passed. srv_check_state: 0x02 configured,
      // 0x04 enabled.
      int result = 0;
      if (s.check.duration_ms >= 0) {
        result = checkPassed(s.check.status) ? 3 : 2;
      }
      int check_state = 0;
      if (b->cfg().check && server->cfg().check) {
        check_state = 0x02 | (s.check.enabled ? 0x04 : 0);
      }
      std::string ip = addressOnly(*server);
      auto field = [&text](const auto& value) {
        if constexpr (std::is_arithmetic_v<std::decay_t<decltype(value)>>) {
          text += std::to_string(value);
        } else {
          text += value;
        }
        text += ' ';
      };
      field(backendId(view, *b));
      field(b->name());
      field(server->id());
      field(server->name());
      field(ip.empty() ? std::string("-") : ip);
      field(s.up ? 2 : 0);
      field(admin);
      field(s.weight);
      field(server->cfg().weight);
      field(secondsSince(lastChangeMs(s, view), view.now_ms));
      field(checkStatusNumber(s.check.status));
      field(result);
      field(s.check.health);
      field(check_state);
      text += "0 0 0 ";  // srv_agent_state bk_f_forced_id srv_f_forced_id
      field(server->byName() ? server->cfg().address.host : std::string("-"));
      field(static_cast<unsigned>(server->cfg().address.port));
      text += "- 0 0 - - 0\n";  // srvrecord, no SSL, no check or agent address or port
    }
  }
  *out = std::move(text);
  return true;
}

std::string renderOverviewJson(const StatsView& view, int64_t refresh_ms) {
  std::string out = "{";
  bool first = true;
  appendJsonField(out, "time_ms", view.now_ms, first);
  appendJsonField(out, "refresh_ms", refresh_ms, first);
  appendJsonField(out, "version", view.process.version, first);
  appendJsonField(out, "pid", view.process.pid, first);
  appendJsonField(out, "uptime_s", secondsSince(view.process.start_ms, view.now_ms), first);
  appendJsonField(out, "node", view.process.node, first);
  out += ",\"frontends\":[";
  bool first_item = true;
  for (const auto& frontend : view.runtime.frontends()) {
    out += first_item ? "" : ",";
    first_item = false;
    appendFrontendOverview(out, view, *frontend);
  }
  out += "],\"backends\":[";
  first_item = true;
  for (const auto& backend : view.runtime.backends()) {
    out += first_item ? "" : ",";
    first_item = false;
    appendBackendOverview(out, view, *backend);
  }
  out += "]}\n";
  return out;
}

std::string renderLogsJson(uint64_t after_seq, size_t max,
                           const std::vector<std::string>& access_lines) {
  std::vector<LogRecord> records = recentLogRecords(after_seq, max);
  uint64_t last_seq = after_seq;
  std::string out = "{\"records\":[";
  bool first_record = true;
  for (const LogRecord& record : records) {
    out += first_record ? "{" : ",{";
    first_record = false;
    bool first = true;
    appendJsonField(out, "seq", static_cast<int64_t>(record.seq), first);
    appendJsonField(out, "time_ms", record.time_ms, first);
    appendJsonField(out, "level", logLevelName(record.level), first);
    appendJsonField(out, "text", record.text, first);
    out += '}';
    last_seq = std::max(last_seq, record.seq);
  }
  out += "],\"last_seq\":";
  appendNumber(out, static_cast<int64_t>(last_seq));
  out += ",\"access\":[";
  size_t skip = access_lines.size() > max ? access_lines.size() - max : 0;
  for (size_t i = skip; i < access_lines.size(); ++i) {
    out += i > skip ? "," : "";
    out += jsonQuote(access_lines[i]);
  }
  out += "]}\n";
  return out;
}

// Control characters are escaped; bytes that are not valid UTF-8 (a server's reason phrase,
// a client's request line) become U+FFFD, so that the output always parses.
std::string jsonQuote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  size_t i = 0;
  while (i < text.size()) {
    auto ch = static_cast<unsigned char>(text[i]);
    if (ch >= 0x80) {
      size_t length = utf8Length(text, i);
      if (length == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(text.substr(i, length));
        i += length;
      }
      continue;
    }
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (ch < 0x20 || ch == 0x7F) {
          char buffer[8];
          std::snprintf(buffer, sizeof(buffer), "\\u%04x", ch);
          out += buffer;
        } else {
          out += static_cast<char>(ch);
        }
    }
    ++i;
  }
  out += '"';
  return out;
}

}  // namespace tandem
