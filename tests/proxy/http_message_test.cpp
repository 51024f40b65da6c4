#include "proxy/http_message.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "proxy/http_parser.h"

namespace tandem {
namespace {

HttpHead parseHead(HttpParser::Kind kind, const std::string& in) {
  HttpParser p(kind);
  auto r = p.feed(in.data(), in.size());
  EXPECT_EQ(r.event, HttpParser::Event::kHead) << in;
  return p.head();
}

HttpHead request(const std::string& in) {
  return parseHead(HttpParser::Kind::kRequest, in);
}
HttpHead response(const std::string& in) {
  return parseHead(HttpParser::Kind::kResponse, in);
}

// --- request rewriting ----------------------------------------------------------------------

TEST(HttpMessageTest, RequestDropsHopByHopAndAddsForwardingHeaders) {
  HttpHead h = request(
      "GET /index.php?x=1 HTTP/1.1\r\n"
      "Host: shop.example\r\n"
      "Connection: keep-alive, X-Secret\r\n"
      "Keep-Alive: timeout=5\r\n"
      "X-Secret: 42\r\n"
      "Proxy-Connection: keep-alive\r\n"
      "TE: trailers\r\n"
      "Trailer: X-Sum\r\n"
      "Upgrade: h2c\r\n"
      "User-Agent: test\r\n"
      "X-Forwarded-Proto: https\r\n"
      "Cookie: a=b\r\n"
      "\r\n");
  RequestRewrite rw;
  rw.client_ip = "192.0.2.7";
  rw.request_id = "0123456789abcdef0000000000000001";
  EXPECT_EQ(serializeRequestHead(h, rw),
            "GET /index.php?x=1 HTTP/1.1\r\n"
            "Host: shop.example\r\n"
            "User-Agent: test\r\n"
            "Cookie: a=b\r\n"
            "X-Forwarded-For: 192.0.2.7\r\n"
            "X-Forwarded-Proto: http\r\n"
            "X-Request-Id: 0123456789abcdef0000000000000001\r\n"
            "\r\n");
}

TEST(HttpMessageTest, RequestAppendsToTheLastForwardedForInPlace) {
  HttpHead h = request(
      "POST /form HTTP/1.1\r\n"
      "X-Forwarded-For: 203.0.113.1\r\n"
      "Host: a\r\n"
      "x-forwarded-for: 203.0.113.2, 203.0.113.3\r\n"
      "Content-Length: 3\r\n"
      "X-Request-Id: client-chosen\r\n"
      "\r\n");
  RequestRewrite rw;
  rw.client_ip = "2001:db8::1";
  EXPECT_EQ(serializeRequestHead(h, rw),
            "POST /form HTTP/1.1\r\n"
            "X-Forwarded-For: 203.0.113.1\r\n"
            "Host: a\r\n"
            "x-forwarded-for: 203.0.113.2, 203.0.113.3, 2001:db8::1\r\n"
            "Content-Length: 3\r\n"
            "X-Request-Id: client-chosen\r\n"
            "X-Forwarded-Proto: http\r\n"
            "\r\n");
}

TEST(HttpMessageTest, RequestIdGivenReplacesTheClients) {
  HttpHead h = request("GET / HTTP/1.1\r\nX-Request-Id: spoofed\r\nHost: a\r\n\r\n");
  RequestRewrite rw;
  rw.client_ip = "10.0.0.1";
  rw.request_id = "generated";
  EXPECT_EQ(serializeRequestHead(h, rw),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\n"
            "X-Forwarded-Proto: http\r\nX-Request-Id: generated\r\n\r\n");
}

TEST(HttpMessageTest, ConnectionCannotRemoveFramingOrHost) {
  HttpHead h = request(
      "POST / HTTP/1.1\r\nHost: a\r\nConnection: Content-Length, Host, Transfer-Encoding\r\n"
      "Content-Length: 5\r\n\r\n");
  RequestRewrite rw;
  rw.client_ip = "10.0.0.1";
  EXPECT_EQ(serializeRequestHead(h, rw),
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-Forwarded-For: 10.0.0.1\r\n"
            "X-Forwarded-Proto: http\r\n\r\n");
}

TEST(HttpMessageTest, ForwardedForNamedByConnectionIsReplacedNotLost) {
  HttpHead h = request(
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Forwarded-For\r\n"
      "X-Forwarded-For: 198.51.100.9\r\n\r\n");
  RequestRewrite rw;
  rw.client_ip = "10.0.0.1";
  EXPECT_EQ(serializeRequestHead(h, rw),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\n"
            "X-Forwarded-Proto: http\r\n\r\n");
}

TEST(HttpMessageTest, ChunkedRequestKeepsItsFraming) {
  HttpHead h = request("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
  RequestRewrite rw;
  rw.client_ip = "10.0.0.1";
  EXPECT_EQ(serializeRequestHead(h, rw),
            "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n");
}

TEST(HttpMessageTest, UpgradeRequestKeepsUpgrade) {
  HttpHead h = request(
      "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  ASSERT_TRUE(h.upgrade);
  RequestRewrite rw;
  rw.client_ip = "10.0.0.1";
  rw.keep_upgrade = true;
  EXPECT_EQ(serializeRequestHead(h, rw),
            "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\nConnection: upgrade\r\n\r\n");
}

TEST(HttpMessageTest, Http10RequestKeepsItsVersion) {
  HttpHead h = request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  RequestRewrite rw;
  EXPECT_EQ(serializeRequestHead(h, rw), "GET / HTTP/1.0\r\nX-Forwarded-Proto: http\r\n\r\n");
}

TEST(HttpMessageTest, RewrittenRequestParsesBackToTheSameRequest) {
  HttpHead h = request(
      "PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n"
      "Expect: 100-continue\r\n\r\n");
  RequestRewrite rw;
  rw.client_ip = "10.1.2.3";
  rw.request_id = "id";
  HttpHead again = request(serializeRequestHead(h, rw));
  EXPECT_EQ(again.method, "PUT");
  EXPECT_EQ(again.target, "/a");
  EXPECT_EQ(again.content_length, 2);
  EXPECT_TRUE(again.expect_continue);
  EXPECT_TRUE(again.keep_alive) << "Connection: close is the client's, not the server's";
  EXPECT_EQ(findHeader(again, "x-forwarded-for"), "10.1.2.3");
}

// --- response rewriting ---------------------------------------------------------------------

TEST(HttpMessageTest, ResponseDropsHopByHopAndAddsCookieAndClose) {
  HttpHead h = response(
      "HTTP/1.1 200 OK\r\nDate: today\r\nConnection: keep-alive, X-Internal\r\n"
      "Keep-Alive: timeout=5\r\nX-Internal: 1\r\nContent-Length: 12\r\n"
      "Set-Cookie: PHPSESSID=abc; path=/\r\n\r\n");
  ResponseRewrite rw;
  rw.close = true;
  rw.set_cookie = "SERVERID=web1; path=/";
  EXPECT_EQ(serializeResponseHead(h, rw),
            "HTTP/1.1 200 OK\r\nDate: today\r\nContent-Length: 12\r\n"
            "Set-Cookie: PHPSESSID=abc; path=/\r\nSet-Cookie: SERVERID=web1; path=/\r\n"
            "Connection: close\r\n\r\n");
}

TEST(HttpMessageTest, ResponseToHttp10ClientKeptAliveSaysSo) {
  HttpHead h = response("HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  ResponseRewrite rw;
  rw.client_http10 = true;
  EXPECT_EQ(serializeResponseHead(h, rw),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n");
  rw.close = true;
  EXPECT_EQ(serializeResponseHead(h, rw),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  rw = ResponseRewrite{};
  EXPECT_EQ(serializeResponseHead(h, rw), "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
}

TEST(HttpMessageTest, SwitchingProtocolsKeepsUpgrade) {
  HttpHead h = response(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
  ResponseRewrite rw;
  rw.close = true;
  rw.set_cookie = "SERVERID=web1; path=/";
  EXPECT_EQ(serializeResponseHead(h, rw),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nConnection: upgrade\r\n\r\n");
}

TEST(HttpMessageTest, InterimResponseGetsNeitherCookieNorConnection) {
  HttpHead h = response("HTTP/1.1 100 Continue\r\n\r\n");
  ResponseRewrite rw;
  rw.close = true;
  rw.set_cookie = "SERVERID=web1; path=/";
  EXPECT_EQ(serializeResponseHead(h, rw), "HTTP/1.1 100 Continue\r\n\r\n");
}

TEST(HttpMessageTest, ResponseWithoutReasonKeepsTheSpace) {
  HttpHead h = response("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(serializeResponseHead(h, ResponseRewrite{}),
            "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n");
}

// --- error pages ----------------------------------------------------------------------------

TEST(HttpMessageTest, ErrorResponseIsExact) {
  std::string body =
      "<html><body><h1>503 Service Unavailable</h1>\n"
      "<p>No server is available to handle this request.</p>\n</body></html>\n";
  EXPECT_EQ(errorResponse(503),
            "HTTP/1.1 503 Service Unavailable\r\n"
            "Content-Type: text/html\r\n"
            "Content-Length: " +
                std::to_string(body.size()) +
                "\r\n"
                "Cache-Control: no-cache\r\n"
                "Connection: close\r\n\r\n" +
                body);
}

TEST(HttpMessageTest, EveryErrorResponseParsesWithItsStatusAndLength) {
  for (int status : {400, 403, 405, 408, 431, 500, 502, 503, 504}) {
    std::string out = errorResponse(status);
    HttpParser p(HttpParser::Kind::kResponse);
    auto r = p.feed(out.data(), out.size());
    ASSERT_EQ(r.event, HttpParser::Event::kHead) << status;
    EXPECT_EQ(p.head().status, status);
    EXPECT_FALSE(p.head().keep_alive);
    EXPECT_EQ(p.head().content_length, static_cast<int64_t>(out.size() - r.consumed));
    EXPECT_NE(out.find("<h1>" + std::to_string(status) + " " + p.head().reason + "</h1>"),
              std::string::npos);
    EXPECT_EQ(p.feed(out.data() + r.consumed, out.size() - r.consumed).event,
              HttpParser::Event::kMessageEnd);
  }
  EXPECT_EQ(errorResponse(418), errorResponse(500));
}

// --- lookups --------------------------------------------------------------------------------

TEST(HttpMessageTest, FindHeaderIgnoresCase) {
  HttpHead h = request("GET / HTTP/1.1\r\nHost: a\r\nX-Tenant: one\r\nx-tenant: two\r\n\r\n");
  EXPECT_EQ(findHeader(h, "x-TENANT"), "one");
  EXPECT_EQ(findHeader(h, "HOST"), "a");
  EXPECT_FALSE(findHeader(h, "X-Tenan").has_value());
  EXPECT_FALSE(findHeader(request("GET / HTTP/1.1\r\nX-A^: 1\r\n\r\n"), "x-a~").has_value())
      << "only letters fold";
  EXPECT_FALSE(findHeader(h, "Accept").has_value());
}

TEST(HttpMessageTest, FindCookieAcrossCookieHeaders) {
  HttpHead h = request(
      "GET / HTTP/1.1\r\nHost: a\r\nCookie: PHPSESSID=abc;SERVERIDX=no\r\n"
      "cookie: theme=dark; SERVERID=web2 ; empty=\r\n\r\n");
  EXPECT_EQ(findCookie(h, "SERVERID"), "web2");
  EXPECT_EQ(findCookie(h, "PHPSESSID"), "abc");
  EXPECT_EQ(findCookie(h, "empty"), "");
  EXPECT_FALSE(findCookie(h, "serverid").has_value()) << "cookie names are case-sensitive";
  EXPECT_FALSE(findCookie(h, "SERVER").has_value());
  EXPECT_FALSE(findCookie(request("GET / HTTP/1.1\r\n\r\n"), "SERVERID").has_value());
}

TEST(HttpMessageTest, IdempotentMethods) {
  for (const char* m : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"}) {
    EXPECT_TRUE(isIdempotent(m)) << m;
  }
  for (const char* m : {"POST", "PATCH", "CONNECT", "get", ""}) {
    EXPECT_FALSE(isIdempotent(m)) << m;
  }
}

TEST(HttpMessageTest, PathOfTarget) {
  EXPECT_EQ(pathOf("/a/b?x=1&y=2"), "/a/b");
  EXPECT_EQ(pathOf("/a/b"), "/a/b");
  EXPECT_EQ(pathOf("/?x"), "/");
  EXPECT_EQ(pathOf("/p#frag"), "/p");
  EXPECT_EQ(pathOf("http://example.com/a/b?q"), "/a/b");
  EXPECT_EQ(pathOf("http://example.com"), "/");
  EXPECT_EQ(pathOf("http://example.com?q"), "/");
  EXPECT_EQ(pathOf("*"), "*");
}

TEST(HttpMessageTest, RequestIdsAreHexUniqueAndCarryThePrefix) {
  RequestIdGenerator ids(0x0123456789abcdefULL);
  EXPECT_EQ(ids.next(), "0123456789abcdef0000000000000000");
  EXPECT_EQ(ids.next(), "0123456789abcdef0000000000000001");
  std::set<std::string> seen;
  RequestIdGenerator a;
  RequestIdGenerator b;
  for (int i = 0; i < 1000; ++i) {
    seen.insert(a.next());
    seen.insert(b.next());
  }
  EXPECT_EQ(seen.size(), 2000u) << "two generators draw different prefixes";
  for (const std::string& id : seen) {
    ASSERT_EQ(id.size(), 32u);
    ASSERT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
  }
}

}  // namespace
}  // namespace tandem
