#include "proxy/balancer.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <set>
#include <string>
#include <vector>

namespace tandem {
namespace {

constexpr Balance kAll[] = {Balance::kRoundRobin, Balance::kStaticRr, Balance::kLeastConn,
                            Balance::kFirst,      Balance::kSource,   Balance::kRandom,
                            Balance::kUri,        Balance::kHdr};
constexpr uint64_t kSeed = 0x5eed;

// gtest names allow no '-', so not balanceName().
std::string algorithmName(Balance b) {
  switch (b) {
    case Balance::kRoundRobin:
      return "roundrobin";
    case Balance::kStaticRr:
      return "static_rr";
    case Balance::kLeastConn:
      return "leastconn";
    case Balance::kFirst:
      return "first";
    case Balance::kSource:
      return "source";
    case Balance::kUri:
      return "uri";
    case Balance::kHdr:
      return "hdr";
    case Balance::kRandom:
      return "random";
  }
  return "unknown";
}

// Servers s1..sN with the given weights; tests adjust backup and maxconn before building.
BackendConfig config(Balance balance, const std::vector<int>& weights) {
  BackendConfig cfg;
  cfg.name = "pool";
  cfg.balance = balance;
  for (size_t i = 0; i < weights.size(); ++i) {
    ServerConfig s;
    s.name = "s" + std::to_string(i + 1);
    s.address = HostPort{"127.0.0.1", static_cast<uint16_t>(10001 + i)};
    s.weight = weights[i];
    cfg.servers.push_back(s);
  }
  return cfg;
}

Server& server(const Backend& backend, int id) {
  return *backend.servers().at(id - 1);
}

sockaddr_in v4(const char* ip, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  EXPECT_EQ(inet_pton(AF_INET, ip, &sa.sin_addr), 1) << ip;
  return sa;
}

sockaddr_in6 v6(const char* ip, uint16_t port) {
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(port);
  EXPECT_EQ(inet_pton(AF_INET6, ip, &sa.sin6_addr), 1) << ip;
  return sa;
}

uint64_t hashOf(const sockaddr_in& sa) {
  return hashClientAddress(reinterpret_cast<const sockaddr*>(&sa));
}
uint64_t hashOf(const sockaddr_in6& sa) {
  return hashClientAddress(reinterpret_cast<const sockaddr*>(&sa));
}

// The hash of client number i, a distinct address in 10.0.0.0/8.
uint64_t clientHash(uint32_t i) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl((10u << 24) | (i & 0xffffff));
  return hashOf(sa);
}

// Picks n times, each as a new client (so `source` spreads too), and returns the picks per
// server id (index 0 unused).
std::vector<int64_t> countPicks(Balancer& balancer, const Backend& backend, int n,
                                const std::vector<const Server*>* tried = nullptr) {
  std::vector<int64_t> counts(backend.servers().size() + 1, 0);
  for (int i = 0; i < n; ++i) {
    Server* s = balancer.pick(PickContext{clientHash(static_cast<uint32_t>(i)), tried});
    if (s == nullptr) {
      ADD_FAILURE() << "no server on pick " << i;
      break;
    }
    ++counts[s->id()];
  }
  return counts;
}

bool isExact(Balance b) {
  return b == Balance::kRoundRobin || b == Balance::kStaticRr;
}

// Round-robins must give each server its share within 1%. Source over distinct clients and
// random are draws: each count must be within 1% of all picks and within 5 standard deviations
// of a binomial draw with the server's share, which correct weights miss once in a million.
void expectShares(const std::vector<int64_t>& counts, const std::vector<int>& weights,
                  Balance balance) {
  const double total_weight = std::accumulate(weights.begin(), weights.end(), 0.0);
  int64_t picks = 0;
  for (int64_t c : counts) {
    picks += c;
  }
  for (size_t i = 0; i < weights.size(); ++i) {
    double share = weights[i] / total_weight;
    double expected = picks * share;
    double bound = isExact(balance)
                       ? 0.01 * expected
                       : std::min(0.01 * picks, 5 * std::sqrt(picks * share * (1 - share)));
    EXPECT_NEAR(static_cast<double>(counts[i + 1]), expected, bound)
        << "server s" << i + 1 << " of weight " << weights[i];
  }
}

// --- weights --------------------------------------------------------------------------------

struct WeightCase {
  Balance balance;
  std::vector<int> weights;
};

class BalancerWeightedShares : public testing::TestWithParam<WeightCase> {};

TEST_P(BalancerWeightedShares, EachServerGetsItsWeight) {
  Backend backend(config(GetParam().balance, GetParam().weights));
  auto balancer = makeBalancer(backend, kSeed);

  auto counts = countPicks(*balancer, backend, 200000);

  expectShares(counts, GetParam().weights, GetParam().balance);
}

std::vector<WeightCase> weightCases() {
  std::vector<WeightCase> cases;
  for (Balance b : {Balance::kRoundRobin, Balance::kStaticRr, Balance::kSource, Balance::kRandom}) {
    cases.push_back({b, {1, 2, 3, 4}});
    cases.push_back({b, {1, 256}});
    cases.push_back({b, {7, 7, 7}});
  }
  return cases;
}

// gtest names a test after this; its macro already holds a parameter called `info`.
std::string caseName(const testing::TestParamInfo<WeightCase>& param) {
  std::string name = algorithmName(param.param.balance);
  for (int w : param.param.weights) {
    name += "_" + std::to_string(w);
  }
  return name;
}

std::string algorithmParamName(const testing::TestParamInfo<Balance>& param) {
  return algorithmName(param.param);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, BalancerWeightedShares, testing::ValuesIn(weightCases()),
                         caseName);

class BalancerWeightedAlgorithm : public testing::TestWithParam<Balance> {};

TEST_P(BalancerWeightedAlgorithm, WeightChangedAtRuntimeTakesEffect) {
  Backend backend(config(GetParam(), {1, 1}));
  auto balancer = makeBalancer(backend, kSeed);
  expectShares(countPicks(*balancer, backend, 10000), {1, 1}, GetParam());

  server(backend, 2).weight.store(3);

  expectShares(countPicks(*balancer, backend, 200000), {1, 3}, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Algorithms, BalancerWeightedAlgorithm,
                         testing::Values(Balance::kRoundRobin, Balance::kStaticRr, Balance::kSource,
                                         Balance::kRandom),
                         algorithmParamName);

// --- rules every algorithm follows ----------------------------------------------------------

class BalancerEveryAlgorithm : public testing::TestWithParam<Balance> {};

INSTANTIATE_TEST_SUITE_P(Algorithms, BalancerEveryAlgorithm, testing::ValuesIn(kAll),
                         algorithmParamName);

TEST_P(BalancerEveryAlgorithm, NeverPicksDownDrainOrMaintServers) {
  Backend backend(config(GetParam(), {1, 1, 0, 1, 1, 1}));
  server(backend, 1).up.store(false);                  // DOWN by checks
  server(backend, 4).admin.store(AdminState::kDrain);  // drained by the operator
  server(backend, 5).admin.store(AdminState::kMaint);  // in maintenance
  auto balancer = makeBalancer(backend, kSeed);        // s3 has weight 0: DRAIN as well

  auto counts = countPicks(*balancer, backend, 3000);

  for (int id : {1, 3, 4, 5}) {
    EXPECT_EQ(counts[id], 0) << "s" << id;
    EXPECT_EQ(server(backend, id).picks.load(), 0u) << "s" << id;
  }
  EXPECT_EQ(counts[2] + counts[6], 3000);
  EXPECT_EQ(server(backend, 2).picks.load() + server(backend, 6).picks.load(), 3000u);
}

TEST_P(BalancerEveryAlgorithm, CountsEachPickOnTheServer) {
  Backend backend(config(GetParam(), {1, 2, 3}));
  auto balancer = makeBalancer(backend, kSeed);

  auto counts = countPicks(*balancer, backend, 600);

  for (int id = 1; id <= 3; ++id) {
    EXPECT_EQ(server(backend, id).picks.load(), static_cast<uint64_t>(counts[id]));
  }
}

TEST_P(BalancerEveryAlgorithm, BackupsTakeOverOnlyWhenNoActiveServerIsUsable) {
  BackendConfig cfg = config(GetParam(), {1, 1, 1, 1});
  cfg.servers[2].backup = true;
  cfg.servers[3].backup = true;
  Backend backend(cfg);
  auto balancer = makeBalancer(backend, kSeed);

  server(backend, 1).up.store(false);
  auto counts = countPicks(*balancer, backend, 1000);
  EXPECT_EQ(counts[2], 1000) << "one active server is still up";

  server(backend, 2).admin.store(AdminState::kMaint);
  counts = countPicks(*balancer, backend, 1000);
  EXPECT_EQ(counts[3] + counts[4], 1000);
  if (GetParam() == Balance::kFirst) {
    EXPECT_EQ(counts[3], 1000) << "first fills the lowest backup";
  } else {
    EXPECT_GT(counts[3], 300) << "the algorithm spreads over the backups";
    EXPECT_GT(counts[4], 300) << "the algorithm spreads over the backups";
  }

  server(backend, 1).up.store(true);
  counts = countPicks(*balancer, backend, 1000);
  EXPECT_EQ(counts[1], 1000) << "back to the active server as soon as it is up";
}

TEST_P(BalancerEveryAlgorithm, FullOrTriedActiveServerDoesNotOpenTheBackups) {
  BackendConfig cfg = config(GetParam(), {1, 1});
  cfg.servers[0].maxconn = 1;
  cfg.servers[1].backup = true;
  Backend backend(cfg);
  auto balancer = makeBalancer(backend, kSeed);
  std::vector<const Server*> tried = {&server(backend, 1)};

  EXPECT_EQ(balancer->pick(PickContext{1, &tried}), nullptr);
  server(backend, 1).counters.onOpen();
  EXPECT_EQ(balancer->pick(PickContext{1, nullptr}), nullptr);
  EXPECT_EQ(server(backend, 2).picks.load(), 0u);
}

TEST_P(BalancerEveryAlgorithm, SkipsTriedServersAndGivesUpWhenAllWereTried) {
  Backend backend(config(GetParam(), {1, 1, 1}));
  auto balancer = makeBalancer(backend, kSeed);
  std::vector<const Server*> tried = {&server(backend, 1), &server(backend, 3)};

  auto counts = countPicks(*balancer, backend, 300, &tried);
  EXPECT_EQ(counts[2], 300);

  tried.push_back(&server(backend, 2));
  for (uint32_t i = 0; i < 100; ++i) {
    EXPECT_EQ(balancer->pick(PickContext{clientHash(i), &tried}), nullptr);
  }
}

TEST_P(BalancerEveryAlgorithm, SkipsServersAtTheirMaxconn) {
  BackendConfig cfg = config(GetParam(), {1, 1});
  cfg.servers[0].maxconn = 2;
  Backend backend(cfg);
  auto balancer = makeBalancer(backend, kSeed);
  server(backend, 1).counters.cur_conns.store(2);

  auto counts = countPicks(*balancer, backend, 500);
  EXPECT_EQ(counts[1], 0);
  EXPECT_EQ(counts[2], 500);

  server(backend, 1).counters.onClose();
  server(backend, 2).counters.cur_conns.store(50);  // so that leastconn prefers s1 again
  counts = countPicks(*balancer, backend, 500);
  EXPECT_GT(counts[1], 0) << "a freed slot is used again";
}

TEST_P(BalancerEveryAlgorithm, ReturnsNullWithoutServers) {
  Backend backend(config(GetParam(), {}));
  auto balancer = makeBalancer(backend, kSeed);

  EXPECT_EQ(balancer->pick(PickContext{}), nullptr);
}

TEST_P(BalancerEveryAlgorithm, ReturnsNullWhenEveryServerIsDown) {
  BackendConfig cfg = config(GetParam(), {1, 2, 3});
  cfg.servers[2].backup = true;
  Backend backend(cfg);
  auto balancer = makeBalancer(backend, kSeed);
  for (int id = 1; id <= 3; ++id) {
    server(backend, id).up.store(false);
  }

  EXPECT_EQ(balancer->pick(PickContext{}), nullptr);
}

// --- roundrobin and static-rr ---------------------------------------------------------------

// Letters by id, '-' for nullptr: "aaba" reads as s1 s1 s2 s1.
std::string sequence(Balancer& balancer, int n, const std::vector<const Server*>* tried = nullptr) {
  std::string picked;
  for (int i = 0; i < n; ++i) {
    Server* s = balancer.pick(PickContext{0, tried});
    picked += s == nullptr ? '-' : static_cast<char>('a' + s->id() - 1);
  }
  return picked;
}

TEST(RoundRobinBalancer, SpreadsTheLighterServerEvenly) {
  Backend backend(config(Balance::kRoundRobin, {3, 1}));
  auto balancer = makeBalancer(backend, kSeed);

  std::string picked = sequence(*balancer, 400);

  // b comes mid-cycle, where a classic cycle (static-rr) gives a a a b.
  EXPECT_EQ(picked.substr(0, 8), "aabaaaba");
  // Any four consecutive picks hold exactly one b: the shares hold over every short window.
  for (size_t i = 0; i + 4 <= picked.size(); ++i) {
    EXPECT_EQ(std::count(picked.begin() + i, picked.begin() + i + 4, 'b'), 1)
        << "at " << i << " in " << picked.substr(0, 16);
  }
}

TEST(RoundRobinBalancer, EveryPrefixStaysWithinOnePickOfTheShares) {
  const std::vector<int> weights = {5, 1, 1};
  Backend backend(config(Balance::kRoundRobin, weights));
  auto balancer = makeBalancer(backend, kSeed);

  // A classic cycle (a a a a a b c) is 1.43 picks ahead on a after five picks.
  std::string picked = sequence(*balancer, 700);
  std::vector<int> seen(3, 0);
  for (size_t k = 0; k < picked.size(); ++k) {
    ++seen[picked[k] - 'a'];
    for (size_t i = 0; i < weights.size(); ++i) {
      double expected = (k + 1) * weights[i] / 7.0;
      ASSERT_LT(std::abs(seen[i] - expected), 1.0)
          << "after " << k + 1 << ": " << picked.substr(0, 14);
    }
  }
}

TEST(RoundRobinBalancer, RetryMovesOnToTheNextServer) {
  Backend backend(config(Balance::kRoundRobin, {1, 1, 1}));
  auto balancer = makeBalancer(backend, kSeed);

  Server* first = balancer->pick(PickContext{});
  ASSERT_EQ(first, &server(backend, 1));
  std::vector<const Server*> tried = {first};
  EXPECT_EQ(balancer->pick(PickContext{0, &tried}), &server(backend, 2));
}

TEST(StaticRrBalancer, InterleavesTurnsByWeight) {
  Backend backend(config(Balance::kStaticRr, {1, 2, 3}));
  auto balancer = makeBalancer(backend, kSeed);

  EXPECT_EQ(sequence(*balancer, 18), "cbcabccbcabccbcabc");
}

TEST(StaticRrBalancer, EqualWeightsCycleInIdOrder) {
  Backend backend(config(Balance::kStaticRr, {4, 4, 4}));
  auto balancer = makeBalancer(backend, kSeed);

  EXPECT_EQ(sequence(*balancer, 9), "abcabcabc");
}

TEST(StaticRrBalancer, LoweredWeightsApplyWithinTheCycle) {
  Backend backend(config(Balance::kStaticRr, {200, 200}));
  auto balancer = makeBalancer(backend, kSeed);
  EXPECT_EQ(sequence(*balancer, 4), "abab");

  server(backend, 1).weight.store(1);
  server(backend, 2).weight.store(3);

  EXPECT_EQ(sequence(*balancer, 8), "bbabbbab");
}

// --- first ----------------------------------------------------------------------------------

TEST(FirstBalancer, FillsServersInIdOrderUpToMaxconn) {
  BackendConfig cfg = config(Balance::kFirst, {1, 100, 1});
  for (ServerConfig& s : cfg.servers) {
    s.maxconn = 2;
  }
  Backend backend(cfg);
  auto balancer = makeBalancer(backend, kSeed);

  std::string filled;
  for (int i = 0; i < 7; ++i) {
    Server* s = balancer->pick(PickContext{});
    filled += s == nullptr ? '-' : static_cast<char>('a' + s->id() - 1);
    if (s != nullptr) {
      s->counters.onOpen();  // the session connects and stays open
    }
  }
  EXPECT_EQ(filled, "aabbcc-") << "weights are ignored, maxconn is not";

  server(backend, 3).counters.onClose();
  server(backend, 2).counters.onClose();
  EXPECT_EQ(balancer->pick(PickContext{}), &server(backend, 2)) << "the lowest freed server";
  server(backend, 1).counters.onClose();
  EXPECT_EQ(balancer->pick(PickContext{}), &server(backend, 1)) << "the lowest freed server";
}

TEST(FirstBalancer, WithoutMaxconnEveryConnectionGoesToTheFirstUpServer) {
  Backend backend(config(Balance::kFirst, {1, 1}));
  auto balancer = makeBalancer(backend, kSeed);
  EXPECT_EQ(sequence(*balancer, 3), "aaa");

  server(backend, 1).up.store(false);
  EXPECT_EQ(sequence(*balancer, 3), "bbb") << "the writer moves when s1 goes down";
}

// --- leastconn ------------------------------------------------------------------------------

TEST(LeastConnBalancer, PicksTheLeastLoadedServer) {
  Backend backend(config(Balance::kLeastConn, {1, 1, 1}));
  auto balancer = makeBalancer(backend, kSeed);
  server(backend, 1).counters.cur_conns.store(5);
  server(backend, 2).counters.cur_conns.store(2);
  server(backend, 3).counters.cur_conns.store(7);

  EXPECT_EQ(sequence(*balancer, 5), "bbbbb");
}

TEST(LeastConnBalancer, ComparesLoadPerUnitOfWeight) {
  Backend backend(config(Balance::kLeastConn, {1, 4}));
  auto balancer = makeBalancer(backend, kSeed);
  server(backend, 1).counters.cur_conns.store(2);  // 2 per unit of weight
  server(backend, 2).counters.cur_conns.store(6);  // 1.5 per unit of weight

  EXPECT_EQ(sequence(*balancer, 3), "bbb");

  server(backend, 2).counters.cur_conns.store(9);  // 2.25 per unit of weight
  EXPECT_EQ(sequence(*balancer, 3), "aaa");
}

TEST(LeastConnBalancer, EqualServersShare) {
  Backend backend(config(Balance::kLeastConn, {1, 1, 1}));
  auto balancer = makeBalancer(backend, kSeed);
  server(backend, 3).counters.cur_conns.store(4);

  EXPECT_EQ(sequence(*balancer, 6), "ababab") << "a tie does not pile on one server";
}

TEST(LeastConnBalancer, OpenConnectionsEvenOut) {
  Backend backend(config(Balance::kLeastConn, {1, 1, 2}));
  auto balancer = makeBalancer(backend, kSeed);
  server(backend, 1).counters.cur_conns.store(10);

  for (int i = 0; i < 390; ++i) {
    Server* s = balancer->pick(PickContext{});
    ASSERT_NE(s, nullptr);
    s->counters.onOpen();
  }

  EXPECT_EQ(server(backend, 1).counters.cur_conns.load(), 100);
  EXPECT_EQ(server(backend, 2).counters.cur_conns.load(), 100);
  EXPECT_EQ(server(backend, 3).counters.cur_conns.load(), 200);
}

// --- uri and hdr ----------------------------------------------------------------------------

PickContext keyContext(std::string_view key) {
  PickContext ctx;
  ctx.request_hash = hashKey(key);
  ctx.has_request_hash = true;
  return ctx;
}

TEST(RequestHashBalancer, SamePathSameServerOnEveryWorker) {
  for (Balance b : {Balance::kUri, Balance::kHdr}) {
    Backend backend(config(b, {1, 1, 1}));
    auto balancer = makeBalancer(backend, kSeed);
    auto other_worker = makeBalancer(backend, kSeed + 1);
    for (int i = 0; i < 300; ++i) {
      PickContext ctx = keyContext("/item/" + std::to_string(i));
      Server* s = balancer->pick(ctx);
      ASSERT_NE(s, nullptr);
      ASSERT_EQ(balancer->pick(ctx), s) << "key " << i;
      ASSERT_EQ(other_worker->pick(ctx), s) << "key " << i << " on another worker";
    }
  }
}

TEST(RequestHashBalancer, DistinctKeysSpreadByWeight) {
  std::vector<int> weights = {1, 3};
  Backend backend(config(Balance::kUri, weights));
  auto balancer = makeBalancer(backend, kSeed);
  std::vector<int64_t> counts(3, 0);
  for (int i = 0; i < 100000; ++i) {
    ++counts[balancer->pick(keyContext("/p" + std::to_string(i)))->id()];
  }
  expectShares(counts, weights, Balance::kSource);  // a draw, judged as `source` is
}

TEST(RequestHashBalancer, WithoutKeyFallsBackToRoundRobin) {
  Backend backend(config(Balance::kHdr, {1, 1}));
  auto balancer = makeBalancer(backend, kSeed);
  // sequence() passes no request hash, as for a request without the header.
  EXPECT_EQ(sequence(*balancer, 4), "abab");
}

TEST(RequestHashBalancer, KeyOfADownServerMovesAndComesBack) {
  Backend backend(config(Balance::kUri, {1, 1, 1}));
  auto balancer = makeBalancer(backend, kSeed);
  PickContext ctx = keyContext("/cart");
  Server* first = balancer->pick(ctx);
  first->up.store(false);
  Server* moved = balancer->pick(ctx);
  ASSERT_NE(moved, nullptr);
  EXPECT_NE(moved, first);
  first->up.store(true);
  EXPECT_EQ(balancer->pick(ctx), first);
}

// --- source ---------------------------------------------------------------------------------

TEST(SourceBalancer, SameClientSameServer) {
  Backend backend(config(Balance::kSource, {1, 2, 3, 4}));
  auto balancer = makeBalancer(backend, kSeed);
  auto other_worker = makeBalancer(backend, kSeed + 1);

  for (uint32_t client = 0; client < 1000; ++client) {
    PickContext ctx{clientHash(client), nullptr};
    Server* s = balancer->pick(ctx);
    ASSERT_NE(s, nullptr);
    for (int again = 0; again < 3; ++again) {
      ASSERT_EQ(balancer->pick(ctx), s) << "client " << client;
    }
    ASSERT_EQ(other_worker->pick(ctx), s) << "client " << client << " on another worker";
  }
}

TEST(SourceBalancer, ClientOfADownServerMovesAndComesBack) {
  Backend backend(config(Balance::kSource, {1, 1, 1}));
  auto balancer = makeBalancer(backend, kSeed);
  PickContext ctx{clientHash(42), nullptr};
  Server* home = balancer->pick(ctx);
  ASSERT_NE(home, nullptr);

  home->up.store(false);
  Server* elsewhere = balancer->pick(ctx);
  ASSERT_NE(elsewhere, nullptr);
  EXPECT_NE(elsewhere, home);

  home->up.store(true);
  EXPECT_EQ(balancer->pick(ctx), home);
}

// --- random ---------------------------------------------------------------------------------

TEST(RandomBalancer, PrefersTheLessLoadedOfTwo) {
  Backend backend(config(Balance::kRandom, {1, 1}));
  auto balancer = makeBalancer(backend, kSeed);
  server(backend, 1).counters.cur_conns.store(1000);

  auto counts = countPicks(*balancer, backend, 100000);

  // s1 wins only when both draws land on it: a quarter of the picks instead of half.
  EXPECT_NEAR(counts[1] / 100000.0, 0.25, 0.02);
}

TEST(RandomBalancer, HeavilyLoadedServerGetsFarFewerPicks) {
  Backend backend(config(Balance::kRandom, {1, 1, 1, 1}));
  auto balancer = makeBalancer(backend, kSeed);
  server(backend, 1).counters.cur_conns.store(1000);

  auto counts = countPicks(*balancer, backend, 100000);

  EXPECT_NEAR(counts[1] / 100000.0, 1.0 / 16, 0.01) << "instead of 1/4";
  for (int id = 2; id <= 4; ++id) {
    EXPECT_NEAR(counts[id] / 100000.0, 5.0 / 16, 0.01) << "s" << id;
  }
}

TEST(RandomBalancer, SameSeedSameSequence) {
  Backend backend(config(Balance::kRandom, {1, 2, 3, 4}));
  auto a = makeBalancer(backend, 7);
  auto b = makeBalancer(backend, 7);
  auto c = makeBalancer(backend, 8);

  std::string from_a = sequence(*a, 64);
  EXPECT_EQ(sequence(*b, 64), from_a);
  EXPECT_NE(sequence(*c, 64), from_a);
}

// --- hashClientAddress ----------------------------------------------------------------------

TEST(HashClientAddress, IgnoresThePort) {
  EXPECT_EQ(hashOf(v4("192.0.2.10", 40000)), hashOf(v4("192.0.2.10", 51515)));
  EXPECT_EQ(hashOf(v6("2001:db8::10", 40000)), hashOf(v6("2001:db8::10", 51515)));
}

TEST(HashClientAddress, DiffersBetweenAddresses) {
  std::set<uint64_t> seen;
  for (uint32_t i = 0; i < 100000; ++i) {
    seen.insert(clientHash(i));
  }
  EXPECT_EQ(seen.size(), 100000u);
  EXPECT_NE(hashOf(v4("192.0.2.10", 1)), hashOf(v4("192.0.2.11", 1)));
  EXPECT_NE(hashOf(v6("2001:db8::10", 1)), hashOf(v6("2001:db8::11", 1)));
  EXPECT_NE(hashOf(v6("2001:db8::10", 1)), hashOf(v4("192.0.2.10", 1)));
}

TEST(HashClientAddress, MappedIpv6HashesAsIpv4) {
  EXPECT_EQ(hashOf(v6("::ffff:192.0.2.10", 1)), hashOf(v4("192.0.2.10", 2)));
}

TEST(HashClientAddress, IsStableAcrossRunsAndBuilds) {
  // FNV-1a of c0 00 02 0a, then SplitMix64's finalizer. Pinned: two Tandem instances (or an
  // upgraded one) must send a client to the same server.
  EXPECT_EQ(hashOf(v4("192.0.2.10", 1)), 0xd865aa50dbc619a3ULL);
  EXPECT_EQ(hashClientAddress(nullptr), 0u);
}

}  // namespace
}  // namespace tandem
