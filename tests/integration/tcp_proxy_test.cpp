// TCP proxying through the real binary: bytes arrive intact both ways and half-closes are
// passed on in each direction.
#include <memory>

#include "tests/integration/harness.h"

namespace tandem::it {
namespace {

constexpr size_t kMiB = 1024 * 1024;
// Big payloads through two hops can take a while on a loaded machine; this only bounds hangs.
constexpr milliseconds kBulkTimeout{30000};

// Position of the first differing byte, for a readable failure instead of a 1 MiB diff.
size_t firstMismatch(const std::string& a, const std::string& b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) {
      return i;
    }
  }
  return n;
}

class TcpProxyTest : public IntegrationTest {};

TEST_F(TcpProxyTest, OneMebibyteEachWayArrivesIntact) {
  TestServer echo(echoHandler());
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", echo.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  ASSERT_TRUE(sock.valid());
  std::string data = randomBytes(kMiB, 42);
  std::string back = echoExchange(sock, data, kBulkTimeout);
  ASSERT_EQ(back.size(), data.size());
  EXPECT_TRUE(back == data) << "first differing byte at " << firstMismatch(back, data);
}

TEST_F(TcpProxyTest, ConcurrentSessionsKeepTheirOwnBytes) {
  constexpr int kSessions = 8;
  TestServer echo(echoHandler());
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", echo.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  std::vector<std::string> sent(kSessions), back(kSessions);
  std::vector<std::thread> clients;
  for (int i = 0; i < kSessions; ++i) {
    sent[i] = randomBytes(kMiB / 4, 100 + i);
    clients.emplace_back([&, i] {
      Socket sock = connectTo(spec.frontendPort());
      back[i] = echoExchange(sock, sent[i], kBulkTimeout);
    });
  }
  for (std::thread& t : clients) {
    t.join();
  }
  for (int i = 0; i < kSessions; ++i) {
    EXPECT_TRUE(back[i] == sent[i])
        << "session " << i << ": got " << back[i].size() << " bytes, first difference at "
        << firstMismatch(back[i], sent[i]);
  }
}

// The client finishes its request with shutdown(SHUT_WR); the server must see that EOF
// through tandem and can still answer on the other half.
TEST_F(TcpProxyTest, ClientHalfCloseReachesServerAndReplyStillArrives) {
  auto received = std::make_shared<std::string>();
  const std::string reply = randomBytes(200 * 1024, 7);
  TestServer server(replyAfterEofHandler(reply, received));
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", server.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  ASSERT_TRUE(sock.valid());
  ASSERT_TRUE(sock.sendAll("request body"));
  ASSERT_TRUE(sock.shutdownWrite());

  std::optional<std::string> answer = sock.readToEof(kIoTimeout);
  ASSERT_TRUE(answer.has_value()) << "no reply followed by EOF within the timeout";
  EXPECT_EQ(answer->size(), reply.size());
  EXPECT_TRUE(*answer == reply);
  ASSERT_TRUE(eventually([&] { return server.active() == 0; }, kIoTimeout));
  EXPECT_EQ(*received, "request body");
}

// The mirror case: the server says all it has to say and shuts its side; the client reads
// that EOF and can still send data that reaches the server.
TEST_F(TcpProxyTest, ServerHalfCloseReachesClientAndClientCanStillSend) {
  auto received = std::make_shared<std::string>();
  TestServer server([received](Socket& s) {
    if (s.sendAll("greeting") && s.shutdownWrite()) {
      *received = s.readToEof(kStateTimeout).value_or("<no EOF>");
    }
  });
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", server.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  ASSERT_TRUE(sock.valid());
  EXPECT_EQ(sock.readToEof(kIoTimeout), "greeting");
  ASSERT_TRUE(sock.sendAll("late data"));
  ASSERT_TRUE(sock.shutdownWrite());
  ASSERT_TRUE(eventually([&] { return server.active() == 0; }, kStateTimeout));
  EXPECT_EQ(*received, "late data");
}

TEST_F(TcpProxyTest, ServerCloseEndsClientSession) {
  TestServer server([](Socket& s) { s.sendAll("bye"); });
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", server.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  ASSERT_TRUE(sock.valid());
  EXPECT_EQ(sock.readToEof(kIoTimeout), "bye");
}

}  // namespace
}  // namespace tandem::it
