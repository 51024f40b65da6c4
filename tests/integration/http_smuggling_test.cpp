// Request smuggling and header limits through the real binary. Each vector hides a second
// request ("/smuggled") behind ambiguous framing; tandem must answer 400 and close, and the
// recording server behind it must never see the hidden request. Faults in the head are
// found before any server is chosen, so there the server sees nothing at all.
#include <memory>
#include <ostream>

#include "tests/integration/http_harness.h"

namespace tandem::it {
namespace {

const std::string kHidden = "GET /smuggled HTTP/1.1\r\nHost: tandem.test\r\n\r\n";

struct Vector {
  std::string name;
  std::string request;
  // The fault is in the head: no server may even be connected to. Otherwise it is in a body
  // already being streamed, and only the hidden request must not arrive.
  bool in_head = true;
};

// gtest prints a failing parameter with this instead of its bytes.
void PrintTo(const Vector& v, std::ostream* out) {
  *out << v.name;
}

std::string post(const std::string& framing, const std::string& body) {
  return "POST /front HTTP/1.1\r\nHost: tandem.test\r\n" + framing + "\r\n" + body;
}

std::vector<Vector> vectors() {
  return {
      {"ContentLengthAndChunked",
       post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n" + kHidden)},
      {"ChunkedAndContentLength",
       post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n" + kHidden)},
      {"TwoDifferentContentLengths", post("Content-Length: 0\r\nContent-Length: 45\r\n", kHidden)},
      {"TwoEqualContentLengths", post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello")},
      {"ContentLengthList", post("Content-Length: 5, 45\r\n", "hello" + kHidden)},
      {"ChunkedThenGzip", post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n" + kHidden)},
      {"GzipOnly", post("Transfer-Encoding: gzip\r\n", "0\r\n\r\n" + kHidden)},
      {"SecondEncodingHeaderNotChunked",
       post("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", "0\r\n\r\n" + kHidden)},
      {"UnknownEncodingNamedLikeChunked",
       post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n" + kHidden)},
      {"ObsFold",
       post("X-Folded: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 45\r\n", kHidden)},
      {"SpaceBeforeColon",
       post("Transfer-Encoding : chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n" + kHidden)},
      {"TabBeforeColon", post("Content-Length\t: 45\r\n", kHidden)},
      {"BareLineFeeds", "GET /front HTTP/1.1\nHost: tandem.test\n\n" + kHidden},
      {"BareLineFeedBetweenHeaders",
       "POST /front HTTP/1.1\r\nHost: tandem.test\nContent-Length: 45\r\n\r\n" + kHidden},
      {"InvalidMethod", "G(T /front HTTP/1.1\r\nHost: tandem.test\r\n\r\n" + kHidden},
      {"InvalidVersion", "GET /front HTTP/1.x\r\nHost: tandem.test\r\n\r\n" + kHidden},
      {"ControlCharacterInTarget", "GET /fr\x01nt HTTP/1.1\r\nHost: tandem.test\r\n\r\n" + kHidden},
      {"InvalidChunkSize",
       post("Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n" + kHidden), false},
      {"OverflowingChunkSize",
       post("Transfer-Encoding: chunked\r\n",
            "10000000000000000005\r\nhello\r\n0\r\n\r\n" + kHidden),
       false},
      {"BareLineFeedInChunk",
       post("Transfer-Encoding: chunked\r\n", "5\nhello\r\n0\r\n\r\n" + kHidden), false},
  };
}

// A 400 for a smuggling attempt: small HTML, Connection: close, then the close itself.
void expectRejected(Socket& sock, int status) {
  std::optional<HttpResponse> r = readResponse(sock);
  ASSERT_TRUE(r) << "no complete response";
  EXPECT_EQ(r->status, status) << r->head;
  EXPECT_TRUE(r->closes()) << r->head;
  std::optional<std::string> type = r->headers.get("Content-Type");
  EXPECT_TRUE(type && type->rfind("text/html", 0) == 0) << r->head;
  EXPECT_TRUE(sock.waitClosed(kStateTimeout)) << "connection left open after " << status;
}

class HttpSmugglingTest : public HttpTest, public ::testing::WithParamInterface<Vector> {
 protected:
  void SetUp() override {
    log_ = std::make_shared<ServerLog>();
    server_ = std::make_unique<TestServer>(httpHandler(targetResponder(), log_));
    spec_ = httpSpec({{"s1", server_->port()}});
  }
  // The hidden request never arrived; a normal request afterwards still works, which shows
  // the recorder was listening.
  void expectNothingSmuggled() {
    std::optional<HttpResponse> ok = fetch(spec_.frontendPort(), getRequest("/after"));
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->body, "/after");
    std::string seen = log_->bytes();
    EXPECT_EQ(seen.find("/smuggled"), std::string::npos) << "server received:\n" << seen;
  }

  std::shared_ptr<ServerLog> log_;
  std::unique_ptr<TestServer> server_;
  ConfigSpec spec_;
};

TEST_P(HttpSmugglingTest, RejectedWithNothingForwarded) {
  const Vector& v = GetParam();
  ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
  Socket sock = connectTo(spec_.frontendPort());
  ASSERT_TRUE(sock.sendAll(v.request));
  ASSERT_NO_FATAL_FAILURE(expectRejected(sock, 400));
  if (v.in_head) {
    EXPECT_EQ(server_->accepted(), 0) << "server received:\n" << log_->bytes();
  } else {
    // The server connection that carried part of the bad body must be closed, never pooled.
    EXPECT_TRUE(eventually([&] { return server_->active() == 0; }, kStateTimeout))
        << "server connection left open after a body framing error";
  }
  ASSERT_NO_FATAL_FAILURE(expectNothingSmuggled());
}

// A valid request first, the bad one pipelined behind it: the first is answered, the second
// rejected, and only the first reaches the server.
TEST_P(HttpSmugglingTest, RejectedBehindAValidRequest) {
  const Vector& v = GetParam();
  ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
  Socket sock = connectTo(spec_.frontendPort());
  ASSERT_TRUE(sock.sendAll(getRequest("/first") + v.request));
  std::optional<HttpResponse> first = readResponse(sock);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->body, "/first");
  ASSERT_NO_FATAL_FAILURE(expectRejected(sock, 400));
  if (v.in_head) {
    EXPECT_EQ(log_->requestCount(), 1u) << "server received:\n" << log_->bytes();
  }
  ASSERT_NO_FATAL_FAILURE(expectNothingSmuggled());
}

INSTANTIATE_TEST_SUITE_P(Vectors, HttpSmugglingTest, ::testing::ValuesIn(vectors()),
                         [](const ::testing::TestParamInfo<Vector>& vector) {
                           return vector.param.name;
                         });

// ---------------------------------------------------------------------------------------
// Limits on the request head.

class HttpLimitsTest : public HttpTest {
 protected:
  void SetUp() override {
    log_ = std::make_shared<ServerLog>();
    server_ = std::make_unique<TestServer>(httpHandler(targetResponder(), log_));
    spec_ = httpSpec({{"s1", server_->port()}});
  }

  // GET /limits with `count` headers "X-Hnnn: <value>" in all (Host included).
  static std::string withHeaders(int count, size_t value_size) {
    std::string extra;
    for (int i = 1; i < count; ++i) {
      extra += "X-H" + std::to_string(i) + ": " + std::string(value_size, 'v') + "\r\n";
    }
    return getRequest("/limits", extra);
  }

  void expectAccepted(const std::string& request) {
    std::optional<HttpResponse> r = fetch(spec_.frontendPort(), request);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->head;
  }

  void expectTooLarge(const std::string& request) {
    size_t before = log_->requestCount();
    Socket sock = connectTo(spec_.frontendPort());
    ASSERT_TRUE(sock.sendAll(request));
    ASSERT_NO_FATAL_FAILURE(expectRejected(sock, 431));
    EXPECT_EQ(log_->requestCount(), before) << "an oversized head reached the server";
  }

  std::shared_ptr<ServerLog> log_;
  std::unique_ptr<TestServer> server_;
  ConfigSpec spec_;
};

TEST_F(HttpLimitsTest, HeadOverDefaultSizeGets431) {
  ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
  ASSERT_NO_FATAL_FAILURE(expectAccepted(withHeaders(2, 8000)));
  ASSERT_NO_FATAL_FAILURE(expectTooLarge(withHeaders(2, 17000)));
  ASSERT_NO_FATAL_FAILURE(expectTooLarge(withHeaders(3, 9000)));
}

TEST_F(HttpLimitsTest, HeadOverConfiguredSizeGets431) {
  spec_.max_header_size = 1024;
  ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
  ASSERT_NO_FATAL_FAILURE(expectAccepted(withHeaders(2, 700)));
  ASSERT_NO_FATAL_FAILURE(expectTooLarge(withHeaders(2, 1200)));
}

TEST_F(HttpLimitsTest, MoreThanMaxHeadersGets431) {
  ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
  ASSERT_NO_FATAL_FAILURE(expectAccepted(withHeaders(100, 4)));
  ASSERT_NO_FATAL_FAILURE(expectTooLarge(withHeaders(101, 4)));
}

TEST_F(HttpLimitsTest, MoreThanConfiguredHeadersGets431) {
  spec_.max_headers = 10;
  ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
  ASSERT_NO_FATAL_FAILURE(expectAccepted(withHeaders(10, 4)));
  ASSERT_NO_FATAL_FAILURE(expectTooLarge(withHeaders(11, 4)));
}

}  // namespace
}  // namespace tandem::it
