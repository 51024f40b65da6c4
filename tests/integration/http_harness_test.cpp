// The HTTP harness on its own, without tandem: the PHP app, the raw servers and the readers
// must be right before they can judge the binary.
#include "tests/integration/http_harness.h"

#include <memory>

namespace tandem::it {
namespace {

TEST(HttpHarnessTest, PhpServerStartsDiesAndComesBackOnItsPort) {
  PhpServer web("web7");
  ASSERT_TRUE(web.start()) << web.log();
  std::optional<HttpResponse> r = fetch(web.port(), getRequest("/"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "web7");

  web.kill();
  int err = 0;
  EXPECT_FALSE(connectTo(web.port(), &err).valid()) << "workers outlived the kill";
  EXPECT_EQ(err, ECONNREFUSED);

  ASSERT_TRUE(web.start()) << web.log();
  r = fetch(web.port(), getRequest("/"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "web7");
}

TEST(HttpHarnessTest, PhpAppEndpoints) {
  PhpServer web("web1", {{"WEB_STATUS", "503"}});
  ASSERT_TRUE(web.start()) << web.log();
  // WEB_STATUS applies to "/" only.
  std::optional<HttpResponse> root = fetch(web.port(), getRequest("/"));
  ASSERT_TRUE(root);
  EXPECT_EQ(root->status, 503);

  std::string body = randomBytes(300000, 7);
  std::optional<HttpResponse> echo =
      fetch(web.port(), chunkedPostRequest("/echo", body, {1, 1000, 65536}));
  ASSERT_TRUE(echo);
  EXPECT_TRUE(echo->body == body);

  std::optional<HttpResponse> big = fetch(web.port(), getRequest("/big?bytes=100000&length=1"));
  ASSERT_TRUE(big);
  EXPECT_TRUE(big->body == bigPattern(100000));

  web.setHealth(503);
  std::optional<HttpResponse> health = fetch(web.port(), getRequest("/health"));
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);

  std::optional<HttpResponse> headers = fetch(web.port(), getRequest("/headers", "X-A: b\r\n"));
  ASSERT_TRUE(headers);
  std::optional<std::map<std::string, std::string>> json = parseJsonObject(headers->body);
  ASSERT_TRUE(json) << headers->body;
  EXPECT_EQ((*json)["X-A"], "b");
  EXPECT_EQ((*json)["_server"], "web1");
}

TEST(HttpHarnessTest, RawServerKeepsAliveAndAnswersPipelinedRequestsInOrder) {
  auto log = std::make_shared<ServerLog>();
  TestServer server(httpHandler(targetResponder(), log));
  Socket sock = connectTo(server.port());
  ASSERT_TRUE(
      sock.sendAll(getRequest("/a") + chunkedPostRequest("/b", "xyz", {1}) + getRequest("/c")));
  for (const char* path : {"/a", "/b", "/c"}) {
    std::optional<HttpResponse> r = readResponse(sock);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->body, path);
  }
  EXPECT_EQ(server.accepted(), 1);
  ASSERT_EQ(log->requestCount(), 3u);
  EXPECT_EQ(log->requests()[1].body, "xyz");
}

TEST(HttpHarnessTest, RawServerLogsBytesThatDoNotParse) {
  auto log = std::make_shared<ServerLog>();
  TestServer server(httpHandler(targetResponder(), log));
  Socket sock = connectTo(server.port());
  ASSERT_TRUE(sock.sendAll("GET /x HTTP/1.1\nHost: a\n\nGET /smuggled"));
  sock.shutdownWrite();
  EXPECT_TRUE(sock.waitClosed(kIoTimeout));
  EXPECT_TRUE(eventually([&] { return server.active() == 0; }, kIoTimeout));
  EXPECT_EQ(log->bytes(), "GET /x HTTP/1.1\nHost: a\n\nGET /smuggled");
  EXPECT_EQ(log->requestCount(), 0u);
}

TEST(HttpHarnessTest, ReadersHandleChunksTrailersAndContinue) {
  TestServer server(httpHandler(
      [](const HttpRequest& r) { return chunkedResponse(r.body, {3}, "X-Sum: 1\r\n"); }));
  Socket sock = connectTo(server.port());
  ASSERT_TRUE(
      sock.sendAll("POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n"
                   "Expect: 100-continue\r\n\r\n"));
  std::optional<HttpResponse> interim = readResponse(sock);
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(sock.sendAll("0123456789"));
  std::optional<HttpResponse> r = readResponse(sock);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->chunked);
  EXPECT_EQ(r->body, "0123456789");
}

TEST(HttpHarnessTest, GetLoadCountsSuccessesAndFailures) {
  TestServer ok(httpHandler(targetResponder()));
  LoadResult good = GetLoad(ok.port(), "/l", 2, milliseconds(300), 50).wait();
  EXPECT_EQ(good.failed, 0);
  EXPECT_GT(good.ok, 0);
  EXPECT_EQ(good.bodies["/l"], good.ok);

  TestServer bad(httpHandler([](const HttpRequest&) { return textResponse(500, "no"); }));
  LoadResult failing = GetLoad(bad.port(), "/l", 1, milliseconds(300), 5).wait();
  EXPECT_EQ(failing.ok, 0);
  EXPECT_EQ(failing.failed, 5);
}

TEST(HttpHarnessTest, JsonReaderFlattensAndUnescapes) {
  std::optional<std::map<std::string, std::string>> j =
      parseJsonObject(R"({"a": "x\"y\u0041", "n": 404, "o": {"b": [true, null]}})");
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)["a"], "x\"yA");
  EXPECT_EQ((*j)["n"], "404");
  EXPECT_EQ((*j)["o.b.0"], "true");
  EXPECT_EQ((*j)["o.b.1"], "null");
  EXPECT_FALSE(parseJsonObject("{\"a\": 1} trailing"));
  EXPECT_FALSE(parseJsonObject("not json"));
}

}  // namespace
}  // namespace tandem::it
