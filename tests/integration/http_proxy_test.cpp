// HTTP proxying through the real binary: keep-alive on the client side, pooled server
// connections, pipelining, bodies both ways (Content-Length, chunked, close-delimited),
// Expect: 100-continue, responses without bodies, and the Upgrade tunnel.
#include <memory>

#include "tests/integration/http_harness.h"

namespace tandem::it {
namespace {

constexpr size_t kMiB = 1024 * 1024;
const std::vector<size_t> kOddChunks = {1, 7, 4096, 65536, 333, 100000};

class HttpProxyTest : public HttpTest {};

TEST_F(HttpProxyTest, PhpServersAnswerThroughTandem) {
  PhpServer web1("web1"), web2("web2");
  ASSERT_TRUE(web1.start()) << web1.log();
  ASSERT_TRUE(web2.start()) << web2.log();
  ConfigSpec spec = httpSpec({{"web1", web1.port()}, {"web2", web2.port()}});
  spec.threads = 1;  // one roundrobin: new connections may land on either worker's
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  std::vector<std::string> names;
  for (int i = 0; i < 6; ++i) {
    std::optional<HttpResponse> r = fetch(spec.frontendPort(), getRequest("/"));
    ASSERT_TRUE(r) << "request " << i;
    EXPECT_EQ(r->status, 200);
    names.push_back(r->body);
  }
  EXPECT_EQ(countOf(names, "web1"), 3);
  EXPECT_EQ(countOf(names, "web2"), 3);
}

// One client connection carries many requests, and each request is balanced on its own.
TEST_F(HttpProxyTest, ClientKeepAliveCarriesManyRequests) {
  PhpServer web1("web1"), web2("web2");
  ASSERT_TRUE(web1.start()) << web1.log();
  ASSERT_TRUE(web2.start()) << web2.log();
  ConfigSpec spec = httpSpec({{"web1", web1.port()}, {"web2", web2.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  std::vector<std::string> names;
  for (int i = 0; i < 10; ++i) {
    std::optional<HttpResponse> r = roundTrip(sock, getRequest("/"));
    ASSERT_TRUE(r) << "request " << i << " on the same client connection got no response";
    EXPECT_EQ(r->status, 200);
    EXPECT_FALSE(r->closes()) << r->head;
    names.push_back(r->body);
  }
  EXPECT_EQ(countOf(names, "web1"), 5);
  EXPECT_EQ(countOf(names, "web2"), 5);
}

// The server keeps its connections alive, so tandem should open far fewer of them than it
// forwards requests: one per worker in the best case.
TEST_F(HttpProxyTest, ServerConnectionsArePooledAcrossRequestsOnOneClient) {
  constexpr int kRequests = 30;
  TestServer server(httpHandler(targetResponder()));
  ConfigSpec spec = httpSpec({{"s1", server.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  for (int i = 0; i < kRequests; ++i) {
    std::string path = "/r" + std::to_string(i);
    std::optional<HttpResponse> r = roundTrip(sock, getRequest(path));
    ASSERT_TRUE(r) << "request " << i;
    EXPECT_EQ(r->body, path);
  }
  EXPECT_EQ(server.accepted(), 1) << kRequests << " requests on one client connection";
}

TEST_F(HttpProxyTest, ServerConnectionsArePooledAcrossClients) {
  constexpr int kClients = 30;
  TestServer server(httpHandler(targetResponder()));
  ConfigSpec spec = httpSpec({{"s1", server.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  for (int i = 0; i < kClients; ++i) {
    std::string path = "/c" + std::to_string(i);
    std::optional<HttpResponse> r = fetch(spec.frontendPort(), getRequest(path));
    ASSERT_TRUE(r) << "client " << i;
    EXPECT_EQ(r->body, path);
  }
  // Each of the 2 workers keeps its own pool; a client lands on either.
  EXPECT_LE(server.accepted(), spec.threads) << kClients << " sequential clients, one request each";
}

TEST_F(HttpProxyTest, ServerConnectionThatSaysCloseIsNotReused) {
  constexpr int kRequests = 5;
  auto log = std::make_shared<ServerLog>();
  TestServer server(httpHandler(
      [](const HttpRequest& r) { return textResponse(200, r.target, "Connection: close\r\n"); },
      log));
  ConfigSpec spec = httpSpec({{"s1", server.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  for (int i = 0; i < kRequests; ++i) {
    std::optional<HttpResponse> r = roundTrip(sock, getRequest("/n" + std::to_string(i)));
    ASSERT_TRUE(r) << "request " << i;
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_EQ(server.accepted(), kRequests);
  EXPECT_EQ(log->requestCount(), static_cast<size_t>(kRequests));
}

TEST_F(HttpProxyTest, PipelinedRequestsAreAnsweredInOrder) {
  constexpr int kPipelined = 5;
  TestServer server(httpHandler([](const HttpRequest& r) {
    if (r.target == "/p0") {
      std::this_thread::sleep_for(milliseconds(200));  // the first answer is the slowest
    }
    return textResponse(200, r.target);
  }));
  ConfigSpec spec = httpSpec({{"s1", server.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  std::string burst;
  for (int i = 0; i < kPipelined; ++i) {
    burst += getRequest("/p" + std::to_string(i));
  }
  Socket sock = connectTo(spec.frontendPort());
  ASSERT_TRUE(sock.sendAll(burst));
  for (int i = 0; i < kPipelined; ++i) {
    std::optional<HttpResponse> r = readResponse(sock);
    ASSERT_TRUE(r) << "pipelined response " << i;
    EXPECT_EQ(r->body, "/p" + std::to_string(i));
  }
}

TEST_F(HttpProxyTest, HeadResponseHasNoBody) {
  TestServer server(httpHandler([](const HttpRequest& r) {
    if (r.method == "HEAD") {
      // What a GET would have: the length of a body that is not sent.
      return std::string("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n");
    }
    return textResponse(200, "after " + r.target);
  }));
  ConfigSpec spec = httpSpec({{"s1", server.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  ASSERT_TRUE(sock.sendAll("HEAD /h HTTP/1.1\r\nHost: tandem.test\r\n\r\n"));
  std::optional<HttpResponse> head = readResponse(sock, kIoTimeout, true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->headers.get("Content-Length"), "11") << head->head;
  // Whatever follows on the connection must be the next response, not a body.
  std::optional<HttpResponse> next = roundTrip(sock, getRequest("/next"));
  ASSERT_TRUE(next) << "the response after HEAD is not framed right";
  EXPECT_EQ(next->body, "after /next");
}

TEST_F(HttpProxyTest, NoContentAndNotModifiedHaveNoBody) {
  TestServer server(httpHandler([](const HttpRequest& r) {
    if (r.target == "/204") {
      return std::string("HTTP/1.1 204 No Content\r\n\r\n");
    }
    if (r.target == "/304") {
      return std::string("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n");
    }
    return textResponse(200, "after " + r.target);
  }));
  ConfigSpec spec = httpSpec({{"s1", server.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  for (const char* path : {"/204", "/304"}) {
    std::optional<HttpResponse> r = roundTrip(sock, getRequest(path));
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(std::to_string(r->status), std::string(path).substr(1));
    std::optional<HttpResponse> next = roundTrip(sock, getRequest("/next"));
    ASSERT_TRUE(next) << "the response after " << path << " is not framed right";
    EXPECT_EQ(next->body, "after /next");
  }
}

TEST_F(HttpProxyTest, PhpStatusWithoutBodyKeepsClientConnectionUsable) {
  PhpServer web1("web1");
  ASSERT_TRUE(web1.start()) << web1.log();
  ConfigSpec spec = httpSpec({{"web1", web1.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  for (int status : {204, 304, 404, 500}) {
    std::optional<HttpResponse> r =
        roundTrip(sock, getRequest("/status/" + std::to_string(status)));
    ASSERT_TRUE(r) << status;
    EXPECT_EQ(r->status, status);
    bool empty = status == 204 || status == 304;
    EXPECT_EQ(r->body, empty ? "" : "status " + std::to_string(status));
    if (r->closes()) {
      sock = connectTo(spec.frontendPort());
    }
  }
  std::optional<HttpResponse> last = roundTrip(sock, getRequest("/"));
  ASSERT_TRUE(last);
  EXPECT_EQ(last->body, "web1");
}

TEST_F(HttpProxyTest, ChunkedResponseArrivesIntact) {
  std::string body = randomBytes(kMiB, 31);
  TestServer server(httpHandler([&body](const HttpRequest& r) {
    if (r.target == "/small") {
      return chunkedResponse("tail", {2}, "X-Trailer: t\r\n");
    }
    return chunkedResponse(body, kOddChunks);
  }));
  ConfigSpec spec = httpSpec({{"s1", server.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  std::optional<HttpResponse> big = roundTrip(sock, getRequest("/big"), kStateTimeout);
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 200);
  EXPECT_EQ(big->body.size(), body.size());
  EXPECT_TRUE(big->body == body) << "1 MiB chunked body changed on the way";
  // A response ending in trailers leaves the connection ready for the next request.
  std::optional<HttpResponse> small = roundTrip(sock, getRequest("/small"));
  ASSERT_TRUE(small);
  EXPECT_EQ(small->body, "tail");
  std::optional<HttpResponse> after = roundTrip(sock, getRequest("/small"));
  ASSERT_TRUE(after) << "the response after a chunked response with trailers";
  EXPECT_EQ(after->body, "tail");
}

TEST_F(HttpProxyTest, ChunkedRequestBodyReachesPhpIntact) {
  PhpServer web1("web1");
  ASSERT_TRUE(web1.start()) << web1.log();
  ConfigSpec spec = httpSpec({{"web1", web1.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  std::string body = randomBytes(kMiB, 32);
  Socket sock = connectTo(spec.frontendPort());
  std::optional<HttpResponse> r =
      roundTrip(sock, chunkedPostRequest("/echo", body, kOddChunks), kStateTimeout);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.size(), body.size());
  EXPECT_TRUE(r->body == body) << "1 MiB chunked upload changed on the way";
}

TEST_F(HttpProxyTest, ContentLengthRequestBodyReachesPhpIntact) {
  PhpServer web1("web1");
  ASSERT_TRUE(web1.start()) << web1.log();
  ConfigSpec spec = httpSpec({{"web1", web1.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  std::string body = randomBytes(kMiB, 33);
  Socket sock = connectTo(spec.frontendPort());
  std::optional<HttpResponse> r = roundTrip(sock, postRequest("/echo", body), kStateTimeout);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.size(), body.size());
  EXPECT_TRUE(r->body == body) << "1 MiB upload changed on the way";
}

// PHP ends /big?bytes=N by closing the connection (no length, no chunks) unless asked for a
// Content-Length; tandem must deliver both whole.
TEST_F(HttpProxyTest, LargePhpResponsesArriveIntact) {
  PhpServer web1("web1");
  ASSERT_TRUE(web1.start()) << web1.log();
  ConfigSpec spec = httpSpec({{"web1", web1.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  std::string expected = bigPattern(2 * kMiB);
  for (const char* query : {"", "&length=1"}) {
    std::string path = "/big?bytes=" + std::to_string(expected.size()) + query;
    std::optional<HttpResponse> r = fetch(spec.frontendPort(), getRequest(path), kStateTimeout);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path;
    EXPECT_EQ(r->body.size(), expected.size()) << path;
    EXPECT_TRUE(r->body == expected) << path << ": body changed on the way";
  }
}

TEST_F(HttpProxyTest, ExpectContinueIsPassedThrough) {
  auto log = std::make_shared<ServerLog>();
  TestServer server(
      httpHandler([](const HttpRequest& r) { return textResponse(200, "got " + r.body); }, log));
  ConfigSpec spec = httpSpec({{"s1", server.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  ASSERT_TRUE(
      sock.sendAll("POST /upload HTTP/1.1\r\nHost: tandem.test\r\nContent-Length: 5\r\n"
                   "Expect: 100-continue\r\n\r\n"));
  std::optional<HttpResponse> interim = readResponse(sock);
  ASSERT_TRUE(interim) << "no 100 Continue before the body was sent";
  EXPECT_EQ(interim->status, 100) << interim->head;
  ASSERT_TRUE(sock.sendAll("hello"));
  std::optional<HttpResponse> final_response = readResponse(sock);
  ASSERT_TRUE(final_response);
  EXPECT_EQ(final_response->status, 200);
  EXPECT_EQ(final_response->body, "got hello");
  ASSERT_EQ(log->requestCount(), 1u);
  EXPECT_EQ(log->requests()[0].body, "hello");
}

TEST_F(HttpProxyTest, UpgradeBecomesATunnel) {
  auto log = std::make_shared<ServerLog>();
  TestServer server(upgradeEchoHandler(log));
  ConfigSpec spec = httpSpec({{"s1", server.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  ASSERT_TRUE(
      sock.sendAll("GET /ws HTTP/1.1\r\nHost: tandem.test\r\nConnection: Upgrade\r\n"
                   "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  std::optional<HttpResponse> r = readResponse(sock);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 101) << r->head;
  EXPECT_EQ(r->headers.get("Upgrade"), "websocket") << r->head;
  // Bytes after the 101 are no longer HTTP: 256 KiB of binary goes through unparsed.
  std::string payload = randomBytes(256 * 1024, 34);
  std::string back = echoExchange(sock, payload, kStateTimeout);
  EXPECT_EQ(back.size(), payload.size());
  EXPECT_TRUE(back == payload) << "tunnel changed the bytes";
  ASSERT_EQ(log->requestCount(), 1u);
  EXPECT_EQ(log->requests()[0].headers.get("Upgrade"), "websocket") << log->requests()[0].head;
}

TEST_F(HttpProxyTest, IdleKeepAliveClientIsClosed) {
  TestServer server(httpHandler(targetResponder()));
  ConfigSpec spec = httpSpec({{"s1", server.port()}});
  spec.timeout_http_keep_alive = "500ms";
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  std::optional<HttpResponse> r = roundTrip(sock, getRequest("/once"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(sock.waitClosed(kStateTimeout)) << "idle client outlived timeout_http_keep_alive";
}

}  // namespace
}  // namespace tandem::it
