// Request header rewriting through the real binary: hop-by-hop headers removed,
// X-Forwarded-For appended, X-Forwarded-Proto set, X-Request-Id kept or generated, Host
// kept. A recording server shows the exact bytes; the PHP app shows what a real application
// receives.
#include <memory>

#include "tests/integration/http_harness.h"

namespace tandem::it {
namespace {

class HttpHeadersTest : public HttpTest {
 protected:
  void SetUp() override {
    log_ = std::make_shared<ServerLog>();
    server_ = std::make_unique<TestServer>(httpHandler(targetResponder(), log_));
    spec_ = httpSpec({{"s1", server_->port()}});
  }

  // Sends `request` through tandem and returns the request the server received.
  std::optional<HttpRequest> forward(const std::string& request) {
    size_t before = log_->requestCount();
    std::optional<HttpResponse> r = fetch(spec_.frontendPort(), request);
    if (!r || r->status != 200 || log_->requestCount() != before + 1) {
      ADD_FAILURE() << "request not forwarded; server received:\n" << log_->bytes();
      return std::nullopt;
    }
    return log_->requests().back();
  }

  std::shared_ptr<ServerLog> log_;
  std::unique_ptr<TestServer> server_;
  ConfigSpec spec_;
};

TEST_F(HttpHeadersTest, HopByHopHeadersAreRemoved) {
  ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
  std::optional<HttpRequest> got = forward(getRequest(
      "/hop",
      "Connection: keep-alive, X-Private\r\nX-Private: secret\r\nKeep-Alive: timeout=5\r\n"
      "TE: trailers\r\nTrailer: X-Checksum\r\nProxy-Connection: keep-alive\r\n"
      "Upgrade: h2c\r\nX-Kept: yes\r\n"));
  ASSERT_TRUE(got);
  const Headers& h = got->headers;
  for (const char* name :
       {"X-Private", "Keep-Alive", "TE", "Trailer", "Proxy-Connection", "Upgrade"}) {
    EXPECT_FALSE(h.has(name)) << name << " was forwarded:\n" << got->head;
  }
  std::optional<std::string> connection = h.get("Connection");
  EXPECT_TRUE(!connection || connection->find("X-Private") == std::string::npos) << got->head;
  EXPECT_EQ(h.get("X-Kept"), "yes") << got->head;
  EXPECT_EQ(h.get("Host"), "tandem.test") << got->head;
}

TEST_F(HttpHeadersTest, ForwardedForIsSetOrAppended) {
  ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
  std::optional<HttpRequest> plain = forward(getRequest("/xff"));
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->headers.get("X-Forwarded-For"), "127.0.0.1") << plain->head;
  EXPECT_EQ(plain->headers.get("X-Forwarded-Proto"), "http") << plain->head;

  std::optional<HttpRequest> chained = forward(getRequest("/xff", "X-Forwarded-For: 10.1.2.3\r\n"));
  ASSERT_TRUE(chained);
  EXPECT_EQ(chained->headers.get("X-Forwarded-For"), "10.1.2.3, 127.0.0.1") << chained->head;
  EXPECT_EQ(chained->headers.count("X-Forwarded-For"), 1) << chained->head;
}

TEST_F(HttpHeadersTest, RequestIdIsKeptOrGenerated) {
  ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
  std::optional<HttpRequest> sent = forward(getRequest("/id", "X-Request-Id: abc-123\r\n"));
  ASSERT_TRUE(sent);
  EXPECT_EQ(sent->headers.get("X-Request-Id"), "abc-123") << sent->head;
  EXPECT_EQ(sent->headers.count("X-Request-Id"), 1) << sent->head;

  std::optional<HttpRequest> first = forward(getRequest("/id"));
  std::optional<HttpRequest> second = forward(getRequest("/id"));
  ASSERT_TRUE(first && second);
  std::optional<std::string> id1 = first->headers.get("X-Request-Id");
  std::optional<std::string> id2 = second->headers.get("X-Request-Id");
  ASSERT_TRUE(id1 && !id1->empty()) << first->head;
  ASSERT_TRUE(id2 && !id2->empty()) << second->head;
  EXPECT_NE(*id1, *id2) << "two requests got the same generated id";
}

TEST_F(HttpHeadersTest, PhpSeesForwardedHeaders) {
  PhpServer web1("web1");
  ASSERT_TRUE(web1.start()) << web1.log();
  ConfigSpec spec = httpSpec({{"web1", web1.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  std::optional<HttpResponse> r = fetch(
      spec.frontendPort(),
      getRequest("/headers", "X-Forwarded-For: 192.0.2.7\r\nConnection: X-Gone\r\nX-Gone: 1\r\n"));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->head;
  std::optional<std::map<std::string, std::string>> seen = parseJsonObject(r->body);
  ASSERT_TRUE(seen) << "not JSON: " << r->body;
  // PHP keeps the case each header arrived in, so look the names up without case.
  Headers headers;
  for (const auto& [name, value] : *seen) {
    headers.fields.emplace_back(name, value);
  }
  EXPECT_EQ(headers.get("_server"), "web1");
  EXPECT_EQ(headers.get("Host"), "tandem.test") << r->body;
  EXPECT_EQ(headers.get("X-Forwarded-For"), "192.0.2.7, 127.0.0.1") << r->body;
  EXPECT_EQ(headers.get("X-Forwarded-Proto"), "http") << r->body;
  EXPECT_TRUE(headers.has("X-Request-Id")) << r->body;
  EXPECT_FALSE(headers.has("X-Gone")) << r->body;
}

}  // namespace
}  // namespace tandem::it
