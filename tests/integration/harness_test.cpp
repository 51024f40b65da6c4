// The harness's own peers, checked directly (no tandem in between), so that a failing
// integration test points at the binary and not at its test scaffolding.
#include "tests/integration/harness.h"

#include <sys/socket.h>

#include <cerrno>

namespace tandem::it {
namespace {

TEST(HarnessTest, EchoServerReturnsLargePayload) {
  TestServer server(echoHandler());
  Socket sock = connectTo(server.port());
  ASSERT_TRUE(sock.valid());
  std::string data = randomBytes(256 * 1024, 1);
  EXPECT_TRUE(echoExchange(sock, data, kIoTimeout) == data);
}

TEST(HarnessTest, NameServerAnnouncesThenEchoes) {
  TestServer server(nameHandler("alpha"));
  Socket sock = connectTo(server.port());
  ASSERT_TRUE(sock.valid());
  EXPECT_EQ(sock.readLine(kIoTimeout), "alpha");
  ASSERT_TRUE(sock.sendAll("ping"));
  EXPECT_EQ(sock.recvExact(4, kIoTimeout), "ping");
}

TEST(HarnessTest, StoppedServerRefusesAndRestartsOnSamePort) {
  TestServer server(nameHandler("beta"));
  uint16_t port = server.port();
  Socket open_conn = connectTo(port);
  ASSERT_EQ(open_conn.readLine(kIoTimeout), "beta");

  server.stop();
  int err = 0;
  EXPECT_FALSE(connectTo(port, &err).valid());
  EXPECT_EQ(err, ECONNREFUSED);
  // The open connection was closed by the "dead" server.
  EXPECT_EQ(open_conn.readToEof(kIoTimeout), "");

  server.start();
  EXPECT_EQ(server.port(), port);
  EXPECT_EQ(askName(port), "beta");
}

TEST(HarnessTest, StopListeningKeepsOpenConnections) {
  TestServer server(echoHandler());
  Socket sock = connectTo(server.port());
  ASSERT_TRUE(sock.valid());
  ASSERT_TRUE(eventually([&] { return server.active() == 1; }, kIoTimeout));
  server.stopListening();
  EXPECT_FALSE(connectTo(server.port()).valid());
  ASSERT_TRUE(sock.sendAll("still here"));
  EXPECT_EQ(sock.recvExact(10, kIoTimeout), "still here");
}

TEST(HarnessTest, ReadLineLeavesFollowingBytes) {
  TestServer server([](Socket& s) { s.sendAll("first\nsecond"); });
  Socket sock = connectTo(server.port());
  EXPECT_EQ(sock.readLine(kIoTimeout), "first");
  EXPECT_EQ(sock.readToEof(kIoTimeout), "second");
}

TEST(HarnessTest, QuietForSeesSilenceAndData) {
  TestServer server(echoHandler());
  Socket sock = connectTo(server.port());
  EXPECT_TRUE(sock.quietFor(milliseconds(100)));
  ASSERT_TRUE(sock.sendAll("x"));
  EXPECT_FALSE(sock.quietFor(kIoTimeout));
  EXPECT_EQ(sock.recvExact(1, kIoTimeout), "x");  // peeked, not consumed
}

TEST(HarnessTest, SourceStreamMatchesPatternDigest) {
  constexpr uint64_t kBytes = 3 * 1024 * 1024 + 17;
  TestServer server(sourceHandler(kBytes));
  Socket sock = connectTo(server.port());
  std::optional<std::string> got = sock.readToEof(kIoTimeout);
  ASSERT_TRUE(got.has_value());
  StreamDigest received, expected;
  received.add(got->data(), got->size());
  std::string pattern(kBytes, '\0');
  patternChunk(0, pattern.data(), pattern.size());
  expected.add(pattern.data(), pattern.size());
  EXPECT_EQ(received.bytes, kBytes);
  EXPECT_EQ(received.hash, expected.hash);
}

TEST(HarnessTest, ConfigTextNamesEveryServer) {
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", 1001}, {"s2", 1002, 3, true}});
  std::string text = spec.toml();
  EXPECT_NE(text.find("listen = \"127.0.0.1:" + std::to_string(spec.frontendPort())),
            std::string::npos);
  EXPECT_NE(text.find("address = \"127.0.0.1:1002\"\nweight = 3\nbackup = true"),
            std::string::npos);
  EXPECT_EQ(text.find("[backend.check]"), std::string::npos);
}

TEST(HarnessTest, ListeningSocketsSeesTestServer) {
  TestServer server(echoHandler());
  EXPECT_EQ(listeningSockets(server.port()), 1);
  server.stop();
  EXPECT_EQ(listeningSockets(server.port()), 0);
}

}  // namespace
}  // namespace tandem::it
