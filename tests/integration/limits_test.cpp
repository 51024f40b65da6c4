// Limits through the real binary: frontend and server maxconn, and backpressure that keeps
// tandem's memory flat when one side reads slower than the other writes.
#include <memory>

#include "tests/integration/harness.h"

namespace tandem::it {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;
// Growth allowed over the RSS measured before the transfer. Unbounded buffering of a
// 100 MiB stream would show as ~100 MiB; a bounded per-session buffer is far below this.
constexpr long kMaxGrowthKiB = 32 * 1024;
constexpr milliseconds kBulkTimeout{60000};
// How long a queued client must stay unanswered to count as "not served".
constexpr milliseconds kQueuedWindow{500};

StreamDigest patternDigest(uint64_t bytes) {
  StreamDigest d;
  std::vector<char> buf(kMiB);
  for (uint64_t off = 0; off < bytes; off += buf.size()) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), bytes - off));
    patternChunk(off, buf.data(), n);
    d.add(buf.data(), n);
  }
  return d;
}

bool echoes(Socket& sock, const std::string& text) {
  return sock.sendAll(text) && sock.recvExact(text.size(), kIoTimeout) == text;
}

// Reads like a client on a slow link for `slow_reads` rounds of 64 KiB every 10 ms, then as
// fast as it can until EOF.
StreamDigest slowThenFastRead(Socket& sock, int slow_reads) {
  StreamDigest d;
  std::vector<char> buf(256 * 1024);
  for (int i = 0; i < slow_reads; ++i) {
    ssize_t n = sock.recvSome(buf.data(), 64 * 1024, kIoTimeout);
    if (n <= 0) {
      return d;
    }
    d.add(buf.data(), static_cast<size_t>(n));
    std::this_thread::sleep_for(milliseconds(10));
  }
  ssize_t n;
  while ((n = sock.recvSome(buf.data(), buf.size(), kIoTimeout)) > 0) {
    d.add(buf.data(), static_cast<size_t>(n));
  }
  return d;
}

class LimitsTest : public IntegrationTest {};

TEST_F(LimitsTest, FrontendMaxconnQueuesExtraClientUntilSlotFrees) {
  TestServer echo(echoHandler());
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", echo.port()}});
  spec.frontends[0].maxconn = 2;
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket first = connectTo(spec.frontendPort());
  Socket second = connectTo(spec.frontendPort());
  ASSERT_TRUE(echoes(first, "one"));
  ASSERT_TRUE(echoes(second, "two"));

  // The kernel completes the handshake from the backlog; tandem must not serve it yet.
  Socket third = connectTo(spec.frontendPort());
  ASSERT_TRUE(third.valid()) << "the third client should wait in the backlog, not be refused";
  ASSERT_TRUE(third.sendAll("three"));
  EXPECT_TRUE(third.quietFor(kQueuedWindow)) << "served beyond frontend maxconn = 2";

  first.close();
  EXPECT_EQ(third.recvExact(5, kStateTimeout), "three") << "not served after a slot freed";
  EXPECT_TRUE(echoes(second, "still"));
}

TEST_F(LimitsTest, ServerMaxconnSendsConcurrentSessionsToNextServer) {
  TestServer s1(nameHandler("s1")), s2(nameHandler("s2"));
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", s1.port()}, {"s2", s2.port()}});
  spec.backend().balance = "first";
  spec.backend().servers[0].maxconn = 1;
  spec.backend().servers[1].maxconn = 1;
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket a = connectTo(spec.frontendPort());
  ASSERT_EQ(a.readLine(kIoTimeout), "s1");
  Socket b = connectTo(spec.frontendPort());
  EXPECT_EQ(b.readLine(kIoTimeout), "s2") << "s1 is at maxconn = 1";

  // Once s1's session ends its slot is free again and "first" goes back to it.
  a.close();
  ASSERT_TRUE(eventually([&] { return s1.active() == 0; }, kStateTimeout));
  EXPECT_EQ(askName(spec.frontendPort()), "s1");
}

TEST_F(LimitsTest, SlowClientDownloadKeepsMemoryBounded) {
  constexpr uint64_t kBytes = 100 * kMiB;
  TestServer source(sourceHandler(kBytes));
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", source.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));
  long baseline = tandem().rssKiB();
  ASSERT_GT(baseline, 0);
  StreamDigest expected = patternDigest(kBytes);

  StreamDigest got;
  long peak = 0;
  {
    PeakRss rss(tandem());
    Socket sock = connectTo(spec.frontendPort());
    ASSERT_TRUE(sock.valid());
    // 200 slow rounds take at least 2 s, ample for a server on loopback to push all 100 MiB
    // into tandem if tandem kept reading without backpressure.
    got = slowThenFastRead(sock, 200);
    peak = rss.peakKiB();
  }
  EXPECT_EQ(got.bytes, kBytes);
  EXPECT_EQ(got.hash, expected.hash) << "payload corrupted";
  RecordProperty("rss_baseline_kib", std::to_string(baseline));
  RecordProperty("rss_peak_kib", std::to_string(peak));
  EXPECT_LT(peak - baseline, kMaxGrowthKiB)
      << "baseline " << baseline << " KiB, peak " << peak << " KiB";
}

TEST_F(LimitsTest, SlowServerUploadKeepsMemoryBounded) {
  constexpr uint64_t kBytes = 64 * kMiB;
  auto digest = std::make_shared<StreamDigest>();
  // 256 KiB every 10 ms: a few seconds for the whole upload, far slower than loopback.
  TestServer reader(slowReaderHandler(256 * 1024, milliseconds(10), digest));
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", reader.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));
  long baseline = tandem().rssKiB();
  ASSERT_GT(baseline, 0);
  std::string payload(kBytes, '\0');
  patternChunk(0, payload.data(), payload.size());

  long peak = 0;
  {
    PeakRss rss(tandem());
    Socket sock = connectTo(spec.frontendPort());
    ASSERT_TRUE(sock.sendAll(payload));
    ASSERT_TRUE(sock.shutdownWrite());
    ASSERT_TRUE(
        eventually([&] { return reader.accepted() == 1 && reader.active() == 0; }, kBulkTimeout));
    peak = rss.peakKiB();
  }
  StreamDigest expected;
  expected.add(payload.data(), payload.size());
  EXPECT_EQ(digest->bytes, kBytes);
  EXPECT_EQ(digest->hash, expected.hash) << "payload corrupted";
  RecordProperty("rss_baseline_kib", std::to_string(baseline));
  RecordProperty("rss_peak_kib", std::to_string(peak));
  EXPECT_LT(peak - baseline, kMaxGrowthKiB)
      << "baseline " << baseline << " KiB, peak " << peak << " KiB";
}

}  // namespace
}  // namespace tandem::it
