#include "core/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace tandem {
namespace {

using ::testing::HasSubstr;

// A valid file that error tests append to. Tests put the table under test *before* it, so
// that the expected line numbers count from the top of the test's own text.
constexpr const char* kValidTail = R"(
[[backend]]
name = "tail"
[[backend.server]]
name = "t1"
address = "10.9.9.9:80"

[[frontend]]
name = "tail-in"
listen = "127.0.0.1:9999"
backend = "tail"
)";

// Loads `text` and checks that it fails with the given line and key, and a message containing
// `fragment`.
void expectError(const std::string& text, int line, const std::string& key,
                 const std::string& fragment) {
  try {
    loadConfigString(text, "t.toml");
    ADD_FAILURE() << "loaded without error:\n" << text;
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), "t.toml") << e.what();
    EXPECT_EQ(e.line(), line) << e.what();
    EXPECT_EQ(e.key(), key) << e.what();
    EXPECT_THAT(e.what(), HasSubstr(fragment));
  }
}

void expectErrorBeforeTail(const std::string& head, int line, const std::string& key,
                           const std::string& fragment) {
  expectError(head + kValidTail, line, key, fragment);
}

// Every key of the v1 schema, each set to a value other than its default (the HTTP keys are in
// kHttpKeys below).
constexpr const char* kFull = R"([global]
threads = 4
log_level = "debug"
hard_stop_after = "1m"

[defaults]
timeout_connect = "3s"
timeout_client = "40s"
timeout_server = "45s"
retries = 5

[[backend]]
name = "db"
mode = "tcp"
balance = "first"
on_marked_down = "shutdown-sessions"
timeout_connect = "1s"
timeout_server = "2h"
retries = 0

[backend.check]
type = "tcp"
interval = "500ms"
fastinter = "250ms"
downinter = "5s"
timeout = "400ms"
rise = 4
fall = 6

[[backend.server]]
name = "db1"
address = "10.0.0.1:3306"
weight = 256
maxconn = 500
check = false
disabled = true

[[backend.server]]
name = "db2"
address = "[fd00::2]:3306"
weight = 0
backup = true

[[backend]]
name = "web"
balance = "leastconn"
check = { interval = "3s" }
servers = [
  { name = "web1", address = "web1.internal:80" },
  { name = "web2", address = "10.0.0.12:8080", weight = 3 },
]

[[frontend]]
name = "mysql-writer"
listen = "0.0.0.0:3306"
mode = "tcp"
backend = "db"
maxconn = 1000000
timeout_client = "8h"

[[frontend]]
name = "http.in_2"
listen = ["*:8090", "[::1]:8090"]
backend = "web"
)";

TEST(ConfigTest, FullConfigSetsEveryKey) {
  Config c = loadConfigString(kFull, "full.toml");
  EXPECT_EQ(c.path, "full.toml");
  EXPECT_EQ(c.global.threads, 4);
  EXPECT_EQ(c.global.log_level, LogLevel::kDebug);
  EXPECT_EQ(c.global.hard_stop_after, Millis(60000));
  EXPECT_EQ(c.defaults.timeout_connect, Millis(3000));
  EXPECT_EQ(c.defaults.timeout_client, Millis(40000));
  EXPECT_EQ(c.defaults.timeout_server, Millis(45000));
  EXPECT_EQ(c.defaults.retries, 5);
  ASSERT_EQ(c.backends.size(), 2u);
  ASSERT_EQ(c.frontends.size(), 2u);
}

TEST(ConfigTest, FullConfigBackendWithCheckTable) {
  Config c = loadConfigString(kFull, "full.toml");
  const BackendConfig& db = c.backends[0];
  EXPECT_EQ(db.name, "db");
  EXPECT_EQ(db.line, 12);
  EXPECT_EQ(db.mode, Mode::kTcp);
  EXPECT_EQ(db.balance, Balance::kFirst);
  EXPECT_EQ(db.on_marked_down, OnMarkedDown::kShutdownSessions);
  EXPECT_EQ(db.timeout_connect, Millis(1000));
  EXPECT_EQ(db.timeout_server, Millis(2 * 3600 * 1000));
  EXPECT_EQ(db.retries, 0);
  ASSERT_TRUE(db.check.has_value());
  EXPECT_EQ(db.check->type, CheckType::kTcp);
  EXPECT_EQ(db.check->interval, Millis(500));
  EXPECT_EQ(db.check->fastinter, Millis(250));
  EXPECT_EQ(db.check->downinter, Millis(5000));
  EXPECT_EQ(db.check->timeout, Millis(400));
  EXPECT_EQ(db.check->rise, 4);
  EXPECT_EQ(db.check->fall, 6);
  EXPECT_EQ(db.check->line, 21);
}

TEST(ConfigTest, FullConfigServerBlocks) {
  Config c = loadConfigString(kFull, "full.toml");
  const std::vector<ServerConfig>& servers = c.backends[0].servers;
  ASSERT_EQ(servers.size(), 2u);
  EXPECT_EQ(servers[0].name, "db1");
  EXPECT_EQ(servers[0].address.host, "10.0.0.1");
  EXPECT_EQ(servers[0].address.port, 3306);
  EXPECT_EQ(servers[0].weight, 256);
  EXPECT_FALSE(servers[0].backup);
  EXPECT_EQ(servers[0].maxconn, 500);
  EXPECT_FALSE(servers[0].check);
  EXPECT_TRUE(servers[0].disabled);
  EXPECT_EQ(servers[0].line, 30);
  EXPECT_EQ(servers[1].name, "db2");
  EXPECT_EQ(servers[1].address.host, "fd00::2");
  EXPECT_EQ(servers[1].weight, 0);
  EXPECT_TRUE(servers[1].backup);
  EXPECT_EQ(servers[1].maxconn, 0);
  EXPECT_TRUE(servers[1].check);
  EXPECT_FALSE(servers[1].disabled);
  EXPECT_EQ(servers[1].line, 38);
}

TEST(ConfigTest, FullConfigInlineCheckAndServerList) {
  Config c = loadConfigString(kFull, "full.toml");
  const BackendConfig& web = c.backends[1];
  EXPECT_EQ(web.balance, Balance::kLeastConn);
  EXPECT_EQ(web.on_marked_down, OnMarkedDown::kNothing);
  // Backend timeouts and retries not set in the backend come from [defaults].
  EXPECT_EQ(web.timeout_connect, Millis(3000));
  EXPECT_EQ(web.timeout_server, Millis(45000));
  EXPECT_EQ(web.retries, 5);
  ASSERT_TRUE(web.check.has_value());
  EXPECT_EQ(web.check->interval, Millis(3000));
  EXPECT_EQ(web.check->fastinter, Millis(3000));
  EXPECT_EQ(web.check->downinter, Millis(3000));
  EXPECT_EQ(web.check->timeout, Millis(3000));
  EXPECT_EQ(web.check->line, 47);
  ASSERT_EQ(web.servers.size(), 2u);
  EXPECT_EQ(web.servers[0].address.host, "web1.internal");
  EXPECT_EQ(web.servers[0].line, 49);
  EXPECT_EQ(web.servers[1].name, "web2");
  EXPECT_EQ(web.servers[1].address.port, 8080);
  EXPECT_EQ(web.servers[1].weight, 3);
}

TEST(ConfigTest, FullConfigFrontends) {
  Config c = loadConfigString(kFull, "full.toml");
  const FrontendConfig& writer = c.frontends[0];
  EXPECT_EQ(writer.name, "mysql-writer");
  EXPECT_EQ(writer.line, 53);
  ASSERT_EQ(writer.listen.size(), 1u);
  EXPECT_EQ(writer.listen[0].str(), "0.0.0.0:3306");
  EXPECT_EQ(writer.mode, Mode::kTcp);
  EXPECT_EQ(writer.backend, "db");
  EXPECT_EQ(writer.maxconn, 1000000);
  EXPECT_EQ(writer.timeout_client, Millis(8 * 3600 * 1000));
  const FrontendConfig& http = c.frontends[1];
  EXPECT_EQ(http.name, "http.in_2");
  ASSERT_EQ(http.listen.size(), 2u);
  EXPECT_EQ(http.listen[0].str(), "0.0.0.0:8090");
  EXPECT_EQ(http.listen[1].str(), "[::1]:8090");
  EXPECT_EQ(http.maxconn, 0);
  EXPECT_EQ(http.timeout_client, Millis(40000));  // from [defaults]
  EXPECT_EQ(c.findBackend("web"), &c.backends[1]);
  EXPECT_EQ(c.findBackend("nope"), nullptr);
}

TEST(ConfigTest, MinimalConfigTakesEveryDefault) {
  Config c = loadConfigString(kValidTail, "min.toml");
  EXPECT_EQ(c.global.threads, 0);
  EXPECT_EQ(c.global.log_level, LogLevel::kInfo);
  EXPECT_EQ(c.global.hard_stop_after, Millis(30000));
  EXPECT_EQ(c.defaults.timeout_connect, Millis(5000));
  EXPECT_EQ(c.defaults.timeout_client, Millis(50000));
  EXPECT_EQ(c.defaults.timeout_server, Millis(50000));
  EXPECT_EQ(c.defaults.retries, 3);
  EXPECT_EQ(c.global.access_log, "stdout");
  EXPECT_EQ(c.global.log_format, LogFormat::kHaproxy);
  EXPECT_EQ(c.defaults.timeout_http_request, Millis(10000));
  EXPECT_EQ(c.defaults.timeout_http_keep_alive, Millis(10000));
  EXPECT_EQ(c.defaults.max_header_size, 16384);
  EXPECT_EQ(c.defaults.max_headers, 100);
  const BackendConfig& b = c.backends.at(0);
  EXPECT_EQ(b.mode, Mode::kTcp);
  EXPECT_EQ(b.balance, Balance::kRoundRobin);
  EXPECT_EQ(b.on_marked_down, OnMarkedDown::kNothing);
  EXPECT_FALSE(b.check.has_value());
  EXPECT_EQ(b.timeout_connect, Millis(5000));
  EXPECT_EQ(b.timeout_server, Millis(50000));
  EXPECT_EQ(b.retries, 3);
  EXPECT_EQ(b.balance_header, "");
  EXPECT_EQ(b.cookie, "");
  EXPECT_EQ(b.error_limit, 0);
  const ServerConfig& s = b.servers.at(0);
  EXPECT_EQ(s.weight, 1);
  EXPECT_FALSE(s.backup);
  EXPECT_EQ(s.maxconn, 0);
  EXPECT_TRUE(s.check);
  EXPECT_FALSE(s.disabled);
  const FrontendConfig& f = c.frontends.at(0);
  EXPECT_EQ(f.mode, Mode::kTcp);
  EXPECT_EQ(f.maxconn, 0);
  EXPECT_EQ(f.timeout_client, Millis(50000));
  EXPECT_EQ(f.timeout_http_request, Millis(10000));
  EXPECT_EQ(f.timeout_http_keep_alive, Millis(10000));
  EXPECT_EQ(f.max_header_size, 16384);
  EXPECT_EQ(f.max_headers, 100);
}

TEST(ConfigTest, CheckTableDefaults) {
  Config c = loadConfigString(
      "[[backend]]\nname = \"b\"\ncheck = {}\n"
      "servers = [{ name = \"s\", address = \"h:1\" }]\n"
      "[[frontend]]\nname = \"f\"\nlisten = \":1\"\nbackend = \"b\"\n",
      "t.toml");
  const CheckConfig& check = c.backends.at(0).check.value();
  EXPECT_EQ(check.type, CheckType::kTcp);
  EXPECT_EQ(check.interval, Millis(2000));
  EXPECT_EQ(check.fastinter, Millis(2000));
  EXPECT_EQ(check.downinter, Millis(2000));
  EXPECT_EQ(check.timeout, Millis(2000));
  EXPECT_EQ(check.rise, 2);
  EXPECT_EQ(check.fall, 3);
  EXPECT_EQ(check.method, "GET");
  EXPECT_EQ(check.path, "/");
  EXPECT_EQ(check.host, "");
  ASSERT_EQ(check.expect.size(), 1u);
  EXPECT_EQ(check.expect[0].low, 200);
  EXPECT_EQ(check.expect[0].high, 399);
}

TEST(ConfigTest, ThreadsAuto) {
  Config c = loadConfigString(std::string("[global]\nthreads = \"auto\"\n") + kValidTail, "t");
  EXPECT_EQ(c.global.threads, 0);
  expectErrorBeforeTail("[global]\nthreads = \"4\"\n", 2, "global.threads",
                        "expected \"auto\" or an integer, found \"4\"");
}

TEST(ConfigTest, ErrorTextIsFileLineKeyMessage) {
  std::string head =
      "[[backend]]\nname = \"web\"\n[[backend.server]]\nname = \"web2\"\n"
      "address = \"10.0.0.2:80\"\nweight = 300\n";
  try {
    loadConfigString(head + kValidTail, "tandem.toml");
    FAIL() << "loaded without error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "tandem.toml:6: backend[web].server[web2].weight: 300 is out of range 0..256");
  }
}

TEST(ConfigTest, UnknownKey) {
  expectErrorBeforeTail("[admn]\nlisten = \":8081\"\n", 1, "admn",
                        "unknown key (expected one of: global, defaults, admin, backend, "
                        "frontend)");
  expectErrorBeforeTail("[global]\nthread = 4\n", 2, "global.thread", "unknown key");
  expectErrorBeforeTail("[defaults]\ntimeout = \"1s\"\n", 2, "defaults.timeout", "unknown key");
  expectErrorBeforeTail(
      "[[frontend]]\nname = \"f\"\nlisten = \":1\"\nbackend = \"tail\"\nbind = 1\n", 5,
      "frontend[f].bind", "unknown key");
  expectErrorBeforeTail(
      "[[backend]]\nname = \"b\"\ncheck = { type = \"tcp\", port = 80 }\n"
      "servers = [{ name = \"s\", address = \"h:1\" }]\n",
      3, "backend[b].check.port", "unknown key (expected one of: type, interval,");
  expectErrorBeforeTail(
      "[[backend]]\nname = \"b\"\nservers = [\n{ name = \"s\", address = \"h:1\", inter = 3 "
      "},\n]\n",
      4, "backend[b].server[s].inter", "unknown key");
  // A misspelt `name` is reported as unknown rather than as a missing name.
  expectErrorBeforeTail("[[backend]]\nnmae = \"b\"\n", 2, "backend[0].nmae", "unknown key");
}

TEST(ConfigTest, WrongType) {
  expectErrorBeforeTail("[defaults]\nretries = \"3\"\n", 2, "defaults.retries",
                        "expected an integer, found a string");
  expectErrorBeforeTail("[defaults]\nretries = 3.0\n", 2, "defaults.retries",
                        "expected an integer, found a floating-point number");
  expectErrorBeforeTail("[global]\nthreads = true\n", 2, "global.threads",
                        "expected \"auto\" or an integer, found a boolean");
  expectErrorBeforeTail("[defaults]\ntimeout_client = 2000\n", 2, "defaults.timeout_client",
                        "expected a duration string such as \"2s\", found an integer");
  expectErrorBeforeTail("global = 3\n", 1, "global", "expected a table, found an integer");
  expectErrorBeforeTail(
      "[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"s\"\naddress = \"h:1\"\n"
      "backup = \"yes\"\n",
      6, "backend[b].server[s].backup", "expected a boolean (true or false), found a string");
  expectErrorBeforeTail("[[frontend]]\nname = \"f\"\nlisten = 80\n", 3, "frontend[f].listen",
                        "expected a \"host:port\" string, found an integer");
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\ncheck = true\n", 3, "backend[b].check",
                        "expected a table, found a boolean");
  expectError("[frontend]\nname = \"f\"\n", 1, "frontend",
              "expected an array of tables ([[frontend]]), found a table");
}

TEST(ConfigTest, MissingRequiredKey) {
  expectErrorBeforeTail("\n[[frontend]]\nname = \"f\"\nbackend = \"tail\"\n", 2,
                        "frontend[f].listen", "missing required key");
  expectErrorBeforeTail("[[frontend]]\nlisten = \":1\"\nbackend = \"tail\"\n", 1,
                        "frontend[0].name", "missing required key");
  expectErrorBeforeTail("[[frontend]]\nname = \"f\"\nlisten = \":1\"\n", 1, "frontend[f].backend",
                        "missing required key");
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"s\"\n", 3,
                        "backend[b].server[s].address", "missing required key");
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\nmode = \"tcp\"\n", 1, "backend[b].server",
                        "at least one server is required");
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\nservers = []\n", 1, "backend[b].server",
                        "at least one server is required");
  expectError("[global]\nthreads = 2\n", 1, "frontend", "at least one [[frontend]] is required");
  expectError("[[frontend]]\nname = \"f\"\nlisten = [ ]\nbackend = \"b\"\n", 3,
              "frontend[f].listen", "expected at least one \"host:port\" address");
}

TEST(ConfigTest, InvalidName) {
  expectErrorBeforeTail("[[backend]]\nname = \"my web\"\n", 2, "backend[0].name",
                        "\"my web\" is not a valid name (use letters, digits, '_', '.' and '-')");
  expectErrorBeforeTail("[[frontend]]\nname = \"\"\n", 2, "frontend[0].name",
                        "\"\" is not a valid name");
}

TEST(ConfigTest, DuplicateNames) {
  expectError(std::string(kValidTail) + "\n[[backend]]\nname = \"tail\"\n", 14,
              "backend[tail].name", "duplicate backend name \"tail\" (first defined at line 2)");
  expectError(std::string(kValidTail) + "\n[[frontend]]\nname = \"tail-in\"\n", 14,
              "frontend[tail-in].name",
              "duplicate frontend name \"tail-in\" (first defined at line 8)");
  expectErrorBeforeTail(
      "[[backend]]\nname = \"b\"\nservers = [\n  { name = \"s\", address = \"h:1\" },\n"
      "  { name = \"s\", address = \"h:2\" },\n]\n",
      5, "backend[b].server[s].name", "duplicate server name \"s\" (first defined at line 4)");
}

TEST(ConfigTest, DuplicateListenAddress) {
  // "*:9999" and "0.0.0.0:9999" are the same address.
  std::string two =
      "[[frontend]]\nname = \"a\"\nlisten = \"*:9999\"\nbackend = \"tail\"\n"
      "[[frontend]]\nname = \"b\"\nlisten = [\"10.0.0.1:1\", \"0.0.0.0:9999\"]\n"
      "backend = \"tail\"\n";
  expectErrorBeforeTail(
      two, 7, "frontend[b].listen",
      "duplicate listen address \"0.0.0.0:9999\" (first used by frontend[a] at line 3)");
  expectErrorBeforeTail("[[frontend]]\nname = \"a\"\nlisten = [\":1\",\n \":1\"]\n", 4,
                        "frontend[a].listen", "duplicate listen address \"0.0.0.0:1\"");
}

TEST(ConfigTest, UnknownBackendReference) {
  expectErrorBeforeTail("[[frontend]]\nname = \"f\"\nlisten = \":1\"\nbackend = \"wbe\"\n", 4,
                        "frontend[f].backend", "unknown backend \"wbe\" (defined backends: tail)");
}

TEST(ConfigTest, BadAddress) {
  expectErrorBeforeTail("[[frontend]]\nname = \"f\"\nlisten = \":70000\"\nbackend = \"tail\"\n", 3,
                        "frontend[f].listen", "port 70000 is out of range 1..65535");
  expectErrorBeforeTail("[[frontend]]\nname = \"f\"\nlisten = [\":1\", 2]\nbackend = \"tail\"\n", 3,
                        "frontend[f].listen", "expected a \"host:port\" string, found an integer");
  std::string server = "[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"s\"\naddress = ";
  expectErrorBeforeTail(server + "\"web1\"\n", 5, "backend[b].server[s].address",
                        "expected \"host:port\", found no port");
  expectErrorBeforeTail(server + "\"::1:80\"\n", 5, "backend[b].server[s].address",
                        "IPv6 addresses must be written in brackets");
  expectErrorBeforeTail(server + "\"web 1:80\"\n", 5, "backend[b].server[s].address",
                        "\"web 1\" is not a valid host name or address");
  expectErrorBeforeTail(server + "\"*:80\"\n", 5, "backend[b].server[s].address",
                        "a server needs a host to connect to, found \"*:80\"");
}

TEST(ConfigTest, OutOfRange) {
  expectErrorBeforeTail("[global]\nthreads = 257\n", 2, "global.threads",
                        "257 is out of range 1..256");
  expectErrorBeforeTail("[global]\nthreads = 0\n", 2, "global.threads", "0 is out of range 1..256");
  expectErrorBeforeTail("[defaults]\nretries = 101\n", 2, "defaults.retries",
                        "101 is out of range 0..100");
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\ncheck = { rise = 0 }\n", 3,
                        "backend[b].check.rise", "0 is out of range 1..1000");
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\n[backend.check]\nfall = 1001\n", 4,
                        "backend[b].check.fall", "1001 is out of range 1..1000");
  expectErrorBeforeTail(
      "[[frontend]]\nname = \"f\"\nlisten = \":1\"\nbackend = \"tail\"\nmaxconn = -1\n", 5,
      "frontend[f].maxconn", "-1 is out of range 0..1000000");
  // Larger than any int: the range check must run on the 64-bit value.
  expectErrorBeforeTail(
      "[[backend]]\nname = \"b\"\nservers = [{ name = \"s\", address = \"h:1\", "
      "weight = 4294967297 }]\n",
      3, "backend[b].server[s].weight", "4294967297 is out of range 0..256");
}

TEST(ConfigTest, BadDuration) {
  expectErrorBeforeTail("[defaults]\ntimeout_connect = \"2x\"\n", 2, "defaults.timeout_connect",
                        "\"2x\" is not a duration (use ms, s, m, h or d, e.g. \"250ms\")");
  expectErrorBeforeTail("[defaults]\ntimeout_connect = \"1.5s\"\n", 2, "defaults.timeout_connect",
                        "\"1.5s\" is not a duration");
  expectErrorBeforeTail("[global]\nhard_stop_after = \"-1s\"\n", 2, "global.hard_stop_after",
                        "\"-1s\" is not a duration");
  expectErrorBeforeTail("[defaults]\ntimeout_server = \"31d\"\n", 2, "defaults.timeout_server",
                        "\"31d\" is too long (at most 30d)");
  expectErrorBeforeTail("[defaults]\ntimeout_server = \"0s\"\n", 2, "defaults.timeout_server",
                        "\"0s\" must be greater than zero");
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\ncheck = { interval = \"0ms\" }\n", 3,
                        "backend[b].check.interval", "must be greater than zero");
  Config c =
      loadConfigString(std::string("[global]\nhard_stop_after = \"0s\"\n") + kValidTail, "t");
  EXPECT_EQ(c.global.hard_stop_after, Millis(0));  // zero means: stop at once
}

TEST(ConfigTest, BadEnumWord) {
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\nbalance = \"rr\"\n", 3, "backend[b].balance",
                        "\"rr\" is not one of: roundrobin, static-rr, leastconn, first, source, "
                        "random, uri, hdr(NAME)");
  expectErrorBeforeTail("[global]\nlog_level = \"warn\"\n", 2, "global.log_level",
                        "\"warn\" is not one of: debug, info, notice, warning, error");
  expectErrorBeforeTail("[global]\nlog_format = \"httplog\"\n", 2, "global.log_format",
                        "\"httplog\" is not one of: haproxy, json");
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\nmode = \"udp\"\n", 3, "backend[b].mode",
                        "\"udp\" is not one of: tcp, http");
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\non_marked_down = \"kill\"\n", 3,
                        "backend[b].on_marked_down", "is not one of: none, shutdown-sessions");
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\ncheck = { type = \"ping\" }\n", 3,
                        "backend[b].check.type", "is not one of: tcp, http, mysql");
}

TEST(ConfigTest, TomlSyntaxError) {
  expectError("[global]\nthreads = \n", 2, "", "expected value");
  expectError("[global]\nthreads = 1\nthreads = 2\n", 3, "", "cannot redefine");
  try {
    loadConfigString("[global\n", "bad.toml");
    FAIL() << "loaded without error";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), ::testing::StartsWith("bad.toml:1: "));
  }
}

TEST(ConfigTest, UnreadableFile) {
  try {
    loadConfigFile("/nonexistent/tandem.toml");
    FAIL() << "loaded without error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line(), 0);
    EXPECT_EQ(e.key(), "");
    EXPECT_STREQ(e.what(), "/nonexistent/tandem.toml:0: No such file or directory");
  }
  try {
    loadConfigFile("/");
    FAIL() << "loaded a directory";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "/:0: Is a directory");
  }
  EXPECT_THROW(loadConfigFile("/dev/zero"), ConfigError);
}

TEST(ConfigTest, BothServerSpellingsInOneBackend) {
  expectErrorBeforeTail(
      "[[backend]]\nname = \"b\"\nservers = [{ name = \"a\", address = \"h:1\" }]\n"
      "[[backend.server]]\nname = \"c\"\naddress = \"h:2\"\n",
      3, "backend[b].servers", "servers are given both as [[backend.server]] (line 4)");
}

TEST(ConfigTest, EitherServerSpellingGivesTheSameServers) {
  std::string front = "[[frontend]]\nname = \"f\"\nlisten = \":1\"\nbackend = \"b\"\n";
  Config blocks = loadConfigString(
      front +
          "[[backend]]\nname = \"b\"\n[[backend.server]]\nname = \"s1\"\naddress = \"h:1\"\n"
          "[[backend.server]]\nname = \"s2\"\naddress = \"h:2\"\nbackup = true\n",
      "t");
  Config list = loadConfigString(
      front +
          "[[backend]]\nname = \"b\"\nservers = [\n  { name = \"s1\", address = \"h:1\" },\n"
          "  { name = \"s2\", address = \"h:2\", backup = true },\n]\n",
      "t");
  for (const Config* c : {&blocks, &list}) {
    const std::vector<ServerConfig>& servers = c->backends.at(0).servers;
    ASSERT_EQ(servers.size(), 2u);
    EXPECT_EQ(servers[0].name, "s1");
    EXPECT_EQ(servers[0].address.str(), "h:1");
    EXPECT_FALSE(servers[0].backup);
    EXPECT_EQ(servers[1].name, "s2");
    EXPECT_TRUE(servers[1].backup);
  }
}

TEST(ConfigTest, EnumNames) {
  EXPECT_STREQ(modeName(Mode::kTcp), "tcp");
  EXPECT_STREQ(modeName(Mode::kHttp), "http");
  EXPECT_STREQ(balanceName(Balance::kRoundRobin), "roundrobin");
  EXPECT_STREQ(balanceName(Balance::kStaticRr), "static-rr");
  EXPECT_STREQ(balanceName(Balance::kLeastConn), "leastconn");
  EXPECT_STREQ(balanceName(Balance::kFirst), "first");
  EXPECT_STREQ(balanceName(Balance::kSource), "source");
  EXPECT_STREQ(balanceName(Balance::kRandom), "random");
  EXPECT_STREQ(balanceName(Balance::kUri), "uri");
  EXPECT_STREQ(balanceName(Balance::kHdr), "hdr");
  EXPECT_STREQ(checkTypeName(CheckType::kTcp), "tcp");
  EXPECT_STREQ(checkTypeName(CheckType::kHttp), "http");
  EXPECT_STREQ(checkTypeName(CheckType::kMysql), "mysql");
}

// Every HTTP key that loads while mode = "http" is still refused, each set to a value other
// than its default.
constexpr const char* kHttpKeys = R"([global]
access_log = "/var/log/tandem/access.log"
log_format = "json"

[defaults]
timeout_http_request = "5s"
timeout_http_keep_alive = "2s"
max_header_size = 1048576
max_headers = 1

[[backend]]
name = "web"
error_limit = 1000
servers = [{ name = "web1", address = "web1:80" }]

[backend.check]
type = "http"
method = "OPTIONS"
path = "/health.php?full=1&x=%20"
host = "web.example:8080"
expect = [204, "300-302", "4xx"]

[[frontend]]
name = "copies"
listen = ":8090"
backend = "web"

[[frontend]]
name = "overrides"
listen = ":8091"
backend = "web"
timeout_http_request = "30s"
timeout_http_keep_alive = "1m"
max_header_size = 1024
max_headers = 1000
)";

TEST(ConfigTest, HttpKeysGlobalAndDefaults) {
  Config c = loadConfigString(kHttpKeys, "http.toml");
  EXPECT_EQ(c.global.access_log, "/var/log/tandem/access.log");
  EXPECT_EQ(c.global.log_format, LogFormat::kJson);
  EXPECT_EQ(c.defaults.timeout_http_request, Millis(5000));
  EXPECT_EQ(c.defaults.timeout_http_keep_alive, Millis(2000));
  EXPECT_EQ(c.defaults.max_header_size, 1048576);
  EXPECT_EQ(c.defaults.max_headers, 1);
}

TEST(ConfigTest, HttpKeysFrontendsCopyOrOverrideDefaults) {
  Config c = loadConfigString(kHttpKeys, "http.toml");
  ASSERT_EQ(c.frontends.size(), 2u);
  const FrontendConfig& copies = c.frontends[0];
  EXPECT_EQ(copies.timeout_http_request, Millis(5000));
  EXPECT_EQ(copies.timeout_http_keep_alive, Millis(2000));
  EXPECT_EQ(copies.max_header_size, 1048576);
  EXPECT_EQ(copies.max_headers, 1);
  const FrontendConfig& overrides = c.frontends[1];
  EXPECT_EQ(overrides.timeout_http_request, Millis(30000));
  EXPECT_EQ(overrides.timeout_http_keep_alive, Millis(60000));
  EXPECT_EQ(overrides.max_header_size, 1024);
  EXPECT_EQ(overrides.max_headers, 1000);
}

TEST(ConfigTest, HttpKeysBackendAndCheck) {
  Config c = loadConfigString(kHttpKeys, "http.toml");
  const BackendConfig& web = c.backends.at(0);
  EXPECT_EQ(web.error_limit, 1000);
  ASSERT_TRUE(web.check.has_value());
  EXPECT_EQ(web.check->type, CheckType::kHttp);
  EXPECT_EQ(web.check->line, 16);
  EXPECT_EQ(web.check->method, "OPTIONS");
  EXPECT_EQ(web.check->path, "/health.php?full=1&x=%20");
  EXPECT_EQ(web.check->host, "web.example:8080");
  ASSERT_EQ(web.check->expect.size(), 3u);
  EXPECT_EQ(web.check->expect[0].low, 204);
  EXPECT_EQ(web.check->expect[0].high, 204);
  EXPECT_EQ(web.check->expect[1].low, 300);
  EXPECT_EQ(web.check->expect[1].high, 302);
  EXPECT_EQ(web.check->expect[2].low, 400);
  EXPECT_EQ(web.check->expect[2].high, 499);
}

// A config whose only backend has `check` = the given inline table.
std::string withCheck(const std::string& check) {
  return "[[backend]]\nname = \"b\"\ncheck = " + check +
         "\nservers = [{ name = \"s\", address = \"h:1\" }]\n"
         "[[frontend]]\nname = \"f\"\nlisten = \":1\"\nbackend = \"b\"\n";
}

std::vector<StatusRange> expectOf(const std::string& expect) {
  Config c = loadConfigString(withCheck("{ type = \"http\", expect = " + expect + " }"), "t");
  return c.backends.at(0).check.value().expect;
}

MATCHER_P2(IsRange, low, high, "") {
  return arg.low == low && arg.high == high;
}

TEST(ConfigTest, CheckExpectForms) {
  using ::testing::ElementsAre;
  EXPECT_THAT(expectOf("200"), ElementsAre(IsRange(200, 200)));
  EXPECT_THAT(expectOf("\"200-399\""), ElementsAre(IsRange(200, 399)));
  EXPECT_THAT(expectOf("\"100-599\""), ElementsAre(IsRange(100, 599)));
  EXPECT_THAT(expectOf("\"301-301\""), ElementsAre(IsRange(301, 301)));
  EXPECT_THAT(expectOf("\"1xx\""), ElementsAre(IsRange(100, 199)));
  EXPECT_THAT(expectOf("\"5xx\""), ElementsAre(IsRange(500, 599)));
  EXPECT_THAT(expectOf("[200, 204]"), ElementsAre(IsRange(200, 200), IsRange(204, 204)));
  EXPECT_THAT(expectOf("[\"2xx\", \"3xx\"]"), ElementsAre(IsRange(200, 299), IsRange(300, 399)));
  EXPECT_THAT(expectOf("[599, \"100-101\", \"4xx\"]"),
              ElementsAre(IsRange(599, 599), IsRange(100, 101), IsRange(400, 499)));
}

TEST(ConfigTest, HttpCheckRequestKeys) {
  Config c = loadConfigString(
      withCheck("{ type = \"http\", method = \"HEAD\", path = \"/a/b\", host = \"[::1]:8080\" }"),
      "t");
  const CheckConfig& check = c.backends.at(0).check.value();
  EXPECT_EQ(check.type, CheckType::kHttp);
  EXPECT_EQ(check.method, "HEAD");
  EXPECT_EQ(check.path, "/a/b");
  EXPECT_EQ(check.host, "[::1]:8080");
  ASSERT_EQ(check.expect.size(), 1u);  // the default, 200-399
  EXPECT_EQ(check.expect[0].low, 200);
  EXPECT_EQ(check.expect[0].high, 399);
  c = loadConfigString(withCheck("{ type = \"http\", host = \"\" }"), "t");
  EXPECT_EQ(c.backends.at(0).check->host, "");  // the default, spelled out
}

// Loads a config with HTTP backends (kept as a helper so the HTTP-only key tests read alike).
std::optional<Config> loadHttpMode(const std::string& text) {
  return loadConfigString(text, "t.toml");
}

constexpr const char* kHttpBackends = R"toml(
[[backend]]
name = "by-uri"
mode = "http"
balance = "uri"
cookie = "SERVERID"
servers = [{ name = "s", address = "h:1" }]

[[backend]]
name = "by-header"
mode = "http"
balance = "hdr(X-User-Id)"
cookie = "PHP.sess_ID!#$%&'*+^`|~-"
servers = [{ name = "s", address = "h:1" }]

[[frontend]]
name = "f"
listen = ":1"
mode = "http"
backend = "by-uri"
)toml";

TEST(ConfigTest, HttpBackendBalanceAndCookie) {
  std::optional<Config> c = loadHttpMode(kHttpBackends);
  ASSERT_TRUE(c.has_value());
  const BackendConfig& by_uri = c->backends.at(0);
  EXPECT_EQ(by_uri.mode, Mode::kHttp);
  EXPECT_EQ(by_uri.balance, Balance::kUri);
  EXPECT_EQ(by_uri.balance_header, "");
  EXPECT_EQ(by_uri.cookie, "SERVERID");
  const BackendConfig& by_header = c->backends.at(1);
  EXPECT_EQ(by_header.balance, Balance::kHdr);
  EXPECT_EQ(by_header.balance_header, "X-User-Id");
  EXPECT_EQ(by_header.cookie, "PHP.sess_ID!#$%&'*+^`|~-");
  EXPECT_EQ(c->frontends.at(0).mode, Mode::kHttp);
}

TEST(ConfigTest, BadAccessLogAndLogFormat) {
  expectErrorBeforeTail("[global]\naccess_log = \"\"\n", 2, "global.access_log",
                        "expected \"stdout\", \"off\" or a file path, found an empty string");
  expectErrorBeforeTail("[global]\naccess_log = false\n", 2, "global.access_log",
                        "expected a string, found a boolean");
  expectErrorBeforeTail("[global]\nlog_format = 1\n", 2, "global.log_format",
                        "expected a string, found an integer");
  for (const char* value : {"stdout", "off", "access.log", "/dev/stderr"}) {
    Config c = loadConfigString(
        "[global]\naccess_log = \"" + std::string(value) + "\"\n" + kValidTail, "t");
    EXPECT_EQ(c.global.access_log, value);
  }
}

TEST(ConfigTest, BadHttpLimitsInDefaults) {
  expectErrorBeforeTail("[defaults]\nmax_header_size = 1023\n", 2, "defaults.max_header_size",
                        "1023 is out of range 1024..1048576");
  expectErrorBeforeTail("[defaults]\nmax_header_size = 1048577\n", 2, "defaults.max_header_size",
                        "1048577 is out of range 1024..1048576");
  expectErrorBeforeTail("[defaults]\n\nmax_headers = 0\n", 3, "defaults.max_headers",
                        "0 is out of range 1..1000");
  expectErrorBeforeTail("[defaults]\nmax_headers = 1001\n", 2, "defaults.max_headers",
                        "1001 is out of range 1..1000");
  expectErrorBeforeTail("[defaults]\nmax_headers = \"100\"\n", 2, "defaults.max_headers",
                        "expected an integer, found a string");
  expectErrorBeforeTail("[defaults]\ntimeout_http_request = \"0s\"\n", 2,
                        "defaults.timeout_http_request", "\"0s\" must be greater than zero");
  expectErrorBeforeTail("[defaults]\ntimeout_http_keep_alive = \"0ms\"\n", 2,
                        "defaults.timeout_http_keep_alive", "\"0ms\" must be greater than zero");
  expectErrorBeforeTail("[defaults]\ntimeout_http_keep_alive = 10\n", 2,
                        "defaults.timeout_http_keep_alive",
                        "expected a duration string such as \"2s\", found an integer");
}

TEST(ConfigTest, BadHttpLimitsInFrontend) {
  std::string frontend = "[[frontend]]\nname = \"f\"\nlisten = \":1\"\nbackend = \"tail\"\n";
  expectErrorBeforeTail(frontend + "timeout_http_request = \"1x\"\n", 5,
                        "frontend[f].timeout_http_request", "\"1x\" is not a duration");
  expectErrorBeforeTail(frontend + "timeout_http_keep_alive = \"0s\"\n", 5,
                        "frontend[f].timeout_http_keep_alive", "must be greater than zero");
  expectErrorBeforeTail(frontend + "max_header_size = 100\n", 5, "frontend[f].max_header_size",
                        "100 is out of range 1024..1048576");
  expectErrorBeforeTail(frontend + "max_headers = -1\n", 5, "frontend[f].max_headers",
                        "-1 is out of range 1..1000");
  expectErrorBeforeTail(frontend + "max_headers_size = 2048\n", 5, "frontend[f].max_headers_size",
                        "unknown key");
}

TEST(ConfigTest, BadHeaderBalance) {
  std::string backend = "[[backend]]\nname = \"b\"\nbalance = ";
  expectErrorBeforeTail(backend + "\"hdr\"\n", 3, "backend[b].balance",
                        "\"hdr\" needs a header name in parentheses, e.g. \"hdr(X-User)\"");
  expectErrorBeforeTail(backend + "\"hdr()\"\n", 3, "backend[b].balance",
                        "\"hdr()\" needs a header name in parentheses");
  expectErrorBeforeTail(backend + "\"hdr(X-User\"\n", 3, "backend[b].balance",
                        "\"hdr(X-User\" needs a header name in parentheses");
  expectErrorBeforeTail(backend + "\"hdr(X User)\"\n", 3, "backend[b].balance",
                        "\"hdr(X User)\": \"X User\" is not a valid header name (use letters, "
                        "digits and '-')");
  expectErrorBeforeTail(backend + "\"hdr(X_User)\"\n", 3, "backend[b].balance",
                        "\"X_User\" is not a valid header name");
  expectErrorBeforeTail(backend + "\"hdr(a(b))\"\n", 3, "backend[b].balance",
                        "\"a(b)\" is not a valid header name");
  expectErrorBeforeTail(backend + "\"hdrX\"\n", 3, "backend[b].balance", "\"hdrX\" is not one of:");
  expectErrorBeforeTail(backend + "\"URI\"\n", 3, "backend[b].balance",
                        "\"URI\" is not one of: roundrobin, static-rr, leastconn, first, source, "
                        "random, uri, hdr(NAME)");
  expectErrorBeforeTail(backend + "[\"uri\"]\n", 3, "backend[b].balance",
                        "expected a string, found an array");
}

TEST(ConfigTest, BadCookieAndErrorLimit) {
  std::string backend = "[[backend]]\nname = \"b\"\n";
  expectErrorBeforeTail(backend + "cookie = \"\"\n", 3, "backend[b].cookie",
                        "\"\" is not a valid cookie name (use letters, digits and "
                        "!#$%&'*+.^_`|~-)");
  expectErrorBeforeTail(backend + "cookie = \"SERVER ID\"\n", 3, "backend[b].cookie",
                        "\"SERVER ID\" is not a valid cookie name");
  expectErrorBeforeTail(backend + "cookie = \"a=b\"\n", 3, "backend[b].cookie",
                        "\"a=b\" is not a valid cookie name");
  expectErrorBeforeTail(backend + "cookie = \"a;b\"\n", 3, "backend[b].cookie",
                        "\"a;b\" is not a valid cookie name");
  expectErrorBeforeTail(backend + "cookie = true\n", 3, "backend[b].cookie",
                        "expected a string, found a boolean");
  expectErrorBeforeTail(backend + "error_limit = -1\n", 3, "backend[b].error_limit",
                        "-1 is out of range 0..1000");
  expectErrorBeforeTail(backend + "error_limit = 1001\n", 3, "backend[b].error_limit",
                        "1001 is out of range 0..1000");
  Config c = loadConfigString(backend + "error_limit = 0\nservers = [{ name = \"s\", address = " +
                                  "\"h:1\" }]\n[[frontend]]\nname = \"f\"\nlisten = \":1\"\n" +
                                  "backend = \"b\"\n",
                              "t");
  EXPECT_EQ(c.backends.at(0).error_limit, 0);
}

// The values themselves are valid: only the backend's mode is wrong.
TEST(ConfigTest, HttpBalanceAndCookieNeedHttpMode) {
  std::string backend = "[[backend]]\nname = \"b\"\n";
  expectErrorBeforeTail(backend + "balance = \"uri\"\n", 3, "backend[b].balance",
                        "balance \"uri\" needs mode = \"http\"");
  expectErrorBeforeTail(backend + "mode = \"tcp\"\nbalance = \"hdr(X-User)\"\n", 4,
                        "backend[b].balance", "balance \"hdr(X-User)\" needs mode = \"http\"");
  expectErrorBeforeTail(backend + "balance = \"source\"\ncookie = \"SERVERID\"\n", 4,
                        "backend[b].cookie", "cookie needs mode = \"http\"");
}

TEST(ConfigTest, BadCheckRequestKeys) {
  std::string check = "[[backend]]\nname = \"b\"\n[backend.check]\ntype = \"http\"\n";
  expectErrorBeforeTail(check + "method = \"get\"\n", 5, "backend[b].check.method",
                        "\"get\" is not an HTTP method (use uppercase letters, e.g. \"GET\")");
  expectErrorBeforeTail(check + "method = \"\"\n", 5, "backend[b].check.method",
                        "\"\" is not an HTTP method");
  expectErrorBeforeTail(check + "method = \"GET /\"\n", 5, "backend[b].check.method",
                        "\"GET /\" is not an HTTP method");
  expectErrorBeforeTail(check + "method = 1\n", 5, "backend[b].check.method",
                        "expected a string, found an integer");
  expectErrorBeforeTail(check + "path = \"health\"\n", 5, "backend[b].check.path",
                        "\"health\" is not a valid request path (it must start with \"/\" and hold "
                        "no spaces, control characters or non-ASCII bytes)");
  expectErrorBeforeTail(check + "path = \"\"\n", 5, "backend[b].check.path",
                        "\"\" is not a valid request path");
  expectErrorBeforeTail(check + "path = \"/a b\"\n", 5, "backend[b].check.path",
                        "\"/a b\" is not a valid request path");
  expectErrorBeforeTail(check + "path = \"/a\\r\\nX: y\"\n", 5, "backend[b].check.path",
                        "is not a valid request path");
  expectErrorBeforeTail(check + "path = \"/\\u007f\"\n", 5, "backend[b].check.path",
                        "is not a valid request path");
  expectErrorBeforeTail(check + "path = \"/caf\\u00e9\"\n", 5, "backend[b].check.path",
                        "is not a valid request path");
  expectErrorBeforeTail(
      check + "host = \"web 1\"\n", 5, "backend[b].check.host",
      "\"web 1\" is not a valid host (use a host name or address, and \":port\")");
  expectErrorBeforeTail(check + "host = \"web/x\"\n", 5, "backend[b].check.host",
                        "\"web/x\" is not a valid host");
  expectErrorBeforeTail(check + "host = \"web\\r\\nX: y\"\n", 5, "backend[b].check.host",
                        "is not a valid host");
}

TEST(ConfigTest, BadCheckExpect) {
  std::string check = "[[backend]]\nname = \"b\"\n[backend.check]\ntype = \"http\"\nexpect = ";
  std::string key = "backend[b].check.expect";
  expectErrorBeforeTail(check + "99\n", 5, key, "99 is out of range 100..599");
  expectErrorBeforeTail(check + "600\n", 5, key, "600 is out of range 100..599");
  expectErrorBeforeTail(check + "\"99-200\"\n", 5, key, "\"99-200\": 99 is out of range 100..599");
  expectErrorBeforeTail(check + "\"200-600\"\n", 5, key,
                        "\"200-600\": 600 is out of range 100..599");
  expectErrorBeforeTail(check + "\"399-200\"\n", 5, key, "\"399-200\": 399 is greater than 200");
  std::string forms =
      " (use a status such as 200, a range such as \"200-399\" or a class such as \"2xx\")";
  expectErrorBeforeTail(check + "\"200\"\n", 5, key,
                        "\"200\" is not a status range or class" + forms);
  expectErrorBeforeTail(check + "\"6xx\"\n", 5, key, "\"6xx\" is not a status range or class");
  expectErrorBeforeTail(check + "\"0xx\"\n", 5, key, "\"0xx\" is not a status range or class");
  expectErrorBeforeTail(check + "\"2XX\"\n", 5, key, "\"2XX\" is not a status range or class");
  expectErrorBeforeTail(check + "\"200-\"\n", 5, key, "\"200-\" is not a status range" + forms);
  expectErrorBeforeTail(check + "\"200-3999\"\n", 5, key, "\"200-3999\" is not a status range");
  expectErrorBeforeTail(check + "\"+200-399\"\n", 5, key, "\"+200-399\" is not a status range");
  expectErrorBeforeTail(check + "\"200 - 399\"\n", 5, key, "\"200 - 399\" is not a status range");
  expectErrorBeforeTail(check + "\"200-300-400\"\n", 5, key, "is not a status range");
  expectErrorBeforeTail(check + "200.0\n", 5, key,
                        "expected a status, a \"low-high\" range or a \"Nxx\" class, found a "
                        "floating-point number");
  expectErrorBeforeTail(check + "[]\n", 5, key,
                        "expected at least one status, found an empty array");
  // Inside an array, the error names the line of the offending element.
  expectErrorBeforeTail(check + "[\n  200,\n  \"2xx\",\n  700,\n]\n", 8, key,
                        "700 is out of range 100..599");
  expectErrorBeforeTail(check + "[200, [204]]\n", 5, key, "found an array");
  expectErrorBeforeTail(check + "[200,\n true]\n", 6, key, "found a boolean");
}

TEST(ConfigTest, HttpCheckKeysOnTcpCheck) {
  for (const char* key : {"method", "path", "host", "expect"}) {
    std::string value = std::string(key) == "expect" ? "200" : "\"/\"";
    expectErrorBeforeTail("[[backend]]\nname = \"b\"\n[backend.check]\ntype = \"tcp\"\n" +
                              std::string(key) + " = " + value + "\n",
                          5, "backend[b].check." + std::string(key),
                          "only for type = \"http\" (this check has type = \"tcp\")");
  }
  // Without a type the check is "tcp" too.
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\ncheck = { path = \"/health.php\" }\n", 3,
                        "backend[b].check.path", "only for type = \"http\"");
}

// Every MySQL key, each set to a value other than its default.
constexpr const char* kMysqlKeys = R"([global]
state_file = "/var/lib/tandem/writers.state"

[[backend]]
name = "db-writer"
role = "writer"
failback = "auto"
failback_after = "5m"
max_lag = "30s"
allow_broken_replica_failover = true
servers = [{ name = "db1", address = "db1:3306" }]

[backend.check]
type = "mysql"
mode = "login"
user = "monitor"
password = "s3cret"

[[backend]]
name = "db-reader"
role = "reader"
max_lag = "0s"
check = { type = "mysql", user = "monitor", password = "" }
servers = [{ name = "db1", address = "db1:3306" }]

[[backend]]
name = "db-greeting"
check = { type = "mysql" }
servers = [{ name = "db1", address = "db1:3306" }]

[[frontend]]
name = "writer"
listen = ":3306"
backend = "db-writer"
)";

TEST(ConfigTest, MysqlKeysWriter) {
  Config c = loadConfigString(kMysqlKeys, "mysql.toml");
  EXPECT_EQ(c.global.state_file, "/var/lib/tandem/writers.state");
  const BackendConfig& writer = c.backends.at(0);
  EXPECT_EQ(writer.role, Role::kWriter);
  EXPECT_EQ(writer.failback, Failback::kAuto);
  EXPECT_EQ(writer.failback_after, Millis(300000));
  EXPECT_EQ(writer.max_lag, Millis(30000));
  EXPECT_TRUE(writer.allow_broken_replica_failover);
  ASSERT_TRUE(writer.check.has_value());
  EXPECT_EQ(writer.check->type, CheckType::kMysql);
  EXPECT_EQ(writer.check->mysql_mode, MysqlCheckMode::kLogin);
  EXPECT_EQ(writer.check->user, "monitor");
  EXPECT_EQ(writer.check->password, "s3cret");
}

// The mode defaults to what the credentials allow: the replication state with a user, the
// greeting without one.
TEST(ConfigTest, MysqlKeysReaderAndDefaultModes) {
  Config c = loadConfigString(kMysqlKeys, "mysql.toml");
  const BackendConfig& reader = c.backends.at(1);
  EXPECT_EQ(reader.role, Role::kReader);
  EXPECT_EQ(reader.max_lag, Millis(0));
  EXPECT_EQ(reader.check->mysql_mode, MysqlCheckMode::kReplication);
  EXPECT_EQ(reader.check->password, "");
  const BackendConfig& greeting = c.backends.at(2);
  EXPECT_EQ(greeting.role, Role::kNone);
  EXPECT_EQ(greeting.check->mysql_mode, MysqlCheckMode::kHandshake);
  EXPECT_EQ(greeting.check->user, "");
  EXPECT_EQ(greeting.check->password, "");
}

TEST(ConfigTest, MysqlKeysDefaults) {
  Config c = loadConfigString(kValidTail, "min.toml");
  EXPECT_EQ(c.global.state_file, "");
  const BackendConfig& b = c.backends.at(0);
  EXPECT_EQ(b.role, Role::kNone);
  EXPECT_EQ(b.failback, Failback::kManual);
  EXPECT_EQ(b.failback_after, Millis(60000));
  EXPECT_EQ(b.max_lag, Millis(10000));
  EXPECT_FALSE(b.allow_broken_replica_failover);
}

// A file in a fresh temporary directory, removed with it.
class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    char pattern[] = "/tmp/tandem-config-test-XXXXXX";
    dir_ = mkdtemp(pattern);
    path_ = dir_ + "/secret";
    FILE* f = fopen(path_.c_str(), "wb");
    fwrite(content.data(), 1, content.size(), f);
    fclose(f);
  }
  ~TempFile() { std::filesystem::remove_all(dir_); }
  const std::string& path() const { return path_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string path_;
};

std::string passwordFromFile(const std::string& content) {
  TempFile file(content);
  Config c = loadConfigString(
      withCheck("{ type = \"mysql\", user = \"m\", password_file = \"" + file.path() + "\" }"),
      "t");
  return c.backends.at(0).check->password;
}

// Exactly one trailing newline goes (as `echo` writes it), and nothing else.
TEST(ConfigTest, MysqlPasswordFile) {
  EXPECT_EQ(passwordFromFile("s3cret\n"), "s3cret");
  EXPECT_EQ(passwordFromFile("s3cret"), "s3cret");
  EXPECT_EQ(passwordFromFile("s3cret\r\n"), "s3cret");
  EXPECT_EQ(passwordFromFile("s3cret\n\n"), "s3cret\n");
  EXPECT_EQ(passwordFromFile(" pass word \n"), " pass word ");
  EXPECT_EQ(passwordFromFile(""), "");
}

TEST(ConfigTest, MysqlPasswordFileUnreadable) {
  std::string check =
      "[[backend]]\nname = \"b\"\n[backend.check]\ntype = \"mysql\"\n"
      "user = \"m\"\npassword_file = ";
  std::string key = "backend[b].check.password_file";
  expectErrorBeforeTail(check + "\"/nonexistent/secret\"\n", 6, key,
                        "\"/nonexistent/secret\": No such file or directory");
  TempFile file("x");
  expectErrorBeforeTail(check + "\"" + file.dir() + "\"\n", 6, key,
                        "\"" + file.dir() + "\": Is a directory");
  expectErrorBeforeTail(check + "\"/dev/zero\"\n", 6, key, "\"/dev/zero\": File too large");
  expectErrorBeforeTail(check + "\"\"\n", 6, key, "expected a file path, found an empty string");
  expectErrorBeforeTail(check + "1\n", 6, key, "expected a string, found an integer");
}

TEST(ConfigTest, BadMysqlCredentials) {
  std::string check = "[[backend]]\nname = \"b\"\n[backend.check]\ntype = \"mysql\"\n";
  std::string key = "backend[b].check.";
  expectErrorBeforeTail(check + "password = \"p\"\n", 5, key + "password", "needs a user");
  expectErrorBeforeTail(check + "password_file = \"/etc/hostname\"\n", 5, key + "password_file",
                        "needs a user");
  expectErrorBeforeTail(check + "user = \"m\"\n", 5, key + "user",
                        "needs password or password_file");
  expectErrorBeforeTail(check + "user = \"m\"\npassword = \"p\"\npassword_file = \"/x\"\n", 7,
                        key + "password_file",
                        "give either password (line 6) or password_file, not both");
  expectErrorBeforeTail(check + "user = \"\"\npassword = \"p\"\n", 5, key + "user",
                        "expected a user name, found an empty string");
  expectErrorBeforeTail(check + "user = \"m\"\npassword = 1\n", 6, key + "password",
                        "expected a string, found an integer");
}

TEST(ConfigTest, BadMysqlCheckMode) {
  std::string check = "[[backend]]\nname = \"b\"\n[backend.check]\ntype = \"mysql\"\n";
  std::string key = "backend[b].check.mode";
  expectErrorBeforeTail(check + "mode = \"login\"\n", 5, key, "mode \"login\" needs a user");
  expectErrorBeforeTail(check + "mode = \"replication\"\n", 5, key,
                        "mode \"replication\" needs a user");
  expectErrorBeforeTail(check + "mode = \"ping\"\n", 5, key,
                        "\"ping\" is not one of: handshake, login, replication");
  // A handshake may name its user (the name the server logs for the refused login).
  Config c = loadConfigString(
      withCheck("{ type = \"mysql\", mode = \"handshake\", user = \"m\", password = \"\" }"), "t");
  EXPECT_EQ(c.backends.at(0).check->mysql_mode, MysqlCheckMode::kHandshake);
  EXPECT_EQ(c.backends.at(0).check->user, "m");
}

TEST(ConfigTest, MysqlCheckKeysOnOtherChecks) {
  for (const char* type : {"tcp", "http"}) {
    for (const char* key : {"mode", "user", "password", "password_file"}) {
      expectErrorBeforeTail(
          "[[backend]]\nname = \"b\"\n[backend.check]\ntype = \"" + std::string(type) + "\"\n" +
              key + " = \"x\"\n",
          5, "backend[b].check." + std::string(key),
          "only for type = \"mysql\" (this check has type = \"" + std::string(type) + "\")");
    }
  }
}

TEST(ConfigTest, BadRoleKeys) {
  std::string b = "[[backend]]\nname = \"b\"\n";
  std::string key = "backend[b].";
  expectErrorBeforeTail(b + "role = \"master\"\n", 3, key + "role",
                        "\"master\" is not one of: writer, reader");
  expectErrorBeforeTail(b + "role = \"writer\"\nfailback = \"never\"\n", 4, key + "failback",
                        "\"never\" is not one of: manual, auto");
  expectErrorBeforeTail(b + "role = \"writer\"\nfailback_after = \"5\"\n", 4,
                        key + "failback_after", "\"5\" is not a duration");
  expectErrorBeforeTail(b + "role = \"reader\"\nmax_lag = 10\n", 4, key + "max_lag",
                        "expected a duration string such as \"2s\", found an integer");
  expectErrorBeforeTail(b + "role = \"writer\"\nallow_broken_replica_failover = \"yes\"\n", 4,
                        key + "allow_broken_replica_failover",
                        "expected a boolean (true or false), found a string");
  expectErrorBeforeTail("[global]\nstate_file = \"\"\n", 2, "global.state_file",
                        "expected a file path, found an empty string");
}

TEST(ConfigTest, RoleKeysNeedTcpMode) {
  std::string b = "[[backend]]\nname = \"b\"\nmode = \"http\"\n";
  expectErrorBeforeTail(b + "role = \"writer\"\n", 4, "backend[b].role",
                        "role needs mode = \"tcp\"");
  expectErrorBeforeTail(b + "max_lag = \"1s\"\n", 4, "backend[b].max_lag",
                        "max_lag needs mode = \"tcp\"");
}

TEST(ConfigTest, RoleKeysNeedTheirRole) {
  std::string b = "[[backend]]\nname = \"b\"\n";
  for (const char* k : {"failback = \"auto\"", "failback_after = \"1m\"",
                        "allow_broken_replica_failover = true", "manage_read_only = true"}) {
    std::string name = std::string(k).substr(0, std::string(k).find(' '));
    expectErrorBeforeTail(b + k + "\n", 3, "backend[b]." + name,
                          "only for role = \"writer\" (this backend has no role)");
    expectErrorBeforeTail(b + "role = \"reader\"\n" + k + "\n", 4, "backend[b]." + name,
                          "only for role = \"writer\" (this backend has role = \"reader\")");
  }
  expectErrorBeforeTail(b + "max_lag = \"5s\"\n", 3, "backend[b].max_lag",
                        "only for role = \"writer\" or \"reader\" (this backend has no role)");
}

TEST(ConfigTest, RoleNeedsMysqlCheck) {
  std::string b = "[[backend]]\nname = \"b\"\nrole = \"writer\"\n";
  expectErrorBeforeTail(
      b, 3, "backend[b].role",
      "role = \"writer\" needs a [backend.check] with type = \"mysql\" (it has no check)");
  expectErrorBeforeTail(b + "check = { type = \"tcp\" }\n", 3, "backend[b].role",
                        "(its check has type = \"tcp\")");
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\nrole = \"reader\"\ncheck = {}\n", 3,
                        "backend[b].role", "role = \"reader\" needs a [backend.check]");
}

// manage_read_only sets read_only through the check's user, so it needs one.
TEST(ConfigTest, ManageReadOnlyNeedsACheckUser) {
  std::string b = "[[backend]]\nname = \"b\"\nrole = \"writer\"\nmanage_read_only = true\n";
  expectErrorBeforeTail(b + "check = { type = \"mysql\" }\n", 4, "backend[b].manage_read_only",
                        "needs a check user");
  Config c = loadConfigString(b + "check = { type = \"mysql\", user = \"m\", password = \"p\" }\n" +
                                  "servers = [{ name = \"s\", address = \"10.0.0.1:3306\" }]\n" +
                                  kValidTail,
                              "t.toml");
  EXPECT_TRUE(c.backends[0].manage_read_only);
}

// The reference config shipped in deploy/ must stay loadable as the schema evolves, and
// describe the stack its comments promise: an HTTP web backend, a MySQL writer and reader over
// the same two masters, and the admin interface.
TEST(ConfigTest, ExampleConfigLoads) {
  std::filesystem::path root =
      std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  std::string path = (root / "deploy" / "tandem.example.toml").string();
  Config c = loadConfigFile(path);
  EXPECT_EQ(c.path, path);
  EXPECT_FALSE(c.global.state_file.empty()) << "the writer is kept across restarts";
  ASSERT_EQ(c.frontends.size(), 3u);
  EXPECT_EQ(c.frontends[0].listen.at(0).port, 8090);
  EXPECT_EQ(c.frontends[0].mode, Mode::kHttp);
  EXPECT_EQ(c.frontends[1].listen.at(0).port, 3306);
  EXPECT_EQ(c.frontends[2].listen.at(0).port, 3307);

  const BackendConfig* web = c.findBackend(c.frontends[0].backend);
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(web->mode, Mode::kHttp);
  EXPECT_EQ(web->cookie, "SERVERID");
  EXPECT_EQ(web->servers.size(), 2u);
  ASSERT_TRUE(web->check.has_value());
  EXPECT_EQ(web->check->type, CheckType::kHttp);
  EXPECT_EQ(web->check->path, "/health.php");
  ASSERT_EQ(web->check->expect.size(), 1u);
  EXPECT_EQ(web->check->expect[0].low, 200);
  EXPECT_EQ(web->check->expect[0].high, 299);

  const BackendConfig* writer = c.findBackend(c.frontends[1].backend);
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(writer->role, Role::kWriter);
  EXPECT_EQ(writer->on_marked_down, OnMarkedDown::kShutdownSessions);
  ASSERT_TRUE(writer->check.has_value());
  EXPECT_EQ(writer->check->type, CheckType::kMysql);
  EXPECT_EQ(writer->check->mysql_mode, MysqlCheckMode::kReplication);
  EXPECT_FALSE(writer->check->password.empty());
  ASSERT_EQ(writer->servers.size(), 2u);

  const BackendConfig* reader = c.findBackend(c.frontends[2].backend);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->role, Role::kReader);
  EXPECT_EQ(reader->balance, Balance::kLeastConn);
  ASSERT_TRUE(reader->check.has_value());
  EXPECT_EQ(reader->check->mysql_mode, MysqlCheckMode::kReplication);
  // A reader falls back to the writer backend that lists the same addresses.
  ASSERT_EQ(reader->servers.size(), writer->servers.size());
  for (size_t i = 0; i < reader->servers.size(); ++i) {
    EXPECT_EQ(reader->servers[i].address.str(), writer->servers[i].address.str());
  }

  EXPECT_TRUE(c.admin.enabled);
  ASSERT_TRUE(c.admin.listen.has_value());
  EXPECT_EQ(c.admin.listen->port, 8081);
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

constexpr const char* kMysqlRoles = R"toml(
[[frontend]]
name = "w"
listen = "127.0.0.1:3306"
backend = "db"

[[backend]]
name = "db"
role = "writer"
failback = "auto"
failback_after = "30s"
check = { type = "mysql", user = "monitor", password = "pw" }
servers = [{ name = "db1", address = "127.0.0.1:13306" }]

[[backend]]
name = "db-read"
role = "reader"
max_lag = "5s"
check = { type = "mysql", user = "monitor", password = "pw" }
servers = [{ name = "db1", address = "127.0.0.1:13306" }]
)toml";

TEST(ConfigTest, MysqlRolesAndReaderDefaultBalance) {
  Config c = loadConfigString(kMysqlRoles, "t.toml");
  const BackendConfig& writer = c.backends.at(0);
  EXPECT_EQ(writer.role, Role::kWriter);
  EXPECT_EQ(writer.failback, Failback::kAuto);
  EXPECT_EQ(writer.failback_after, Millis(30000));
  EXPECT_EQ(writer.check->mysql_mode, MysqlCheckMode::kReplication) << "a user was given";
  const BackendConfig& reader = c.backends.at(1);
  EXPECT_EQ(reader.role, Role::kReader);
  EXPECT_EQ(reader.max_lag, Millis(5000));
  EXPECT_EQ(reader.balance, Balance::kLeastConn) << "readers default to leastconn";
}

// [global] dns_refresh and hosts_file (core/dns.h).
TEST(ConfigTest, DnsKeys) {
  Config defaults = loadConfigString(kValidTail, "t.toml");
  EXPECT_EQ(defaults.global.dns_refresh, Millis(10000));
  EXPECT_EQ(defaults.global.hosts_file, "");
  Config c = loadConfigString(
      std::string("[global]\ndns_refresh = \"200ms\"\nhosts_file = \"/etc/tandem/hosts\"\n") +
          kValidTail,
      "t.toml");
  EXPECT_EQ(c.global.dns_refresh, Millis(200));
  EXPECT_EQ(c.global.hosts_file, "/etc/tandem/hosts");
  Config off = loadConfigString(std::string("[global]\ndns_refresh = \"0s\"\n") + kValidTail, "t");
  EXPECT_EQ(off.global.dns_refresh, Millis(0));
}

TEST(ConfigTest, DnsKeyErrors) {
  expectErrorBeforeTail("[global]\ndns_refresh = \"10ms\"\n", 2, "global.dns_refresh",
                        "must be \"0s\" (off) or at least 100ms, found 10ms");
  expectErrorBeforeTail("[global]\ndns_refresh = 10\n", 2, "global.dns_refresh",
                        "expected a duration string");
  expectErrorBeforeTail("[global]\nthreads = 1\ndns_refresh = \"soon\"\n", 3, "global.dns_refresh",
                        "soon");
  expectErrorBeforeTail("[global]\nhosts_file = \"\"\n", 2, "global.hosts_file",
                        "expected a file path, found an empty string");
  expectErrorBeforeTail("[global]\nhosts_file = [\"/etc/hosts\"]\n", 2, "global.hosts_file",
                        "expected a string");
  expectErrorBeforeTail("[global]\nhost_file = \"/etc/hosts\"\n", 2, "global.host_file",
                        "unknown key");
}

}  // namespace
}  // namespace tandem
