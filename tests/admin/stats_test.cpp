// The admin renderers over a real Runtime built from a config (no workers run): HAProxy's
// CSV (columns byte for byte against HAProxy 2.6's list, values in the right columns,
// status words), the JSON views, `show info`, `show servers state` and the rate tracker.
#include "admin/stats.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/log.h"
#include "tests/admin/admin_test_support.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Three frontends; an HTTP backend with a check and a backup, a TCP one and a MySQL writer
// pair.
std::string statsConfig() {
  return frontendToml("http-in", 18090, "web", "mode = \"http\"\nmaxconn = 100\n") +
         frontendToml("tcp-in", 18093, "plain") + frontendToml("db-in", 18094, "db") + R"(
[[backend]]
name = "web"
mode = "http"
cookie = "SERVERID"
[backend.check]
type = "http"
rise = 2
fall = 3
)" + serverToml("web1", 18091) +
         serverToml("web2", 18092, "maxconn = 50\nweight = 3\n") +
         serverToml("web3", 18095, "backup = true\n") + tcpBackendToml("plain", "t1", 18096) +
         replicationBackendToml("db", "writer", 13306, 13307);
}

// --- a small CSV reader (HAProxy's quoting: "..." with doubled quotes) ---

std::vector<std::string> splitCsvLine(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char ch = line[i];
    if (quoted) {
      if (ch == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (ch == '"') {
        quoted = false;
      } else {
        field += ch;
      }
    } else if (ch == '"') {
      quoted = true;
    } else if (ch == ',') {
      fields.push_back(field);
      field.clear();
    } else {
      field += ch;
    }
  }
  fields.push_back(field);  // after the trailing comma: empty
  return fields;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    out.push_back(line);
  }
  return out;
}

struct Csv {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;

  explicit Csv(const std::string& text) {
    std::vector<std::string> all = lines(text);
    header = splitCsvLine(all.at(0).substr(2));  // after "# "
    for (size_t i = 1; i < all.size(); ++i) {
      rows.push_back(splitCsvLine(all[i]));
    }
  }
  size_t column(const std::string& name) const {
    for (size_t i = 0; i < header.size(); ++i) {
      if (header[i] == name) {
        return i;
      }
    }
    ADD_FAILURE() << "no column " << name;
    return 0;
  }
  const std::vector<std::string>& row(const std::string& px, const std::string& sv) const {
    for (const auto& r : rows) {
      if (r[0] == px && r[1] == sv) {
        return r;
      }
    }
    ADD_FAILURE() << "no row " << px << "/" << sv;
    static const std::vector<std::string> kNone(200);
    return kNone;
  }
  std::string get(const std::string& px, const std::string& sv, const std::string& name) const {
    return row(px, sv).at(column(name));
  }
};

// --- a minimal JSON syntax checker (RFC 8259 grammar, no semantics) ---

class JsonChecker {
 public:
  explicit JsonChecker(const std::string& text) : s_(text) {}
  bool valid() {
    skip();
    if (!value()) {
      return false;
    }
    skip();
    return i_ == s_.size();
  }

 private:
  void skip() {
    while (i_ < s_.size() &&
           (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) {
      ++i_;
    }
  }
  bool literal(const char* word) {
    std::string w(word);
    if (s_.compare(i_, w.size(), w) != 0) {
      return false;
    }
    i_ += w.size();
    return true;
  }
  bool value() {
    if (i_ >= s_.size()) {
      return false;
    }
    switch (s_[i_]) {
      case '{':
        return object();
      case '[':
        return array();
      case '"':
        return string();
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return number();
    }
  }
  bool object() { return sequence('}', true); }
  bool array() { return sequence(']', false); }
  // An object's or an array's items up to `close`; an object's each behind a "name":.
  bool sequence(char close, bool named) {
    ++i_;
    skip();
    if (i_ < s_.size() && s_[i_] == close) {
      ++i_;
      return true;
    }
    while (true) {
      skip();
      if (named && !name()) {
        return false;
      }
      if (!value()) {
        return false;
      }
      skip();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      return i_ < s_.size() && s_[i_++] == close;
    }
  }
  // A member's name and its colon, and the space after.
  bool name() {
    if (i_ >= s_.size() || s_[i_] != '"' || !string()) {
      return false;
    }
    skip();
    if (i_ >= s_.size() || s_[i_++] != ':') {
      return false;
    }
    skip();
    return true;
  }
  bool string() {
    ++i_;
    while (i_ < s_.size()) {
      auto ch = static_cast<unsigned char>(s_[i_]);
      if (ch == '"') {
        ++i_;
        return true;
      }
      if (ch < 0x20) {
        return false;
      }
      if (ch == '\\') {
        ++i_;
        if (i_ >= s_.size()) {
          return false;
        }
        char e = s_[i_];
        if (e == 'u') {
          for (int k = 1; k <= 4; ++k) {
            if (i_ + k >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_ + k]))) {
              return false;
            }
          }
          i_ += 4;
        } else if (std::string("\"\\/bfnrt").find(e) == std::string::npos) {
          return false;
        }
      }
      ++i_;
    }
    return false;
  }
  bool number() {
    size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') {
      ++i_;
    }
    size_t digits = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
      ++i_;
    }
    if (i_ == digits || (s_[digits] == '0' && i_ - digits > 1)) {
      return false;
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      size_t frac = i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
        ++i_;
      }
      if (i_ == frac) {
        return false;
      }
    }
    return i_ > start;
  }

  const std::string& s_;
  size_t i_ = 0;
};

bool validJson(const std::string& text) {
  return JsonChecker(text).valid();
}

TEST(StatsJsonCheckerTest, TellsValidFromInvalid) {
  EXPECT_TRUE(validJson(R"({"a":[1,-2,3.5,"x\n\u00e9",true,false,null],"b":{}})"));
  EXPECT_FALSE(validJson(R"({"a":1,})"));
  EXPECT_FALSE(validJson(R"({"a":01})"));
  EXPECT_FALSE(validJson("{\"a\":\"raw\nnewline\"}"));
  EXPECT_FALSE(validJson(R"({"a":1} x)"));
}

// --- fixture ---

class StatsTest : public AdminTest {
 protected:
  StatsTest() : AdminTest(statsConfig(), "stats.toml") {
    process_.pid = 1234;
    process_.threads = 4;
    process_.config_path = "/etc/tandem/tandem.toml";
  }

  void setCheck(Server& s, bool enabled, int health, const std::string& status = "L4OK",
                const std::string& reason = "Layer4 check passed") {
    setCheckInfo(s, enabled, health, status, reason, 1);
  }
  void enableAllChecks() {
    for (const auto& b : runtime_.backends()) {
      if (b->cfg().check) {
        for (const auto& s : b->servers()) {
          setCheck(*s, true, b->cfg().check->rise + b->cfg().check->fall - 1);
        }
      }
    }
  }
};

std::string referenceHeader() {
  std::filesystem::path file = std::filesystem::path(__FILE__).parent_path().parent_path() /
                               "data" / "haproxy-2.6-stats-csv-columns.txt";
  std::ifstream in(file);
  EXPECT_TRUE(in.good()) << file;
  std::string header = "# ";
  std::string name;
  while (std::getline(in, name)) {
    header += name + ",";
  }
  return header + "\n";
}

TEST_F(StatsTest, CsvHeaderIsHaproxys) {
  std::string csv = renderStatsCsv(view());
  std::string expected = referenceHeader();
  EXPECT_EQ(csv.substr(0, csv.find('\n') + 1), expected);
  EXPECT_EQ(Csv(csv).header.size(), 129u);  // 128 columns and the empty one after the last ","
}

TEST_F(StatsTest, CsvRowsComeInHaproxysOrderWithEveryColumn) {
  enableAllChecks();
  setCheck(server("web", "web1"), true, 4, "L7STS", "Layer7 wrong status: 503, \"down\"\nnow");
  Csv csv(renderStatsCsv(view()));
  std::vector<std::string> order;
  for (const auto& row : csv.rows) {
    EXPECT_EQ(row.size(), csv.header.size()) << row[0] << "/" << row[1];
    EXPECT_EQ(row.back(), "");  // each row ends with a comma
    order.push_back(row[0] + "/" + row[1]);
  }
  EXPECT_EQ(order,
            (std::vector<std::string>{"http-in/FRONTEND", "tcp-in/FRONTEND", "db-in/FRONTEND",
                                      "web/web1", "web/web2", "web/web3", "web/BACKEND", "plain/t1",
                                      "plain/BACKEND", "db/db1", "db/db2", "db/BACKEND"}));
}

TEST_F(StatsTest, CsvValuesLandInTheirColumns) {
  enableAllChecks();
  Server& web1 = server("web", "web1");
  web1.counters.cur_conns = 3;
  web1.counters.max_conns = 9;
  web1.counters.total_conns = 120;
  web1.counters.bytes_in = 1234;
  web1.counters.bytes_out = 5678;
  web1.counters.connect_errors = 4;
  web1.counters.retries = 5;
  web1.counters.redispatches = 6;
  web1.counters.http_requests = 102;
  web1.counters.responses[1] = 100;
  web1.counters.responses[4] = 2;
  web1.counters.avg_connect_ms = 11;
  web1.counters.avg_response_ms = 22;
  web1.picks = 77;
  {
    std::lock_guard<std::mutex> lock(web1.check_mutex);
    web1.check_info.status = "L7OK";
    web1.check_info.reason = "Layer7 check passed: 200 OK";
    web1.check_info.duration_ms = 3;
    web1.check_info.failed_checks = 7;
    web1.check_info.down_transitions = 2;
    web1.check_info.last_change_ms = kNow - 30000;
    web1.check_info.downtime_ms = 5000;
  }
  Frontend& http_in = *runtime_.frontends()[0];
  http_in.counters.cur_conns = 2;
  http_in.counters.denied_requests = 8;
  http_in.counters.request_errors = 9;
  runtime_.findBackend("web")->counters.total_conns = 130;

  Csv csv(renderStatsCsv(view()));
  EXPECT_EQ(csv.get("web", "web1", "scur"), "3");
  EXPECT_EQ(csv.get("web", "web1", "smax"), "9");
  EXPECT_EQ(csv.get("web", "web1", "slim"), "");
  EXPECT_EQ(csv.get("web", "web2", "slim"), "50");
  EXPECT_EQ(csv.get("web", "web1", "stot"), "120");
  EXPECT_EQ(csv.get("web", "web1", "bin"), "1234");
  EXPECT_EQ(csv.get("web", "web1", "bout"), "5678");
  EXPECT_EQ(csv.get("web", "web1", "econ"), "4");
  EXPECT_EQ(csv.get("web", "web1", "wretr"), "5");
  EXPECT_EQ(csv.get("web", "web1", "wredis"), "6");
  EXPECT_EQ(csv.get("web", "web1", "status"), "UP");
  EXPECT_EQ(csv.get("web", "web1", "weight"), "1");
  EXPECT_EQ(csv.get("web", "web2", "weight"), "3");
  EXPECT_EQ(csv.get("web", "web1", "act"), "1");
  EXPECT_EQ(csv.get("web", "web3", "bck"), "1");
  EXPECT_EQ(csv.get("web", "web1", "chkfail"), "7");
  EXPECT_EQ(csv.get("web", "web1", "chkdown"), "2");
  EXPECT_EQ(csv.get("web", "web1", "lastchg"), "30");
  EXPECT_EQ(csv.get("web", "web1", "downtime"), "5");
  EXPECT_EQ(csv.get("web", "web1", "iid"), "4");  // after the three frontends
  EXPECT_EQ(csv.get("web", "web2", "sid"), "2");
  EXPECT_EQ(csv.get("web", "web1", "lbtot"), "77");
  EXPECT_EQ(csv.get("web", "web1", "type"), "2");
  EXPECT_EQ(csv.get("web", "web1", "check_status"), "L7OK");
  EXPECT_EQ(csv.get("web", "web1", "check_code"), "200");
  EXPECT_EQ(csv.get("web", "web1", "check_duration"), "3");
  EXPECT_EQ(csv.get("web", "web1", "last_chk"), "Layer7 check passed: 200 OK");
  EXPECT_EQ(csv.get("web", "web1", "check_desc"), "Layer7 check passed");
  EXPECT_EQ(csv.get("web", "web1", "check_rise"), "2");
  EXPECT_EQ(csv.get("web", "web1", "check_fall"), "3");
  EXPECT_EQ(csv.get("web", "web1", "check_health"), "4");
  EXPECT_EQ(csv.get("web", "web1", "hrsp_2xx"), "100");
  EXPECT_EQ(csv.get("web", "web1", "hrsp_5xx"), "2");
  EXPECT_EQ(csv.get("web", "web1", "req_tot"), "102");
  EXPECT_EQ(csv.get("web", "web1", "ctime"), "11");
  EXPECT_EQ(csv.get("web", "web1", "rtime"), "22");
  EXPECT_EQ(csv.get("web", "web1", "addr"), "127.0.0.1:18091");
  EXPECT_EQ(csv.get("web", "web1", "mode"), "http");
  EXPECT_EQ(csv.get("web", "web1", "agent_status"), "");
  EXPECT_EQ(csv.get("web", "web1", "-"), "");

  EXPECT_EQ(csv.get("http-in", "FRONTEND", "status"), "OPEN");
  EXPECT_EQ(csv.get("http-in", "FRONTEND", "scur"), "2");
  EXPECT_EQ(csv.get("http-in", "FRONTEND", "slim"), "100");
  EXPECT_EQ(csv.get("http-in", "FRONTEND", "dreq"), "8");
  EXPECT_EQ(csv.get("http-in", "FRONTEND", "ereq"), "9");
  EXPECT_EQ(csv.get("http-in", "FRONTEND", "type"), "0");
  EXPECT_EQ(csv.get("http-in", "FRONTEND", "hrsp_2xx"), "0");
  EXPECT_EQ(csv.get("tcp-in", "FRONTEND", "hrsp_2xx"), "");  // TCP: no HTTP columns

  EXPECT_EQ(csv.get("web", "BACKEND", "stot"), "130");
  EXPECT_EQ(csv.get("web", "BACKEND", "status"), "UP");
  EXPECT_EQ(csv.get("web", "BACKEND", "weight"), "4");  // web1 + web2, not the backup
  EXPECT_EQ(csv.get("web", "BACKEND", "act"), "2");
  EXPECT_EQ(csv.get("web", "BACKEND", "bck"), "1");
  EXPECT_EQ(csv.get("web", "BACKEND", "lbtot"), "77");
  EXPECT_EQ(csv.get("web", "BACKEND", "type"), "1");
  EXPECT_EQ(csv.get("web", "BACKEND", "cookie"), "SERVERID");
  EXPECT_EQ(csv.get("web", "BACKEND", "algo"), "roundrobin");

  EXPECT_EQ(csv.get("plain", "t1", "status"), "no check");
  EXPECT_EQ(csv.get("plain", "t1", "check_status"), "");
  EXPECT_EQ(csv.get("plain", "t1", "chkfail"), "");
  EXPECT_EQ(csv.get("plain", "t1", "req_tot"), "");
}

TEST_F(StatsTest, BackendIsDownWhenNoServerTakesTraffic) {
  for (const auto& s : runtime_.findBackend("web")->servers()) {
    s->up = false;
  }
  Csv csv(renderStatsCsv(view()));
  EXPECT_EQ(csv.get("web", "BACKEND", "status"), "DOWN");
  EXPECT_EQ(csv.get("web", "BACKEND", "act"), "0");
}

TEST_F(StatsTest, CheckReasonsStayInsideTheirField) {
  enableAllChecks();
  setCheck(server("web", "web2"), true, 4, "L7STS", "Layer7 wrong status: 503, \"busy\"\r\nnow");
  std::string text = renderStatsCsv(view());
  Csv csv(text);
  EXPECT_EQ(lines(text).size(), 13u);  // header + 12 rows: no line break leaked
  EXPECT_EQ(csv.get("web", "web2", "last_chk"), "Layer7 wrong status: 503, \"busy\"  now");
  EXPECT_EQ(csv.get("web", "web2", "check_code"), "503");
  EXPECT_EQ(csv.row("web", "web2").size(), csv.header.size());
}

TEST_F(StatsTest, StatusWordsFollowHaproxy) {
  Server& web1 = server("web", "web1");  // rise 2, fall 3: health 0..4
  struct Case {
    bool up;
    AdminState admin;
    int weight;
    bool enabled;
    int health;
    const char* want;
  };
  const Case cases[] = {
      {true, AdminState::kReady, 1, true, 4, "UP"},
      {true, AdminState::kReady, 1, true, 3, "UP 2/3"},  // one failure: 2 more take it down
      {true, AdminState::kReady, 1, true, 2, "UP 1/3"},  // the next failure takes it down
      {false, AdminState::kReady, 1, true, 0, "DOWN"},
      {false, AdminState::kReady, 1, true, 1, "DOWN 1/2"},  // one success of rise 2
      {true, AdminState::kMaint, 1, true, 4, "MAINT"},
      {false, AdminState::kMaint, 1, true, 0, "MAINT"},
      {true, AdminState::kDrain, 1, true, 4, "DRAIN"},
      {true, AdminState::kDrain, 1, true, 3, "DRAIN 2/3"},
      {false, AdminState::kDrain, 1, true, 0, "DOWN"},
      {true, AdminState::kReady, 0, true, 4, "DRAIN"},  // weight 0
      {true, AdminState::kReady, 1, false, 2, "no check"},
      {false, AdminState::kReady, 1, false, 0, "DOWN"},
  };
  for (const Case& c : cases) {
    web1.up = c.up;
    web1.admin = c.admin;
    web1.weight = c.weight;
    setCheck(web1, c.enabled, c.health);
    EXPECT_EQ(serverStatusText(web1), c.want)
        << "up " << c.up << " admin " << adminStateName(c.admin) << " weight " << c.weight
        << " enabled " << c.enabled << " health " << c.health;
  }
  EXPECT_EQ(serverStatusText(server("plain", "t1")), "no check");
  server("plain", "t1").up = false;
  EXPECT_EQ(serverStatusText(server("plain", "t1")), "DOWN");
}

TEST(StatsResolutionTest, AServerWithoutAddressIsInResolutionMaintenance) {
  Runtime runtime(loadConfigString(R"(
[[frontend]]
name = "in"
listen = "127.0.0.1:18097"
backend = "web"
[[backend]]
name = "web"
[[backend.server]]
name = "named"
address = "web1.invalid:80"
)",
                                   "resolution.toml"));
  ProcessInfo process;
  const Server& named = *runtime.findBackend("web")->findServer("named");
  ASSERT_FALSE(named.hasAddr());  // a name is looked up later, by the DNS refresher
  EXPECT_EQ(serverStatusText(named), "MAINT (resolution)");
  StatsView view{runtime, process, nullptr, 0};
  EXPECT_THAT(renderOverviewJson(view, 1000),
              HasSubstr(R"j("status":"MAINT (resolution)","state":"DOWN")j"));
  std::string out;
  std::string error;
  ASSERT_TRUE(renderServersState(view, "web", &out, &error));
  EXPECT_THAT(out, HasSubstr(" named - 2 0 1 1 0 1 0 0 0 0 0 0 web1.invalid 80 - "));
}

TEST_F(StatsTest, CheckInProgressIsStarred) {
  enableAllChecks();
  Server& web1 = server("web", "web1");
  {
    std::lock_guard<std::mutex> lock(web1.check_mutex);
    web1.check_info.checking = true;
  }
  EXPECT_EQ(Csv(renderStatsCsv(view())).get("web", "web1", "check_status"), "* L4OK");
}

TEST_F(StatsTest, StatsJsonHasTheSameRows) {
  enableAllChecks();
  server("web", "web1").counters.cur_conns = 3;
  setCheck(server("web", "web2"), true, 4, "L7STS", "bad \"status\"\n\x01\xff");
  std::string json = renderStatsJson(view());
  EXPECT_TRUE(validJson(json)) << json;
  EXPECT_THAT(json, HasSubstr(R"("info":{"Name":"tandem","Version":"0.1.0")"));
  EXPECT_THAT(json, HasSubstr(R"({"pxname":"web","svname":"web1","scur":3,)"));
  EXPECT_THAT(json, HasSubstr(R"("status":"no check")"));
  EXPECT_THAT(json, HasSubstr(R"("last_chk":"bad \"status\"\n\u0001\ufffd")"));
  // Columns HAProxy leaves empty are absent: t1 has no check columns.
  size_t t1 = json.find(R"("svname":"t1")");
  size_t end = json.find('}', t1);
  ASSERT_NE(t1, std::string::npos);
  EXPECT_THAT(json.substr(t1, end - t1), Not(HasSubstr("check_status")));
  EXPECT_THAT(json.substr(t1, end - t1), Not(HasSubstr("\"-\"")));
}

TEST_F(StatsTest, ShowInfoPrintsHaproxysFields) {
  runtime_.frontends()[0]->counters.cur_conns = 5;
  runtime_.frontends()[1]->counters.total_conns = 70;
  runtime_.frontends()[0]->counters.http_requests = 33;
  std::string info = renderShowInfo(view());
  EXPECT_EQ(info.substr(0, 14), "Name: tandem\nV");
  for (const char* want : {"Version: 0.1.0\n", "Pid: 1234\n", "Uptime_sec: 42\n",
                           "Uptime: 0d 0h00m42s\n", "Nbthread: 4\n", "CurrConns: 5\n",
                           "CumConns: 70\n", "CumReq: 33\n", "node: lb1\n", "Listeners: 3\n"}) {
    EXPECT_THAT(info, HasSubstr(want));
  }
  for (const std::string& line : lines(info)) {
    EXPECT_THAT(line, testing::MatchesRegex("[A-Za-z_-]+: .*"));
  }
}

TEST_F(StatsTest, ServersStateIsVersionOne) {
  enableAllChecks();
  Server& web2 = server("web", "web2");
  web2.up = false;
  web2.admin = AdminState::kDrain;
  setCheck(web2, true, 1, "L4CON", "connection refused");
  std::string out;
  std::string error;
  ASSERT_TRUE(renderServersState(view(), "", &out, &error));
  std::vector<std::string> all = lines(out);
  ASSERT_EQ(all.size(), 2u + 3 + 1 + 2);
  EXPECT_EQ(all[0], "1");
  EXPECT_EQ(all[1],
            "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
            "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
            "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
            "srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr "
            "srv_agent_addr srv_agent_port");
  EXPECT_EQ(all[2], "4 web 1 web1 127.0.0.1 2 0 1 1 42 6 3 4 6 0 0 0 - 18091 - 0 0 - - 0");
  EXPECT_EQ(all[3], "4 web 2 web2 127.0.0.1 0 8 3 3 42 8 2 1 6 0 0 0 - 18092 - 0 0 - - 0");
  EXPECT_EQ(all[5], "5 plain 1 t1 127.0.0.1 2 0 1 1 42 1 0 0 0 0 0 0 - 18096 - 0 0 - - 0");
  for (size_t i = 2; i < all.size(); ++i) {
    EXPECT_EQ(std::count(all[i].begin(), all[i].end(), ' '), 24) << all[i];
  }
}

TEST_F(StatsTest, ServersStateOfOneBackend) {
  std::string out;
  std::string error;
  ASSERT_TRUE(renderServersState(view(), "db", &out, &error));
  std::vector<std::string> all = lines(out);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_THAT(all[2], testing::StartsWith("6 db 1 db1 "));
  EXPECT_THAT(all[3], testing::StartsWith("6 db 2 db2 "));
}

TEST_F(StatsTest, ServersStateOfAnUnknownBackendIsAnError) {
  std::string out = "untouched";
  std::string error;
  EXPECT_FALSE(renderServersState(view(), "nope", &out, &error));
  EXPECT_EQ(error, "Can't find backend.");
  EXPECT_EQ(out, "untouched");
}

TEST_F(StatsTest, OverviewShowsWriterReplicationAndStates) {
  enableAllChecks();
  Backend& db = *runtime_.findBackend("db");
  Server& db1 = server("db", "db1");
  Server& db2 = server("db", "db2");
  db.writer = &db1;
  setStoppedReplica(db2, 5);
  {
    std::lock_guard<std::mutex> lock(db2.check_mutex);
    db2.replication.last_sql_error = "Error 1062: \"dup\"";
    db2.replication.gtid_executed = "0-1-5,1-2-7";
  }
  setCheck(server("web", "web1"), true, 3);  // going down
  setCheck(server("web", "web2"), true, 1);
  server("web", "web2").up = false;  // going up

  std::string json = renderOverviewJson(view(), 2000);
  EXPECT_TRUE(validJson(json)) << json;
  EXPECT_THAT(json, HasSubstr(R"({"time_ms":1796300000000,"refresh_ms":2000,"version":"0.1.0",)"
                              R"("pid":1234,"uptime_s":42,"node":"lb1","frontends":[)"));
  EXPECT_THAT(json, HasSubstr(R"("name":"http-in","mode":"http","listen":["127.0.0.1:18090"],)"
                              R"("backend":"web")"));
  EXPECT_THAT(json, HasSubstr(R"("role":"writer","writer":"db1")"));
  EXPECT_THAT(json, HasSubstr(R"("role":"","writer":null)"));
  EXPECT_THAT(json, HasSubstr(R"("name":"db1","address":"127.0.0.1:13306")"));
  EXPECT_THAT(json, HasSubstr(R"("is_writer":true)"));
  EXPECT_THAT(json, HasSubstr(R"("replication":{"known":true,"is_replica":true,)"
                              R"("read_only":true,"io_running":true,"sql_running":false,)"
                              R"("lag_seconds":5,"last_io_error":"",)"
                              R"("last_sql_error":"Error 1062: \"dup\"",)"
                              R"("gtid_executed":"0-1-5,1-2-7","gtid_received":"",)"
                              R"("applied_all":false})"));
  EXPECT_THAT(json, HasSubstr(R"("status":"UP 2/3","state":"GOING_DOWN","admin":"READY",)"
                              R"("op":"UP","going":"down","health":3,"rise":2,"fall":3)"));
  EXPECT_THAT(json, HasSubstr(R"("status":"DOWN 1/2","state":"GOING_UP","admin":"READY",)"
                              R"("op":"DOWN","going":"up")"));
  EXPECT_THAT(json, HasSubstr(R"("state":"NOCHECK")"));
  EXPECT_THAT(json, HasSubstr(R"("hrsp":[0,0,0,0,0,0])"));
  // Web servers have no replication check.
  size_t web1 = json.find(R"("name":"web1")");
  ASSERT_NE(web1, std::string::npos);
  size_t field = json.find(R"("replication":)", web1);
  EXPECT_EQ(json.substr(field, 18), R"("replication":null)");
}

TEST_F(StatsTest, DowntimeCountsTheCurrentDownPeriod) {
  enableAllChecks();
  Server& web1 = server("web", "web1");
  web1.up = false;
  {
    std::lock_guard<std::mutex> lock(web1.check_mutex);
    web1.check_info.health = 0;
    web1.check_info.last_change_ms = kNow - 10000;
    web1.check_info.downtime_ms = 3000;
  }
  EXPECT_EQ(Csv(renderStatsCsv(view())).get("web", "web1", "downtime"), "13");
  EXPECT_THAT(renderOverviewJson(view(), 1000), HasSubstr(R"("downtime_ms":13000)"));
}

TEST_F(StatsTest, RateTrackerDiffsCountersEachSecond) {
  RateTracker rates(runtime_);
  Frontend& http_in = *runtime_.frontends()[0];
  Server& web1 = server("web", "web1");
  rates.sample(1000);  // the baseline
  EXPECT_EQ(rates.rate(&http_in).sessions, 0u);
  EXPECT_TRUE(rates.history(&http_in).empty());

  http_in.counters.total_conns += 10;
  http_in.counters.http_requests += 12;
  web1.counters.total_conns += 4;
  rates.sample(2000);
  EXPECT_EQ(rates.rate(&http_in).sessions, 10u);
  EXPECT_EQ(rates.rate(&http_in).requests, 12u);
  EXPECT_EQ(rates.rate(&web1).sessions, 4u);
  EXPECT_EQ(rates.rate(&runtime_).sessions, 10u);  // the process: all frontends

  http_in.counters.total_conns += 6;  // over 2 s: 3 per second
  rates.sample(4000);
  EXPECT_EQ(rates.rate(&http_in).sessions, 3u);
  EXPECT_EQ(rates.rate(&http_in).sessions_max, 10u);
  EXPECT_EQ(rates.rate(&http_in).requests, 0u);
  EXPECT_EQ(rates.rate(&http_in).requests_max, 12u);
  ASSERT_EQ(rates.history(&http_in).size(), 2u);
  EXPECT_EQ(rates.history(&http_in).back().time_ms, 4000);
  EXPECT_EQ(rates.history(&http_in).back().sessions, 3u);

  rates.sample(4000);  // the same instant again: ignored
  EXPECT_EQ(rates.history(&http_in).size(), 2u);
  int unknown = 0;
  EXPECT_EQ(rates.rate(&unknown).sessions, 0u);
  EXPECT_TRUE(rates.history(&unknown).empty());

  Csv csv(renderStatsCsv(view(&rates)));
  EXPECT_EQ(csv.get("http-in", "FRONTEND", "rate"), "3");
  EXPECT_EQ(csv.get("http-in", "FRONTEND", "rate_max"), "10");
  EXPECT_EQ(csv.get("http-in", "FRONTEND", "req_rate_max"), "12");
  EXPECT_THAT(
      renderOverviewJson(view(&rates), 1000),
      HasSubstr(R"("history":[{"t":2000,"sess":10,"req":12},{"t":4000,"sess":3,"req":0}])"));
}

TEST_F(StatsTest, RateHistoryKeepsTenMinutes) {
  RateTracker rates(runtime_);
  const Backend* web = runtime_.findBackend("web");
  for (int64_t s = 1; s <= 700; ++s) {
    rates.sample(s * 1000);
  }
  EXPECT_EQ(rates.history(web).size(), RateTracker::kHistorySeconds);
  EXPECT_EQ(rates.history(web).front().time_ms, 101000);
}

TEST(StatsLogsTest, LogsJsonReturnsRecordsAfterASeq) {
  setLogLevel(LogLevel::kInfo);  // the default, whatever an earlier test set
  std::vector<LogRecord> before = recentLogRecords(0, kLogRingSize);
  uint64_t after = before.empty() ? 0 : before.back().seq;
  TLOG_WARN("server web/web1 is DOWN, reason: \"refused\"");
  TLOG_ERROR("backend web has no server available!");
  std::vector<std::string> access = {"a 1", "a 2", "a 3"};
  std::string json = renderLogsJson(after, 2, access);
  EXPECT_TRUE(validJson(json)) << json;
  EXPECT_THAT(json, HasSubstr(R"("level":"warning","text":"server web/web1 is DOWN, reason: )"
                              R"(\"refused\""})"));
  EXPECT_THAT(json, HasSubstr(R"("level":"error","text":"backend web has no server available!")"));
  EXPECT_THAT(json, HasSubstr(R"("last_seq":)" + std::to_string(after + 2) + ","));
  EXPECT_THAT(json, HasSubstr(R"("access":["a 2","a 3"]})"));

  std::string none = renderLogsJson(after + 2, 10, {});
  EXPECT_EQ(none,
            R"({"records":[],"last_seq":)" + std::to_string(after + 2) + R"(,"access":[]})" + "\n");
}

TEST(JsonQuoteTest, EscapesWhatJsonForbids) {
  EXPECT_EQ(jsonQuote("plain"), "\"plain\"");
  EXPECT_EQ(jsonQuote("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(jsonQuote("\n\r\t\x01\x1f"), R"("\n\r\t\u0001\u001f")");
  EXPECT_EQ(jsonQuote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");           // valid UTF-8 stays
  EXPECT_EQ(jsonQuote("x\xff\xc3"), R"("x\ufffd\ufffd")");          // invalid bytes replaced
  EXPECT_EQ(jsonQuote("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");  // a UTF-16 surrogate
  EXPECT_TRUE(validJson(jsonQuote(std::string("\0zero", 5))));
}

}  // namespace
}  // namespace tandem
