#include "core/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

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

// Every key of the schema, each set to a value other than its default.
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
  const BackendConfig& b = c.backends.at(0);
  EXPECT_EQ(b.mode, Mode::kTcp);
  EXPECT_EQ(b.balance, Balance::kRoundRobin);
  EXPECT_EQ(b.on_marked_down, OnMarkedDown::kNothing);
  EXPECT_FALSE(b.check.has_value());
  EXPECT_EQ(b.timeout_connect, Millis(5000));
  EXPECT_EQ(b.timeout_server, Millis(50000));
  EXPECT_EQ(b.retries, 3);
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
  expectErrorBeforeTail("[admin]\nlisten = \":8081\"\n", 1, "admin",
                        "unknown key (expected one of: global, defaults, backend, frontend)");
  expectErrorBeforeTail("[global]\nthread = 4\n", 2, "global.thread", "unknown key");
  expectErrorBeforeTail("[defaults]\ntimeout = \"1s\"\n", 2, "defaults.timeout", "unknown key");
  expectErrorBeforeTail(
      "[[frontend]]\nname = \"f\"\nlisten = \":1\"\nbackend = \"tail\"\nbind = 1\n", 5,
      "frontend[f].bind", "unknown key");
  expectErrorBeforeTail(
      "[[backend]]\nname = \"b\"\ncheck = { type = \"tcp\", path = \"/\" }\n"
      "servers = [{ name = \"s\", address = \"h:1\" }]\n",
      3, "backend[b].check.path", "unknown key (expected one of: type, interval,");
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
                        "random");
  expectErrorBeforeTail("[global]\nlog_level = \"warn\"\n", 2, "global.log_level",
                        "\"warn\" is not one of: debug, info, notice, warning, error");
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\nmode = \"udp\"\n", 3, "backend[b].mode",
                        "\"udp\" is not one of: tcp, http");
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\non_marked_down = \"kill\"\n", 3,
                        "backend[b].on_marked_down", "is not one of: none, shutdown-sessions");
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\ncheck = { type = \"ping\" }\n", 3,
                        "backend[b].check.type", "is not one of: tcp, http, mysql");
}

TEST(ConfigTest, NotAvailableYet) {
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\nmode = \"http\"\n", 3, "backend[b].mode",
                        "\"http\" is not available yet (HTTP load balancing is issue #3)");
  expectErrorBeforeTail("[[frontend]]\nname = \"f\"\nlisten = \":1\"\nmode = \"http\"\n", 4,
                        "frontend[f].mode", "\"http\" is not available yet (HTTP load balancing");
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\ncheck = { type = \"http\" }\n", 3,
                        "backend[b].check.type", "\"http\" checks are issue #3");
  expectErrorBeforeTail("[[backend]]\nname = \"b\"\n[backend.check]\ntype = \"mysql\"\n", 4,
                        "backend[b].check.type",
                        "\"mysql\" is not available yet (MySQL checks are issue #4)");
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
  EXPECT_STREQ(checkTypeName(CheckType::kTcp), "tcp");
  EXPECT_STREQ(checkTypeName(CheckType::kHttp), "http");
  EXPECT_STREQ(checkTypeName(CheckType::kMysql), "mysql");
}

// The reference config shipped in deploy/ must stay loadable as the schema evolves.
TEST(ConfigTest, ExampleConfigLoads) {
  std::filesystem::path root =
      std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  std::string path = (root / "deploy" / "tandem.example.toml").string();
  Config c = loadConfigFile(path);
  EXPECT_EQ(c.path, path);
  ASSERT_EQ(c.frontends.size(), 2u);
  EXPECT_EQ(c.frontends[0].listen.at(0).port, 3306);
  EXPECT_EQ(c.frontends[1].listen.at(0).port, 8090);
  const BackendConfig* db = c.findBackend(c.frontends[0].backend);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->balance, Balance::kFirst);
  EXPECT_EQ(db->on_marked_down, OnMarkedDown::kShutdownSessions);
  ASSERT_EQ(db->servers.size(), 2u);
  EXPECT_TRUE(db->servers[1].backup);
  EXPECT_EQ(c.findBackend(c.frontends[1].backend)->servers.size(), 2u);
}

}  // namespace
}  // namespace tandem
