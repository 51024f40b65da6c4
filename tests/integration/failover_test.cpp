// Server failures through the real binary: health checks take dead servers out and bring
// them back, backups stand in only while no active server is up, refused connects are
// retried on the next server, and on_marked_down decides what happens to open sessions.
#include <memory>
#include <thread>

#include "tests/integration/harness.h"

namespace tandem::it {
namespace {

constexpr int kBurst = 50;

// The log line written for one state change, or "" if there is none after `from`.
std::string logLineWith(const std::string& log, const std::string& needle, size_t from = 0) {
  size_t at = log.find(needle, from);
  if (at == std::string::npos) {
    return "";
  }
  size_t begin = log.rfind('\n', at);
  begin = begin == std::string::npos ? 0 : begin + 1;
  size_t end = log.find('\n', at);
  return log.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

int occurrences(const std::string& text, const std::string& needle, size_t from) {
  int count = 0;
  for (size_t at = text.find(needle, from); at != std::string::npos;
       at = text.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

std::string everyNameExcept(const std::vector<std::string>& names, const std::string& name) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] != name) {
      out += "#" + std::to_string(i) + "='" + names[i] + "' ";
    }
  }
  return out;
}

class FailoverTest : public IntegrationTest {
 protected:
  // Two name servers behind roundrobin with fast TCP checks (100 ms, rise 2, fall 2).
  ConfigSpec checkedPair(const TestServer& a, const TestServer& b) {
    ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", a.port()}, {"s2", b.port()}});
    spec.backend().check = CheckSpec{};
    return spec;
  }
};

TEST_F(FailoverTest, KilledServerIsSkippedWithoutClientErrors) {
  TestServer s1(nameHandler("s1")), s2(nameHandler("s2"));
  ConfigSpec spec = checkedPair(s1, s2);
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));
  std::vector<std::string> before = askNames(spec.frontendPort(), 4);
  ASSERT_EQ(countOf(before, "s1") + countOf(before, "s2"), 4);
  ASSERT_GT(countOf(before, "s1"), 0) << "both servers should take traffic before the kill";

  size_t mark = tandem().logMark();
  s1.stop();
  // Until the checks notice, connects to s1 are refused and must be retried on s2.
  std::vector<std::string> during = askNames(spec.frontendPort(), kBurst);
  EXPECT_EQ(countOf(during, "s2"), kBurst) << everyNameExcept(during, "s2");

  ASSERT_TRUE(tandem().waitForLog("server be/s1 is DOWN", kStateTimeout, mark));
  std::string down = logLineWith(tandem().log(), "server be/s1 is DOWN", mark);
  EXPECT_NE(down.find("1 active and 0 backup servers left"), std::string::npos) << down;
  std::vector<std::string> after = askNames(spec.frontendPort(), kBurst);
  EXPECT_EQ(countOf(after, "s2"), kBurst) << everyNameExcept(after, "s2");
  // One line per state change, however many checks and connections failed meanwhile.
  EXPECT_EQ(occurrences(tandem().log(), "server be/s1 is DOWN", mark), 1) << tandem().log();
}

// Retries hide a dead server from clients; this shows the checks themselves keep a DOWN
// server out. s1 listens again at once but needs 20 good checks (about 2 s) to rise, and
// connections made meanwhile must all go to s2 even though s1 would accept them.
TEST_F(FailoverTest, DownServerTakesNoTrafficUntilRiseIsReached) {
  constexpr int kSlowRise = 20;
  TestServer s1(nameHandler("s1")), s2(nameHandler("s2"));
  ConfigSpec spec = checkedPair(s1, s2);
  spec.backend().check->rise = kSlowRise;
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  size_t mark = tandem().logMark();
  s1.stop();
  ASSERT_TRUE(tandem().waitForLog("server be/s1 is DOWN", kStateTimeout, mark));
  mark = tandem().logMark();
  s1.start();
  std::vector<std::string> names;
  // Stops early if UP shows up, so that only connections made while s1 was DOWN count.
  while (names.size() < 20 && tandem().log().find("is UP", mark) == std::string::npos) {
    names.push_back(askName(spec.frontendPort()));
  }
  ASSERT_FALSE(names.empty()) << "s1 rose before any connection was made";
  EXPECT_EQ(countOf(names, "s2"), static_cast<int>(names.size()))
      << "DOWN server got traffic: " << everyNameExcept(names, "s2");

  ASSERT_TRUE(tandem().waitForLog("server be/s1 is UP", kStateTimeout, mark));
  names = askNames(spec.frontendPort(), 10);
  EXPECT_GT(countOf(names, "s1"), 0) << "s1 is UP again but takes no traffic";
}

TEST_F(FailoverTest, RestartedServerIsUsedAgainAfterUp) {
  TestServer s1(nameHandler("s1")), s2(nameHandler("s2"));
  ConfigSpec spec = checkedPair(s1, s2);
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  size_t mark = tandem().logMark();
  s1.stop();
  ASSERT_TRUE(tandem().waitForLog("server be/s1 is DOWN", kStateTimeout, mark));
  mark = tandem().logMark();
  s1.start();
  ASSERT_TRUE(tandem().waitForLog("server be/s1 is UP", kStateTimeout, mark));
  std::string up = logLineWith(tandem().log(), "server be/s1 is UP", mark);
  EXPECT_NE(up.find("2 active and 0 backup servers"), std::string::npos) << up;

  std::vector<std::string> names = askNames(spec.frontendPort(), 20);
  EXPECT_GT(countOf(names, "s1"), 0) << "s1 is UP again but takes no traffic";
  EXPECT_EQ(countOf(names, "s1") + countOf(names, "s2"), 20);
}

TEST_F(FailoverTest, BackupServesOnlyWhileActivesAreDown) {
  TestServer active(nameHandler("active")), backup(nameHandler("backup"));
  ConfigSpec spec = ConfigSpec::simpleTcp({{"active", active.port()}});
  spec.backend().servers.push_back({"backup", backup.port(), 1, true});
  spec.backend().check = CheckSpec{};
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  std::vector<std::string> names = askNames(spec.frontendPort(), 10);
  EXPECT_EQ(countOf(names, "active"), 10) << everyNameExcept(names, "active");

  size_t mark = tandem().logMark();
  active.stop();
  ASSERT_TRUE(tandem().waitForLog("server be/active is DOWN", kStateTimeout, mark));
  std::string down = logLineWith(tandem().log(), "server be/active is DOWN", mark);
  EXPECT_NE(down.find("0 active and 1 backup servers left"), std::string::npos) << down;
  names = askNames(spec.frontendPort(), 10);
  EXPECT_EQ(countOf(names, "backup"), 10) << everyNameExcept(names, "backup");

  mark = tandem().logMark();
  active.start();
  ASSERT_TRUE(tandem().waitForLog("server be/active is UP", kStateTimeout, mark));
  names = askNames(spec.frontendPort(), 10);
  EXPECT_EQ(countOf(names, "active"), 10) << everyNameExcept(names, "active");
}

// Without checks only the retry can save a connection sent to a closed port.
TEST_F(FailoverTest, RefusedConnectIsRetriedOnNextServer) {
  TestServer live(nameHandler("live"));
  uint16_t closed_port = freePort();
  ConfigSpec spec = ConfigSpec::simpleTcp({{"dead", closed_port}, {"live", live.port()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  std::vector<std::string> names = askNames(spec.frontendPort(), 20);
  EXPECT_EQ(countOf(names, "live"), 20) << everyNameExcept(names, "live");
}

TEST_F(FailoverTest, ClientIsClosedWhenEveryServerRefuses) {
  ConfigSpec spec = ConfigSpec::simpleTcp({{"dead1", freePort()}, {"dead2", freePort()}});
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));

  Socket sock = connectTo(spec.frontendPort());
  ASSERT_TRUE(sock.valid());
  EXPECT_TRUE(sock.waitClosed(kStateTimeout)) << "client left hanging with no server to serve it";
  EXPECT_TRUE(tandem().running());
}

class OnMarkedDownTest : public FailoverTest {
 protected:
  // One session on s1 (balance first), then s1 stops accepting so that its checks fail
  // while the session's own connection stays open at the server.
  void openSessionAndFailChecks(const std::string& policy) {
    spec_ = checkedPair(s1_, s2_);
    spec_.backend().balance = "first";
    spec_.backend().on_marked_down = policy;
    ASSERT_NO_FATAL_FAILURE(startTandem(spec_));
    session_ = connectTo(spec_.frontendPort());
    ASSERT_EQ(session_.readLine(kIoTimeout), "s1");

    size_t mark = tandem().logMark();
    s1_.stopListening();
    ASSERT_TRUE(tandem().waitForLog("server be/s1 is DOWN", kStateTimeout, mark));
  }

  TestServer s1_{nameHandler("s1")};
  TestServer s2_{nameHandler("s2")};
  ConfigSpec spec_;
  Socket session_;
};

TEST_F(OnMarkedDownTest, ShutdownSessionsClosesSessionsOfDownServer) {
  ASSERT_NO_FATAL_FAILURE(openSessionAndFailChecks("shutdown-sessions"));
  EXPECT_TRUE(session_.waitClosed(kStateTimeout));
}

TEST_F(OnMarkedDownTest, NoneKeepsSessionsOfDownServer) {
  ASSERT_NO_FATAL_FAILURE(openSessionAndFailChecks("none"));
  ASSERT_TRUE(session_.sendAll("still"));
  EXPECT_EQ(session_.recvExact(5, kIoTimeout), "still");
}

}  // namespace
}  // namespace tandem::it

namespace tandem::it {
namespace {

// Passive checks in TCP mode: error_limit failed connects on real traffic mark the server
// DOWN at once, long before its next active check (10 s away), and clients see nothing.
TEST_F(FailoverTest, ConsecutiveConnectFailuresMarkTheServerDown) {
  TestServer s1(nameHandler("s1")), s2(nameHandler("s2"));
  ConfigSpec spec = checkedPair(s1, s2);
  spec.backend().check->interval = "10s";
  spec.backend().error_limit = 3;
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));
  // The first active checks (all within 50 ms of start) pass; the next ones are 10 s away.
  std::this_thread::sleep_for(milliseconds(300));
  ASSERT_FALSE(tandem().log().find("is DOWN") != std::string::npos) << tandem().log();
  size_t mark = tandem().logMark();
  s1.stop();
  std::vector<std::string> names = askNames(spec.frontendPort(), 12);
  EXPECT_EQ(countOf(names, "s2"), 12) << "every client answered by the live server";
  EXPECT_TRUE(tandem().waitForLog("server be/s1 is DOWN, reason: 3 consecutive connection failures",
                                  kStateTimeout, mark))
      << tandem().log();
}

}  // namespace
}  // namespace tandem::it
