// Balancing algorithms seen through the real binary, on sequential connections.
#include "tests/integration/harness.h"

namespace tandem::it {
namespace {

constexpr int kConnections = 40;

class BalanceTest : public IntegrationTest {
 protected:
  // Two name servers "s1" and "s2" with the given weights behind `balance`.
  ConfigSpec pair(const std::string& balance, int threads, int w1 = 1, int w2 = 1) {
    ConfigSpec spec = ConfigSpec::simpleTcp({{"s1", s1_.port(), w1}, {"s2", s2_.port(), w2}});
    spec.threads = threads;
    spec.backend().balance = balance;
    return spec;
  }

  std::vector<std::string> run(const ConfigSpec& spec, int count = kConnections) {
    startTandem(spec);
    if (::testing::Test::HasFatalFailure()) {
      return {};
    }
    return askNames(spec.frontendPort(), count);
  }

  TestServer s1_{nameHandler("s1")};
  TestServer s2_{nameHandler("s2")};
};

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) {
    out += (n.empty() ? "<none>" : n) + " ";
  }
  return out;
}

void expectAlternation(const std::vector<std::string>& names) {
  ASSERT_EQ(names.size(), static_cast<size_t>(kConnections));
  EXPECT_EQ(countOf(names, "s1"), kConnections / 2) << joined(names);
  EXPECT_EQ(countOf(names, "s2"), kConnections / 2) << joined(names);
  for (size_t i = 1; i < names.size(); ++i) {
    EXPECT_NE(names[i], names[i - 1]) << "no alternation at #" << i << ": " << joined(names);
  }
}

// With one worker there is one rotation, so equal weights alternate exactly.
TEST_F(BalanceTest, RoundRobinAlternatesWithOneThread) {
  std::vector<std::string> names = run(pair("roundrobin", 1));
  expectAlternation(names);
}

TEST_F(BalanceTest, StaticRoundRobinAlternatesWithOneThread) {
  std::vector<std::string> names = run(pair("static-rr", 1));
  expectAlternation(names);
}

// Two workers may each keep a rotation and the kernel spreads connections between them, so
// the split is only near even: each worker is off by at most one from its own half.
TEST_F(BalanceTest, RoundRobinSplitsEvenlyWithTwoThreads) {
  std::vector<std::string> names = run(pair("roundrobin", 2));
  EXPECT_EQ(countOf(names, "s1") + countOf(names, "s2"), kConnections) << joined(names);
  EXPECT_NEAR(countOf(names, "s1"), kConnections / 2, 4) << joined(names);
}

TEST_F(BalanceTest, RoundRobinFollowsWeights) {
  std::vector<std::string> names = run(pair("roundrobin", 1, 3, 1));
  // 40 connections are 10 full turns of weights 3:1.
  EXPECT_NEAR(countOf(names, "s1"), 30, 2) << joined(names);
  EXPECT_NEAR(countOf(names, "s2"), 10, 2) << joined(names);
}

TEST_F(BalanceTest, ZeroWeightTakesNoNewTraffic) {
  std::vector<std::string> names = run(pair("roundrobin", 2, 0, 1), 10);
  EXPECT_EQ(countOf(names, "s2"), 10) << joined(names);
}

TEST_F(BalanceTest, FirstUsesFirstServerWhileItHasRoom) {
  std::vector<std::string> names = run(pair("first", 2), 10);
  EXPECT_EQ(countOf(names, "s1"), 10) << joined(names);
}

// Every client here comes from 127.0.0.1, so the source hash always picks the same server.
TEST_F(BalanceTest, SourceSticksToOneServerPerAddress) {
  std::vector<std::string> names = run(pair("source", 2), 10);
  ASSERT_FALSE(names.empty());
  EXPECT_FALSE(names[0].empty());
  EXPECT_EQ(countOf(names, names[0]), 10) << joined(names);
}

TEST_F(BalanceTest, RandomReachesBothServers) {
  std::vector<std::string> names = run(pair("random", 2));
  EXPECT_EQ(countOf(names, "s1") + countOf(names, "s2"), kConnections) << joined(names);
  // All 40 on one server happens with probability 2^-39 for a fair choice.
  EXPECT_GT(countOf(names, "s1"), 0) << joined(names);
  EXPECT_GT(countOf(names, "s2"), 0) << joined(names);
}

// leastconn sends a new session to the server with fewer open ones. Every session is held
// open so that the counts tandem compares are exactly the ones the test created.
TEST_F(BalanceTest, LeastConnPicksServerWithFewerSessions) {
  ConfigSpec spec = pair("leastconn", 1);
  ASSERT_NO_FATAL_FAILURE(startTandem(spec));
  std::vector<Socket> held;
  std::vector<std::string> names;
  for (int i = 0; i < 6; ++i) {
    held.push_back(connectTo(spec.frontendPort()));
    names.push_back(held.back().readLine(kIoTimeout).value_or(""));
  }
  // After an even number of sessions the servers are tied; the next one breaks the tie and
  // the one after must go to the other server.
  for (size_t i = 1; i < names.size(); i += 2) {
    EXPECT_NE(names[i], names[i - 1]) << "session #" << i << ": " << joined(names);
  }
  EXPECT_EQ(countOf(names, "s1"), 3) << joined(names);
  EXPECT_EQ(countOf(names, "s2"), 3) << joined(names);
}

}  // namespace
}  // namespace tandem::it
