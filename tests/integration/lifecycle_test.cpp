// Process lifecycle through the real binary: a graceful stop on SIGTERM/SIGINT refuses new
// clients at once, lets open sessions finish and exits 0; hard_stop_after bounds the wait.
#include <signal.h>

#include <cerrno>

#include "tests/integration/harness.h"

namespace tandem::it {
namespace {

// "Listeners close at once": the bound only keeps a loaded machine from failing the test.
constexpr milliseconds kRefuseTimeout{2000};

bool echoes(Socket& sock, const std::string& text) {
  return sock.sendAll(text) && sock.recvExact(text.size(), kIoTimeout) == text;
}

// True once a connect to `port` is refused. A connect that still gets in is closed at once
// so that it does not hold the process open.
bool refusesConnects(uint16_t port) {
  return eventually(
      [port] {
        int err = 0;
        Socket probe = connectTo(port, &err);
        return !probe.valid() && err == ECONNREFUSED;
      },
      kRefuseTimeout);
}

class LifecycleTest : public IntegrationTest, public ::testing::WithParamInterface<int> {};

TEST_P(LifecycleTest, StopSignalRefusesNewClientsAndDrainsOpenSession) {
  TestServer echo(echoHandler());
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", echo.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));
  Socket session = connectTo(spec.frontendPort());
  ASSERT_TRUE(echoes(session, "before"));

  ASSERT_TRUE(tandem().sendSignal(GetParam()));
  EXPECT_TRUE(refusesConnects(spec.frontendPort())) << "listener still accepting";
  EXPECT_TRUE(echoes(session, "after")) << "open session cut by the graceful stop";
  EXPECT_TRUE(tandem().running());

  session.close();
  std::optional<ExitStatus> status = tandem().waitExit(kStateTimeout);
  ASSERT_TRUE(status.has_value()) << "still running after its last session ended";
  EXPECT_TRUE(status->ok()) << status->str();
}

TEST_P(LifecycleTest, StopSignalWithoutSessionsExitsZero) {
  TestServer echo(echoHandler());
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", echo.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  ASSERT_TRUE(tandem().sendSignal(GetParam()));
  std::optional<ExitStatus> status = tandem().waitExit(kStateTimeout);
  ASSERT_TRUE(status.has_value()) << "still running with no session open";
  EXPECT_TRUE(status->ok()) << status->str();
}

TEST_P(LifecycleTest, HardStopAfterEndsLingeringSession) {
  TestServer echo(echoHandler());
  ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", echo.port()}});
  spec.hard_stop_after = "1s";
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));
  Socket session = connectTo(spec.frontendPort());
  ASSERT_TRUE(echoes(session, "linger"));

  ASSERT_TRUE(tandem().sendSignal(GetParam()));
  std::optional<ExitStatus> status = tandem().waitExit(kStateTimeout);
  ASSERT_TRUE(status.has_value()) << "hard_stop_after = 1s did not end the process";
  EXPECT_TRUE(status->ok()) << status->str();
  EXPECT_TRUE(session.waitClosed(kIoTimeout));
}

INSTANTIATE_TEST_SUITE_P(Signals, LifecycleTest, ::testing::Values(SIGTERM, SIGINT),
                         [](const ::testing::TestParamInfo<int>& param) {
                           return std::string(param.param == SIGTERM ? "Sigterm" : "Sigint");
                         });

}  // namespace
}  // namespace tandem::it
