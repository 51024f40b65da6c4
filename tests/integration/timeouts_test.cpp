// Idle timeouts through the real binary: a silent session is closed, a busy one is not.
#include "tests/integration/harness.h"

namespace tandem::it {
namespace {

class TimeoutsTest : public IntegrationTest {};

TEST_F(TimeoutsTest, SilentSessionIsClosedAfterClientTimeout) {
  TestServer echo(echoHandler());
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", echo.port()}});
  spec.timeout_client = "300ms";
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  ASSERT_TRUE(sock.sendAll("hi"));
  ASSERT_EQ(sock.recvExact(2, kIoTimeout), "hi");
  EXPECT_TRUE(sock.waitClosed(kStateTimeout)) << "idle session outlived timeout_client";
  EXPECT_TRUE(eventually([&] { return echo.active() == 0; }, kStateTimeout))
      << "the server side of the timed-out session stayed open";
}

TEST_F(TimeoutsTest, SilentSessionIsClosedAfterServerTimeout) {
  TestServer echo(echoHandler());
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", echo.port()}});
  spec.timeout_server = "300ms";
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  ASSERT_TRUE(sock.sendAll("hi"));
  ASSERT_EQ(sock.recvExact(2, kIoTimeout), "hi");
  EXPECT_TRUE(sock.waitClosed(kStateTimeout)) << "idle session outlived timeout_server";
}

// The timeouts are idle timeouts: a session that keeps talking outlives them many times.
TEST_F(TimeoutsTest, TrafficKeepsSessionOpenPastTimeout) {
  TestServer echo(echoHandler());
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", echo.port()}});
  spec.timeout_client = "1s";
  spec.timeout_server = "1s";
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  ASSERT_TRUE(sock.valid());
  // 40 round trips 100 ms apart: 4 s in all, each gap a tenth of the timeout.
  for (int i = 0; i < 40; ++i) {
    std::string msg = "tick" + std::to_string(i % 10);
    ASSERT_TRUE(sock.sendAll(msg)) << "round " << i;
    ASSERT_EQ(sock.recvExact(msg.size(), kIoTimeout), msg) << "round " << i;
    std::this_thread::sleep_for(milliseconds(100));
  }
}

}  // namespace
}  // namespace tandem::it
