// The admin HTTP listener of the real binary, in front of real PHP web servers: the stats
// CSV against HAProxy's column list, /metrics through promtool, the JSON views, the
// credentials and the CSRF guard on actions (refused actions change nothing), actions that
// change routing, read_auth, and requests that are too large or malformed.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/integration/http_harness.h"

namespace tandem::it {
namespace {

const std::string kToken = "s3cret-token";
// "alice:wonderland" and a wrong password, as Basic credentials.
const std::string kAliceAuth = "Authorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n";
const std::string kAliceWrongAuth = "Authorization: Basic YWxpY2U6d29uZGVyTEFORA==\r\n";
const std::string kMalloryAuth = "Authorization: Basic bWFsbG9yeTp3b25kZXJsYW5k\r\n";
// What the page sends with every action.
const std::string kActionHeaders = "Content-Type: application/json\r\nX-Tandem-Action: 1\r\n";

std::string bearer(const std::string& token) {
  return "Authorization: Bearer " + token + "\r\n";
}

std::string commandBody(const std::string& command) {
  return "{\"command\": \"" + command + "\"}";
}

std::filesystem::path sourceRoot() {
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

std::vector<std::string> referenceCsvColumns() {
  std::ifstream in(sourceRoot() / "tests" / "data" / "haproxy-2.6-stats-csv-columns.txt");
  std::vector<std::string> columns;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) {
      columns.push_back(line);
    }
  }
  return columns;
}

std::vector<std::string> splitCsvHeader(const std::string& line) {
  std::vector<std::string> out;
  std::string rest = line.substr(2);  // "# "
  std::stringstream in(rest);
  std::string column;
  while (std::getline(in, column, ',')) {
    out.push_back(column);
  }
  return out;
}

// Without waiting: whether the peer has closed the connection (EOF or reset).
bool peerClosed(int fd) {
  char byte;
  ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

class AdminHttpTest : public HttpTest {
 protected:
  // Two PHP servers behind "be" and an [admin] table with `admin_keys` (TOML lines) on a
  // free port.
  void startWithAdmin(const std::string& admin_keys) {
    ASSERT_TRUE(web1_.start()) << web1_.log();
    ASSERT_TRUE(web2_.start()) << web2_.log();
    spec_ = httpSpec({{"web1", web1_.port()}, {"web2", web2_.port()}});
    spec_.threads = 1;  // one roundrobin, so that both servers show up in a few requests
    admin_port_ = freePort();
    spec_.extra =
        "\n[admin]\nlisten = \"127.0.0.1:" + std::to_string(admin_port_) + "\"\n" + admin_keys;
    ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
    ASSERT_TRUE(tandem().waitUntilListening(admin_port_, kStartTimeout));
  }

  std::optional<HttpResponse> adminGet(const std::string& path, const std::string& headers = "") {
    return fetch(admin_port_, getRequest(path, headers));
  }

  std::optional<HttpResponse> adminPost(const std::string& body, const std::string& headers) {
    return fetch(admin_port_, postRequest("/api/command", body, headers));
  }

  std::optional<HttpResponse> command(const std::string& line, const std::string& auth) {
    return adminPost(commandBody(line), kActionHeaders + auth);
  }

  // The admin state ("READY", "DRAIN", "MAINT") of a server of "be", from /api/state.
  std::string adminState(const std::string& server) {
    std::optional<HttpResponse> r = adminGet("/api/state", bearer(kToken));
    if (!r || r->status != 200) {
      return "no /api/state";
    }
    std::optional<std::map<std::string, std::string>> json = parseJsonObject(r->body);
    if (!json) {
      return "unparsable /api/state";
    }
    for (int i = 0; json->count("backends.0.servers." + std::to_string(i) + ".name"); ++i) {
      std::string prefix = "backends.0.servers." + std::to_string(i) + ".";
      if (json->at(prefix + "name") == server) {
        return json->at(prefix + "admin");
      }
    }
    return "no server " + server;
  }

  // The servers that answer `count` requests, each on a new connection.
  std::vector<std::string> names(int count) {
    std::vector<std::string> out;
    for (int i = 0; i < count; ++i) {
      std::optional<HttpResponse> r = fetch(spec_.frontendPort(), getRequest("/"));
      out.push_back(r && r->status == 200 ? r->body : "failed");
    }
    return out;
  }

  PhpServer web1_{"web1"};
  PhpServer web2_{"web2"};
  ConfigSpec spec_;
  uint16_t admin_port_ = 0;
};

const std::string kTokenKeys = "token = \"" + kToken + "\"\n";
const std::string kAllKeys = kTokenKeys + "users = [\"alice:wonderland\", \"bob:builder\"]\n";

TEST_F(AdminHttpTest, StatsCsvHeaderIsHaproxysColumnOrder) {
  ASSERT_NO_FATAL_FAILURE(startWithAdmin(kTokenKeys));
  std::vector<std::string> reference = referenceCsvColumns();
  ASSERT_GT(reference.size(), 80u) << "tests/data/haproxy-2.6-stats-csv-columns.txt";
  for (const char* path : {"/stats;csv", "/stats.csv", "/;csv"}) {
    std::optional<HttpResponse> r = adminGet(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path;
    EXPECT_EQ(r->headers.get("Content-Type").value_or("").rfind("text/plain", 0), 0u);
    std::string header = r->body.substr(0, r->body.find('\n'));
    ASSERT_EQ(header.rfind("# ", 0), 0u) << header;
    EXPECT_EQ(splitCsvHeader(header), reference) << path;
    EXPECT_EQ(linesWith(r->body, "be,web1,").size(), 1u) << r->body;
    EXPECT_EQ(linesWith(r->body, "be,web2,").size(), 1u) << r->body;
    EXPECT_EQ(linesWith(r->body, "be,BACKEND,").size(), 1u) << r->body;
    EXPECT_EQ(linesWith(r->body, "fe,FRONTEND,").size(), 1u) << r->body;
  }
}

TEST_F(AdminHttpTest, LiveMetricsPassPromtool) {
  ASSERT_NO_FATAL_FAILURE(startWithAdmin(kTokenKeys));
  names(4);  // some traffic, so that counters are not all zero
  std::optional<HttpResponse> r = adminGet("/metrics");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->headers.get("Content-Type").value_or("").rfind("text/plain; version=0.0.4", 0), 0u);
  EXPECT_NE(r->body.find("haproxy_server_status{"), std::string::npos);
  EXPECT_NE(r->body.find("server=\"web2\""), std::string::npos);
  std::string metrics = dir_.write("metrics.txt", r->body);
  std::string output = (dir_.path() / "promtool.txt").string();
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/promtool")) << "promtool is not installed";
  int rc = std::system(
      ("/usr/bin/promtool check metrics < " + metrics + " > " + output + " 2>&1").c_str());
  EXPECT_EQ(rc, 0) << readFile(output);
}

TEST_F(AdminHttpTest, JsonViewsNameEveryServer) {
  ASSERT_NO_FATAL_FAILURE(startWithAdmin(kTokenKeys));
  std::optional<HttpResponse> stats = adminGet("/stats.json");
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->status, 200);
  EXPECT_EQ(stats->headers.get("Content-Type").value_or(""), "application/json");
  std::optional<std::map<std::string, std::string>> json = parseJsonObject(stats->body);
  ASSERT_TRUE(json) << stats->body;
  std::vector<std::string> rows;
  for (int i = 0; json->count("stats." + std::to_string(i) + ".svname"); ++i) {
    rows.push_back(json->at("stats." + std::to_string(i) + ".pxname") + "/" +
                   json->at("stats." + std::to_string(i) + ".svname"));
  }
  EXPECT_EQ(rows, (std::vector<std::string>{"fe/FRONTEND", "be/web1", "be/web2", "be/BACKEND"}));

  std::optional<HttpResponse> state = adminGet("/api/state");
  ASSERT_TRUE(state);
  EXPECT_EQ(state->status, 200);
  json = parseJsonObject(state->body);
  ASSERT_TRUE(json) << state->body;
  EXPECT_EQ((*json)["backends.0.name"], "be");
  EXPECT_EQ((*json)["backends.0.servers.0.name"], "web1");
  EXPECT_EQ((*json)["backends.0.servers.1.name"], "web2");
  EXPECT_EQ((*json)["backends.0.servers.1.admin"], "READY");
  EXPECT_EQ((*json)["frontends.0.name"], "fe");

  std::optional<HttpResponse> logs = adminGet("/api/logs?after=0&max=50");
  ASSERT_TRUE(logs);
  EXPECT_EQ(logs->status, 200);
  EXPECT_NE(logs->body.find("admin interface on http://127.0.0.1:"), std::string::npos)
      << logs->body;
  std::optional<HttpResponse> bad = adminGet("/api/logs?after=x");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
}

TEST_F(AdminHttpTest, PageHealthzMethodsAndUnknownPaths) {
  ASSERT_NO_FATAL_FAILURE(startWithAdmin(kTokenKeys));
  std::optional<HttpResponse> page = adminGet("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->headers.get("Content-Type").value_or("").rfind("text/html", 0), 0u);
  EXPECT_EQ(page->headers.get("X-Frame-Options").value_or(""), "DENY");
  EXPECT_NE(page->headers.get("Content-Security-Policy").value_or("").find("default-src 'self'"),
            std::string::npos);
  EXPECT_EQ(page->headers.get("Cache-Control").value_or(""), "no-store");

  std::optional<HttpResponse> health = adminGet("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "ok");

  std::optional<HttpResponse> missing = adminGet("/nothing-here");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  std::optional<HttpResponse> wrong = fetch(admin_port_, postRequest("/stats;csv", "x"));
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 405);
  EXPECT_EQ(wrong->headers.get("Allow").value_or(""), "GET, HEAD");
}

TEST_F(AdminHttpTest, HeadAnswersWithoutBody) {
  ASSERT_NO_FATAL_FAILURE(startWithAdmin(kTokenKeys));
  Socket sock = connectTo(admin_port_);
  std::optional<HttpResponse> head =
      roundTrip(sock, "HEAD /stats.json HTTP/1.1\r\nHost: x\r\n\r\n", kIoTimeout, true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_TRUE(head->body.empty());
  EXPECT_GT(std::stoul(head->headers.get("Content-Length").value_or("0")), 10u);
  // The connection is still in step: a GET on it gets its own response.
  std::optional<HttpResponse> get = roundTrip(sock, getRequest("/healthz"));
  ASSERT_TRUE(get);
  EXPECT_EQ(get->body, "ok");
}

TEST_F(AdminHttpTest, KeepAlivePipeliningAndConnectionClose) {
  ASSERT_NO_FATAL_FAILURE(startWithAdmin(kTokenKeys));
  Socket sock = connectTo(admin_port_);
  ASSERT_TRUE(sock.sendAll(getRequest("/healthz") + getRequest("/stats;csv") +
                           getRequest("/healthz", "Connection: close\r\n")));
  std::optional<HttpResponse> first = readResponse(sock);
  std::optional<HttpResponse> second = readResponse(sock);
  std::optional<HttpResponse> third = readResponse(sock);
  ASSERT_TRUE(first && second && third);
  EXPECT_EQ(first->body, "ok");
  EXPECT_FALSE(first->closes());
  EXPECT_EQ(second->body.rfind("# pxname,svname,", 0), 0u);
  EXPECT_EQ(third->body, "ok");
  EXPECT_TRUE(third->closes());
  EXPECT_TRUE(sock.waitClosed(kIoTimeout));
}

TEST_F(AdminHttpTest, ActionsWithoutGoodCredentialsAre401AndChangeNothing) {
  ASSERT_NO_FATAL_FAILURE(startWithAdmin(kAllKeys));
  const std::string drain = "set server be/web1 state drain";
  for (const std::string& auth :
       {std::string(), bearer("wrong"), bearer(kToken + "x"), bearer(kToken.substr(1)),
        kAliceWrongAuth, kMalloryAuth, std::string("Authorization: Basic !!!\r\n"),
        std::string("Authorization: Digest abc\r\n")}) {
    std::optional<HttpResponse> r = command(drain, auth);
    ASSERT_TRUE(r) << auth;
    EXPECT_EQ(r->status, 401) << auth;
    EXPECT_EQ(r->headers.get("WWW-Authenticate").value_or(""), "Basic realm=\"tandem\"") << auth;
  }
  EXPECT_EQ(adminState("web1"), "READY");
  std::vector<std::string> seen = names(4);
  EXPECT_EQ(countOf(seen, "web1"), 2);
  EXPECT_EQ(countOf(seen, "web2"), 2);
  EXPECT_TRUE(tandem().waitForLog("admin: refused POST /api/command from 127.0.0.1", kIoTimeout));
  EXPECT_EQ(tandem().log().find("going DRAIN"), std::string::npos);
}

TEST_F(AdminHttpTest, CrossSitePostsAre403AndChangeNothing) {
  ASSERT_NO_FATAL_FAILURE(startWithAdmin(kAllKeys));
  const std::string body = commandBody("set server be/web1 state maint");
  const std::string json = "Content-Type: application/json\r\n";
  const std::string marker = "X-Tandem-Action: 1\r\n";
  const std::vector<std::string> cross_site = {
      json + marker + "Origin: http://evil.example\r\n",
      json + marker + "Origin: null\r\n",
      "Content-Type: application/x-www-form-urlencoded\r\n" + marker,
      "Content-Type: text/plain\r\n" + marker,
      marker,
      json,
      json + "X-Tandem-Action: 0\r\n",
      json + marker + "Sec-Fetch-Site: cross-site\r\n",
      json + marker + "Sec-Fetch-Site: same-site\r\n",
  };
  for (const std::string& headers : cross_site) {
    // Good credentials too: a browser attaches cached Basic credentials to a forged form.
    std::optional<HttpResponse> r = adminPost(body, headers + kAliceAuth);
    ASSERT_TRUE(r) << headers;
    EXPECT_EQ(r->status, 403) << headers;
  }
  EXPECT_EQ(adminState("web1"), "READY");
  EXPECT_EQ(tandem().log().find("going MAINT"), std::string::npos);

  // The same action from the page's own origin goes through.
  std::optional<HttpResponse> ok = adminPost(
      body,
      json + marker + "Origin: http://tandem.test\r\nSec-Fetch-Site: same-origin\r\n" + kAliceAuth);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(adminState("web1"), "MAINT");
}

TEST_F(AdminHttpTest, GetCannotAct) {
  ASSERT_NO_FATAL_FAILURE(startWithAdmin(kAllKeys));
  std::optional<HttpResponse> r =
      adminGet("/api/command?command=set%20server%20be/web1%20state%20maint", bearer(kToken));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->headers.get("Allow").value_or(""), "POST");
  const std::string body = commandBody("set server be/web1 state maint");
  std::optional<HttpResponse> with_body = fetch(
      admin_port_, "GET /api/command HTTP/1.1\r\nHost: x\r\n" + kActionHeaders + bearer(kToken) +
                       "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  ASSERT_TRUE(with_body);
  EXPECT_EQ(with_body->status, 405);
  EXPECT_EQ(adminState("web1"), "READY");
}

TEST_F(AdminHttpTest, TokenDrainStopsNewSessionsAndReadyBringsTheServerBack) {
  ASSERT_NO_FATAL_FAILURE(startWithAdmin(kAllKeys));
  std::vector<std::string> before = names(4);
  EXPECT_EQ(countOf(before, "web1"), 2);

  std::optional<HttpResponse> r = command("set server be/web1 state drain", bearer(kToken));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  std::optional<std::map<std::string, std::string>> json = parseJsonObject(r->body);
  ASSERT_TRUE(json) << r->body;
  EXPECT_EQ((*json)["ok"], "true");
  EXPECT_EQ(adminState("web1"), "DRAIN");
  std::vector<std::string> drained = names(8);
  EXPECT_EQ(countOf(drained, "web2"), 8) << "a drained server took new sessions";
  EXPECT_TRUE(tandem().waitForLog("admin token@127.0.0.1", kIoTimeout));

  r = command("set server be/web1 state ready", bearer(kToken));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(adminState("web1"), "READY");
  std::vector<std::string> after = names(4);
  EXPECT_EQ(countOf(after, "web1"), 2);
  EXPECT_EQ(countOf(after, "web2"), 2);
}

TEST_F(AdminHttpTest, BasicAuthUsersActAndBadCommandsAre400) {
  ASSERT_NO_FATAL_FAILURE(startWithAdmin(kAllKeys));
  std::optional<HttpResponse> r = command("set server be/web2 state maint", kAliceAuth);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(adminState("web2"), "MAINT");
  EXPECT_TRUE(tandem().waitForLog("admin alice@127.0.0.1", kIoTimeout));
  EXPECT_EQ(countOf(names(4), "web1"), 4);

  // A command the runtime API refuses: 400 with its error line, nothing changes.
  r = command("set server be/web9 state drain", kAliceAuth);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  std::optional<std::map<std::string, std::string>> json = parseJsonObject(r->body);
  ASSERT_TRUE(json) << r->body;
  EXPECT_EQ((*json)["ok"], "false");
  EXPECT_FALSE((*json)["output"].empty());
  // Bodies that are not the expected JSON.
  for (const std::string& body :
       {std::string("command=show+info"), std::string("{\"command\": 5}"),
        std::string("{\"cmd\": \"show info\"}"), std::string("{\"command\":"),
        std::string("{\"command\": \"show info\\nset weight be/web1 0\"}")}) {
    r = adminPost(body, kActionHeaders + kAliceAuth);
    ASSERT_TRUE(r) << body;
    EXPECT_EQ(r->status, 400) << body;
  }
  EXPECT_EQ(adminState("web1"), "READY");
  // Escapes are decoded: "\u0073how info" is "show info".
  r = adminPost("{\"command\": \"\\u0073how info\"}", kActionHeaders + kAliceAuth);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("Name: tandem"), std::string::npos) << r->body;
}

TEST_F(AdminHttpTest, ReadAuthProtectsTheViewsButNotHealthz) {
  ASSERT_NO_FATAL_FAILURE(startWithAdmin(kAllKeys + "read_auth = true\n"));
  for (const char* path : {"/", "/stats;csv", "/stats.json", "/metrics", "/api/state"}) {
    std::optional<HttpResponse> r = adminGet(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 401) << path;
    EXPECT_EQ(r->headers.get("WWW-Authenticate").value_or(""), "Basic realm=\"tandem\"");
    r = adminGet(path, kAliceWrongAuth);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 401) << path;
  }
  std::optional<HttpResponse> csv = adminGet("/stats;csv", kAliceAuth);
  ASSERT_TRUE(csv);
  EXPECT_EQ(csv->status, 200);
  std::optional<HttpResponse> token_csv = adminGet("/stats;csv", bearer(kToken));
  ASSERT_TRUE(token_csv);
  EXPECT_EQ(token_csv->status, 200);
  std::optional<HttpResponse> health = adminGet("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(AdminHttpTest, WithoutCredentialsConfiguredActionsAre403) {
  ASSERT_NO_FATAL_FAILURE(startWithAdmin(""));
  std::optional<HttpResponse> r = command("set server be/web1 state drain", bearer("anything"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(adminState("web1"), "READY");
}

TEST_F(AdminHttpTest, OversizeAndMalformedRequestsAreRefusedAndServingGoesOn) {
  ASSERT_NO_FATAL_FAILURE(startWithAdmin(kAllKeys));
  std::optional<HttpResponse> r =
      fetch(admin_port_, getRequest("/healthz", "X-Big: " + std::string(20000, 'a') + "\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  std::string many;
  for (int i = 0; i < 150; ++i) {
    many += "X-H" + std::to_string(i) + ": v\r\n";
  }
  r = fetch(admin_port_, getRequest("/healthz", many));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  r = fetch(admin_port_,
            postRequest("/api/command", std::string(70000, 'x'), kActionHeaders + bearer(kToken)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  for (const std::string& bad :
       {std::string("HELLO\r\n\r\n"), std::string("GET / HTTP/9.9\r\n\r\n"),
        std::string("GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n"),
        std::string("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        std::string("POST /api/command HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "zz\r\n")}) {
    r = fetch(admin_port_, bad);
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_TRUE(r->closes()) << bad;
  }
  // A chunked body past the limit is refused as it arrives.
  Socket sock = connectTo(admin_port_);
  std::string chunk(8192, 'y');
  std::string request = "POST /api/command HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" +
                        kActionHeaders + bearer(kToken) + "\r\n";
  for (int i = 0; i < 10; ++i) {
    request += "2000\r\n" + chunk + "\r\n";
  }
  r = roundTrip(sock, request);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);

  r = adminGet("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(adminState("web1"), "READY");
  EXPECT_TRUE(tandem().running());
}

TEST_F(AdminHttpTest, ConnectionsOverTheLimitAreClosedAndServingGoesOn) {
  ASSERT_NO_FATAL_FAILURE(startWithAdmin(kTokenKeys));
  std::vector<Socket> idle;
  for (int i = 0; i < 300; ++i) {
    Socket s = connectTo(admin_port_);
    ASSERT_TRUE(s.valid()) << i;
    idle.push_back(std::move(s));
  }
  // The server keeps 256 of them; the others are closed at once.
  std::vector<bool> closed(idle.size(), false);
  auto countClosed = [&] {
    for (size_t i = 0; i < idle.size(); ++i) {
      closed[i] = closed[i] || peerClosed(idle[i].fd());
    }
    return std::count(closed.begin(), closed.end(), true);
  };
  EXPECT_TRUE(eventually([&] { return countClosed() >= 300 - 256; }, kIoTimeout));
  EXPECT_EQ(countClosed(), 300 - 256) << "the kept connections stay open";
  idle.clear();
  EXPECT_TRUE(eventually(
      [&] {
        std::optional<HttpResponse> r = adminGet("/healthz");
        return r && r->status == 200;
      },
      kIoTimeout));
}

// The admin listener stays until the process exits, and an open admin connection does not
// hold the exit back.
TEST_F(AdminHttpTest, SigtermExitsCleanlyWithAnAdminConnectionOpen) {
  ASSERT_NO_FATAL_FAILURE(startWithAdmin(kTokenKeys));
  Socket sock = connectTo(admin_port_);
  std::optional<HttpResponse> r = roundTrip(sock, getRequest("/healthz"));
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->closes());
  ASSERT_TRUE(tandem().sendSignal(SIGTERM));
  std::optional<ExitStatus> status = tandem().waitExit(kStateTimeout);
  ASSERT_TRUE(status) << "still running";
  EXPECT_TRUE(status->ok()) << status->str();
  EXPECT_TRUE(sock.waitClosed(kIoTimeout));
}

TEST_F(AdminHttpTest, AdminAddressInUseStopsTandemWithExit1) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  uint16_t port = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    port = freePort();
    addr.sin_port = htons(port);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      break;
    }
  }
  ASSERT_EQ(listen(fd, 1), 0);
  ConfigSpec spec = httpSpec({{"web1", freePort()}});
  spec.extra = "\n[admin]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\n";
  RunResult run = runTandem({"-c", dir_.write("tandem.toml", spec.toml())}, kStartTimeout);
  ::close(fd);
  ASSERT_TRUE(run.status);
  EXPECT_TRUE(run.status->exited);
  EXPECT_EQ(run.status->code, 1) << run.err;
  EXPECT_NE(run.err.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("admin"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace tandem::it
