// The admin listener's pure parts: the body of POST /api/command, the credential checks and
// the CSRF guard. The listener itself is driven over real sockets by
// tests/integration/admin_http_test.cpp.
#include "admin/http_server.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "health/checker.h"
#include "health/control_operations.h"
#include "health/writer_election.h"

namespace tandem {
namespace {

std::optional<std::string> command(std::string_view body) {
  std::string error;
  std::optional<std::string> out = parseCommandJson(body, &error);
  EXPECT_EQ(out.has_value(), error.empty()) << body << ": " << error;
  return out;
}

std::string errorOf(std::string_view body) {
  std::string error;
  EXPECT_FALSE(parseCommandJson(body, &error)) << body;
  return error;
}

TEST(ParseCommandJsonTest, ReadsTheCommandMember) {
  EXPECT_EQ(command(R"({"command": "show info"})"), "show info");
  EXPECT_EQ(command(" \r\n\t{\"command\":\"help\"} \n"), "help");
  EXPECT_EQ(command(R"({"command": ""})"), "");
}

TEST(ParseCommandJsonTest, DecodesEveryEscape) {
  EXPECT_EQ(command(R"({"command": "a\"b\\c\/d"})"), "a\"b\\c/d");
  EXPECT_EQ(command(R"({"command": "\b\f\n\r\t"})"), "\b\f\n\r\t");
  EXPECT_EQ(command(R"({"command": "\u0073how \u00e9\u20AC"})"), "show \xc3\xa9\xe2\x82\xac");
  // U+1F600 as a surrogate pair.
  EXPECT_EQ(command(R"({"command": "\ud83d\ude00"})"), "\xf0\x9f\x98\x80");
  EXPECT_EQ(command("{\"command\": \"caf\xc3\xa9\"}"), "caf\xc3\xa9");
}

TEST(ParseCommandJsonTest, SkipsOtherMembersOfAnyType) {
  EXPECT_EQ(command(R"({"a": 1, "b": -2.5e+3, "c": [true, false, null, {"d": [[]]}],
                       "e": {"command": "not this"}, "command": "show stat", "f": "x"})"),
            "show stat");
  EXPECT_EQ(command(R"({"n": 0, "m": 0.5, "command": "help", "z": {}})"), "help");
}

TEST(ParseCommandJsonTest, RefusesWhatIsNotOneObjectWithAStringCommand) {
  EXPECT_EQ(errorOf(""), "expected a JSON object");
  EXPECT_EQ(errorOf("command=show+info"), "expected a JSON object");
  EXPECT_EQ(errorOf(R"(["command", "help"])"), "expected a JSON object");
  EXPECT_EQ(errorOf("{}"), "the object has no \"command\" member");
  EXPECT_EQ(errorOf(R"({"cmd": "help"})"), "the object has no \"command\" member");
  EXPECT_EQ(errorOf(R"({"command": 5})"), "\"command\" must be a string");
  EXPECT_EQ(errorOf(R"({"command": null})"), "\"command\" must be a string");
  EXPECT_EQ(errorOf(R"({"command": "a", "command": "b"})"), "\"command\" is given twice");
  EXPECT_EQ(errorOf(R"({"command": "help"} {"command": "x"})"),
            "unexpected text after the JSON object");
  EXPECT_EQ(errorOf(R"({"command": "help",})"), "expected a member name");
  EXPECT_EQ(errorOf(R"({"command" "help"})"), "expected ':' after a member name");
  EXPECT_EQ(errorOf(R"({"command": "help")"), "expected ',' or '}' in the object");
  EXPECT_EQ(errorOf(R"({'command': 'help'})"), "expected a member name");
}

TEST(ParseCommandJsonTest, RefusesBrokenStrings) {
  EXPECT_EQ(errorOf(R"({"command": "help)"), "unterminated string");
  EXPECT_EQ(errorOf("{\"command\": \"a\nb\"}"), "control character in a string");
  EXPECT_EQ(errorOf(R"({"command": "\x41"})"), "invalid escape in a string");
  EXPECT_EQ(errorOf(R"({"command": "\u00g1"})"), "invalid \\u escape");
  EXPECT_EQ(errorOf(R"({"command": "\u00"})"), "invalid \\u escape");  // '"' is not hex
  EXPECT_EQ(errorOf(R"({"command": "\u00)"), "truncated \\u escape");
  EXPECT_EQ(errorOf(R"({"command": "\ud83d"})"), "unpaired high surrogate in a \\u escape");
  EXPECT_EQ(errorOf(R"({"command": "\ude00"})"), "unpaired low surrogate in a \\u escape");
  EXPECT_EQ(errorOf(R"({"command": "x\)"), "unterminated string");
}

TEST(ParseCommandJsonTest, RefusesBrokenValuesOfOtherMembers) {
  EXPECT_EQ(errorOf(R"({"a": tru, "command": "help"})"), "invalid JSON value");
  EXPECT_EQ(errorOf(R"({"a": 01, "command": "help"})"), "expected ',' or '}' in the object");
  EXPECT_EQ(errorOf(R"({"a": 1., "command": "help"})"), "invalid number");
  EXPECT_EQ(errorOf(R"({"a": -, "command": "help"})"), "invalid number");
  EXPECT_EQ(errorOf(R"({"a": [1 2], "command": "help"})"), "expected ',' between values");
  EXPECT_EQ(errorOf(R"({"a": {"b"}, "command": "help"})"), "expected ':' after a member name");
}

TEST(ParseCommandJsonTest, DeepNestingIsRefusedWithoutRecursingFurther) {
  std::string deep =
      "{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + ", \"command\": \"help\"}";
  EXPECT_EQ(errorOf(deep), "JSON nested too deeply");
  std::string fine =
      "{\"a\": " + std::string(20, '[') + std::string(20, ']') + ", \"command\": \"help\"}";
  EXPECT_EQ(command(fine), "help");
}

TEST(ConstantTimeEqualsTest, ComparesContentAndLength) {
  EXPECT_TRUE(constantTimeEquals("", ""));
  EXPECT_TRUE(constantTimeEquals("secret", "secret"));
  EXPECT_FALSE(constantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(constantTimeEquals("secret", "secret2"));
  EXPECT_FALSE(constantTimeEquals("secret", "secre"));
  EXPECT_FALSE(constantTimeEquals("", "x"));
  // A shorter input padded with NULs is still a different input.
  EXPECT_FALSE(constantTimeEquals(std::string_view("ab\0", 3), "ab"));
}

TEST(DecodeBase64Test, DecodesStandardPaddedBase64) {
  EXPECT_EQ(decodeBase64("YWxpY2U6d29uZGVybGFuZA=="), "alice:wonderland");
  EXPECT_EQ(decodeBase64("Ym9iOmJ1aWxkZXI="), "bob:builder");
  EXPECT_EQ(decodeBase64("YWJj"), "abc");
  EXPECT_EQ(decodeBase64(""), "");
  EXPECT_EQ(decodeBase64("+/+/"), "\xfb\xff\xbf");
}

TEST(DecodeBase64Test, RefusesWhatIsNotBase64) {
  EXPECT_FALSE(decodeBase64("YWJ"));       // length not a multiple of 4
  EXPECT_FALSE(decodeBase64("YW!j"));      // outside the alphabet
  EXPECT_FALSE(decodeBase64("Y=Jj"));      // padding in the middle
  EXPECT_FALSE(decodeBase64("Y==="));      // too much padding
  EXPECT_FALSE(decodeBase64("YW Jj"));     // whitespace
  EXPECT_FALSE(decodeBase64("YWJj\r\n"));  // a line end
  EXPECT_FALSE(decodeBase64("YWJj-_=="));  // the URL-safe alphabet is another one
}

AdminConfig configWith(std::string token, std::vector<AdminUser> users) {
  AdminConfig config;
  config.enabled = true;
  config.token = std::move(token);
  config.users = std::move(users);
  return config;
}

TEST(AdminAuthTest, BearerTokenIdentifiesAsToken) {
  AdminAuth auth(configWith("t0ken", {}));
  EXPECT_TRUE(auth.configured());
  EXPECT_EQ(auth.identify("Bearer t0ken"), "token");
  EXPECT_EQ(auth.identify("bearer   t0ken  "), "token");
  EXPECT_FALSE(auth.identify("Bearer t0ke"));
  EXPECT_FALSE(auth.identify("Bearer t0ken2"));
  EXPECT_FALSE(auth.identify("Bearer"));
  EXPECT_FALSE(auth.identify("t0ken"));
  EXPECT_FALSE(auth.identify(""));
  // No users: Basic never matches, even "token:" or an empty name.
  EXPECT_FALSE(auth.identify("Basic dG9rZW46dDBrZW4="));  // token:t0ken
  EXPECT_FALSE(auth.identify("Basic Og=="));              // ":"
}

TEST(AdminAuthTest, BasicCredentialsIdentifyTheUser) {
  AdminAuth auth(configWith("", {{"alice", "wonderland"}, {"bob", "build:er"}}));
  EXPECT_TRUE(auth.configured());
  EXPECT_EQ(auth.identify("Basic YWxpY2U6d29uZGVybGFuZA=="), "alice");
  EXPECT_EQ(auth.identify("basic Ym9iOmJ1aWxkOmVy"), "bob");  // a ':' in the password
  EXPECT_FALSE(auth.identify("Basic Ym9iOmJ1aWxk"));          // bob:build
  EXPECT_FALSE(auth.identify("Basic YWxpY2U6"));              // alice:
  EXPECT_FALSE(auth.identify("Basic YWxpY2U="));              // alice (no colon)
  EXPECT_FALSE(auth.identify("Basic Ym9iOndvbmRlcmxhbmQ="));  // bob:wonderland
  EXPECT_FALSE(auth.identify("Basic not-base64"));
  // Without a token, Bearer never matches (an empty token is not a credential).
  EXPECT_FALSE(auth.identify("Bearer "));
  EXPECT_FALSE(auth.identify("Bearer x"));
  EXPECT_FALSE(auth.identify("Digest username=\"alice\""));
}

TEST(AdminAuthTest, NothingConfiguredMatchesNothing) {
  AdminAuth auth(configWith("", {}));
  EXPECT_FALSE(auth.configured());
  EXPECT_FALSE(auth.identify("Bearer "));
  EXPECT_FALSE(auth.identify("Basic Og=="));
}

AdminRequest post(std::vector<std::pair<std::string, std::string>> headers) {
  AdminRequest r;
  r.method = "POST";
  r.target = "/api/command";
  r.headers = std::move(headers);
  r.headers.emplace_back("Host", "lb.example:8081");
  return r;
}

TEST(CsrfRefusalTest, ThePagesOwnRequestsPass) {
  EXPECT_FALSE(csrfRefusal(post({{"Content-Type", "application/json"}, {"X-Tandem-Action", "1"}})));
  EXPECT_FALSE(csrfRefusal(post({{"content-type", "Application/JSON; charset=utf-8"},
                                 {"x-tandem-action", "1"},
                                 {"Origin", "http://lb.example:8081"},
                                 {"Sec-Fetch-Site", "same-origin"}})));
  EXPECT_FALSE(csrfRefusal(post({{"Content-Type", "application/json"},
                                 {"X-Tandem-Action", "1"},
                                 {"Origin", "HTTPS://LB.example:8081"},
                                 {"Sec-Fetch-Site", "none"}})));
}

TEST(CsrfRefusalTest, WhatAnotherSiteCouldSendIsRefused) {
  const std::pair<std::string, std::string> json = {"Content-Type", "application/json"};
  const std::pair<std::string, std::string> marker = {"X-Tandem-Action", "1"};
  EXPECT_TRUE(csrfRefusal(post({marker})));
  EXPECT_TRUE(csrfRefusal(post({{"Content-Type", "application/x-www-form-urlencoded"}, marker})));
  EXPECT_TRUE(csrfRefusal(post({{"Content-Type", "text/plain"}, marker})));
  EXPECT_TRUE(csrfRefusal(post({{"Content-Type", "application/jsonx"}, marker})));
  EXPECT_TRUE(csrfRefusal(post({json})));
  EXPECT_TRUE(csrfRefusal(post({json, {"X-Tandem-Action", "yes"}})));
  EXPECT_TRUE(csrfRefusal(post({json, marker, {"Origin", "http://evil.example"}})));
  EXPECT_TRUE(csrfRefusal(post({json, marker, {"Origin", "null"}})));
  EXPECT_TRUE(csrfRefusal(post({json, marker, {"Origin", "http://lb.example:8081.evil"}})));
  EXPECT_TRUE(csrfRefusal(post({json, marker, {"Origin", "ftp://lb.example:8081"}})));
  EXPECT_TRUE(csrfRefusal(post({json, marker, {"Sec-Fetch-Site", "cross-site"}})));
  EXPECT_TRUE(csrfRefusal(post({json, marker, {"Sec-Fetch-Site", "same-site"}})));
  EXPECT_TRUE(csrfRefusal(post({json, json, marker})));
  EXPECT_TRUE(csrfRefusal(
      post({json, marker, {"Origin", "http://lb.example:8081"}, {"Origin", "http://evil"}})));
  // An Origin with no Host to match it against.
  AdminRequest no_host;
  no_host.method = "POST";
  no_host.headers = {json, marker, {"Origin", "http://lb.example:8081"}};
  EXPECT_TRUE(csrfRefusal(no_host));
}

TEST(AdminRequestTest, HeadersIgnoreCase) {
  AdminRequest r = post({{"X-A", "1"}, {"x-a", "2"}});
  ASSERT_NE(r.header("x-A"), nullptr);
  EXPECT_EQ(*r.header("x-A"), "1");
  EXPECT_EQ(r.headerCount("X-A"), 2);
  EXPECT_EQ(r.header("X-B"), nullptr);
  EXPECT_EQ(r.headerCount("X-B"), 0);
}

// The listener on a real loop (its own thread) and real sockets, for what the integration
// tests cannot wait for: the request timeout, and stop() with connections open.
class AdminHttpServerLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    server_ = std::make_unique<AdminHttpServer>(
        &loop_, config_, AdminHttpServer::Sources{runtime_, operations_, process_});
    server_->setRequestTimeoutMs(timeout_ms_);
    std::string error;
    ASSERT_TRUE(server_->start(HostPort{"127.0.0.1", 0}, &error)) << error;
    port_ = server_->port();
    ASSERT_NE(port_, 0);
    stop_.init(uv_async_init, &loop_, &AdminHttpServerLoopTest::onStop);
    stop_.get()->data = this;
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }

  void TearDown() override {
    if (thread_.joinable()) {
      uv_async_send(stop_.get());
      thread_.join();  // returns only once stop() has closed every handle
    }
    server_.reset();
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  static void onStop(uv_async_t* async) {
    auto* self = static_cast<AdminHttpServerLoopTest*>(async->data);
    self->server_->stop([self] { self->stopped_ = true; });
    self->stop_.close();
  }

  int connect() {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port_);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
  }

  // Everything until EOF (or the 5 s receive timeout).
  static std::string readAll(int fd) {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  static bool send(int fd, const std::string& bytes) {
    return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }

  uv_loop_t loop_{};
  AdminConfig config_;
  Runtime runtime_{Config{}};
  Checker checker_{&loop_, runtime_};
  WriterElection election_{&loop_, runtime_};
  ControlOperations operations_{runtime_, checker_, election_};
  ProcessInfo process_;
  std::unique_ptr<AdminHttpServer> server_;
  UvHandle<uv_async_t> stop_;
  std::thread thread_;
  uint64_t timeout_ms_ = 200;
  uint16_t port_ = 0;
  bool stopped_ = false;
};

// With a timeout no test waits for, so that only stop() can end the connections.
class AdminHttpServerStopTest : public AdminHttpServerLoopTest {
 protected:
  AdminHttpServerStopTest() { timeout_ms_ = 600000; }
};

TEST_F(AdminHttpServerLoopTest, APartialRequestGets408WhenTheTimeoutPasses) {
  int fd = connect();
  ASSERT_TRUE(send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n"));
  std::string reply = readAll(fd);
  ::close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 408 Request Timeout\r\n", 0), 0u) << reply;
  EXPECT_NE(reply.find("Connection: close\r\n"), std::string::npos) << reply;
}

TEST_F(AdminHttpServerLoopTest, AnIdleConnectionIsClosedQuietly) {
  int fd = connect();
  ASSERT_TRUE(send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string reply = readAll(fd);  // the answer, then nothing until the timeout closes it
  ::close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << reply;
  EXPECT_TRUE(reply.ends_with("\r\n\r\nok")) << reply;
}

TEST_F(AdminHttpServerLoopTest, ASlowHeadDoesNotEarnMoreTime) {
  // One byte every 50 ms never completes a head within the 200 ms budget, although no gap
  // between bytes reaches the timeout.
  int fd = connect();
  std::string head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
  std::string reply;
  for (char c : head) {
    if (!send(fd, std::string(1, c))) {
      break;  // the server has closed
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    char probe;
    if (recv(fd, &probe, 1, MSG_DONTWAIT | MSG_PEEK) > 0) {
      break;
    }
  }
  reply = readAll(fd);
  ::close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 408 ", 0), 0u) << reply;
}

TEST_F(AdminHttpServerStopTest, StopClosesOpenConnections) {
  // One connection between two keep-alive requests (so surely accepted), one in a head.
  int idle = connect();
  ASSERT_TRUE(send(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string first;
  char buf[1024];
  ssize_t n;
  while (!first.ends_with("\r\n\r\nok") && (n = recv(idle, buf, sizeof(buf), 0)) > 0) {
    first.append(buf, static_cast<size_t>(n));
  }
  ASSERT_TRUE(first.ends_with("\r\n\r\nok")) << first;
  int partial = connect();
  ASSERT_TRUE(send(partial, "GET / HTTP/1.1\r\n"));
  uv_async_send(stop_.get());
  thread_.join();
  EXPECT_TRUE(stopped_);
  EXPECT_EQ(server_->connectionCount(), 0u);
  EXPECT_EQ(readAll(idle), "");
  EXPECT_EQ(readAll(partial), "");
  ::close(idle);
  ::close(partial);
}

}  // namespace
}  // namespace tandem
