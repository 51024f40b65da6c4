// Picks per second of each balancing algorithm over 2, 10 and 100 servers of mixed weights.
//
// Every server is UP with a different number of open connections, so that leastconn and
// random compare real loads. For `first`, the lower half of the servers is at its maxconn, as
// in a backend that has filled up: its cost is the walk past the full servers.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "proxy/balancer.h"

namespace tandem {
namespace {

constexpr int kMaxconn = 1000;

BackendConfig benchConfig(Balance balance, int servers) {
  BackendConfig cfg;
  cfg.name = "bench";
  cfg.balance = balance;
  for (int i = 0; i < servers; ++i) {
    ServerConfig s;
    s.name = "s" + std::to_string(i + 1);
    s.weight = 1 + (i * 37) % 64;  // 1, 38, 11, 48, ...: mixed, never 0
    s.maxconn = kMaxconn;
    cfg.servers.push_back(s);
  }
  return cfg;
}

void loadServers(Backend& backend) {
  const auto& servers = backend.servers();
  for (size_t i = 0; i < servers.size(); ++i) {
    bool full = backend.cfg().balance == Balance::kFirst && i < servers.size() / 2;
    servers[i]->counters.cur_conns.store(full ? kMaxconn : static_cast<int64_t>(i * 13 % 50));
  }
}

void BM_pick(benchmark::State& state, Balance balance) {
  Backend backend(benchConfig(balance, static_cast<int>(state.range(0))));
  loadServers(backend);
  auto balancer = makeBalancer(backend);
  uint64_t client = 0;
  for (auto _ : state) {
    client += 0x9e3779b97f4a7c15ULL;  // a different client hash each pick, for `source`
    benchmark::DoNotOptimize(balancer->pick(PickContext{client, nullptr}));
  }
  state.counters["picks/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

BENCHMARK_CAPTURE(BM_pick, roundrobin, Balance::kRoundRobin)->Arg(2)->Arg(10)->Arg(100);
BENCHMARK_CAPTURE(BM_pick, static_rr, Balance::kStaticRr)->Arg(2)->Arg(10)->Arg(100);
BENCHMARK_CAPTURE(BM_pick, leastconn, Balance::kLeastConn)->Arg(2)->Arg(10)->Arg(100);
BENCHMARK_CAPTURE(BM_pick, first, Balance::kFirst)->Arg(2)->Arg(10)->Arg(100);
BENCHMARK_CAPTURE(BM_pick, source, Balance::kSource)->Arg(2)->Arg(10)->Arg(100);
BENCHMARK_CAPTURE(BM_pick, random, Balance::kRandom)->Arg(2)->Arg(10)->Arg(100);

}  // namespace
}  // namespace tandem
