// One scrape of the admin views over a config of 100 servers (issue 5 asks for a /metrics
// scrape under 50 ms): the stats CSV, /stats.json, the page's overview and /metrics.
//
// Ten HTTP backends of ten checked servers each, behind ten frontends, with every counter,
// check and latency bucket non-zero, so that no series is left out and every number has
// its full width.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "admin/metrics.h"
#include "admin/stats.h"
#include "core/config.h"

namespace tandem {
namespace {

constexpr int kBackends = 10;
constexpr int kServersPerBackend = 10;
constexpr int64_t kNow = 1796300000000;

std::string benchConfig() {
  std::string text;
  for (int b = 0; b < kBackends; ++b) {
    std::string name = "web" + std::to_string(b);
    text += "[[frontend]]\nname = \"" + name +
            "-in\"\nlisten = \"127.0.0.1:" + std::to_string(20000 + b) +
            "\"\nmode = \"http\"\nbackend = \"" + name + "\"\n";
    text += "[[backend]]\nname = \"" + name + "\"\nmode = \"http\"\n[backend.check]\n" +
            "type = \"http\"\n";
    for (int s = 0; s < kServersPerBackend; ++s) {
      text += "[[backend.server]]\nname = \"" + name + "-s" + std::to_string(s) +
              "\"\naddress = \"127.0.0.1:" + std::to_string(30000 + b * 100 + s) + "\"\n";
    }
  }
  return text;
}

void fill(Counters& c, uint64_t seed) {
  c.cur_conns = static_cast<int64_t>(seed % 50);
  c.max_conns = static_cast<int64_t>(seed % 50 + 10);
  c.total_conns = seed * 1000003;
  c.bytes_in = seed * 987654321;
  c.bytes_out = seed * 1234567891;
  c.http_requests = seed * 1000033;
  for (size_t i = 0; i < 6; ++i) {
    c.responses[i] = seed * (i + 1) * 1009;
  }
  c.avg_connect_ms = 1;
  c.avg_response_ms = 12;
  c.avg_total_ms = 15;
}

struct Fixture {
  Fixture() : runtime(loadConfigString(benchConfig(), "bench.toml")), rates(runtime) {
    process.pid = 1;
    process.start_ms = kNow - 3600000;
    process.threads = 2;
    process.version = "0.1.0";
    process.node = "bench";
    uint64_t seed = 1;
    for (const auto& frontend : runtime.frontends()) {
      fill(frontend->counters, seed++);
    }
    for (const auto& backend : runtime.backends()) {
      fill(backend->counters, seed++);
      for (const auto& server : backend->servers()) {
        fill(server->counters, seed++);
        for (int64_t ms : {1, 4, 9, 30, 80, 200, 700, 3000, 20000}) {
          server->latency.add(ms);
        }
        std::lock_guard<std::mutex> lock(server->check_mutex);
        server->check_info.enabled = true;
        server->check_info.health = 4;
        server->check_info.status = "L7OK";
        server->check_info.reason = "Layer7 check passed: 200 OK";
        server->check_info.duration_ms = 2;
      }
    }
    for (int64_t s = 1; s <= 600; ++s) {  // full ten-minute histories for the overview
      rates.sample(kNow - (600 - s) * 1000);
    }
  }
  StatsView view() const { return StatsView{runtime, process, &rates, kNow}; }

  Runtime runtime;
  ProcessInfo process;
  RateTracker rates;
};

Fixture& fixture() {
  static auto* f = new Fixture();
  return *f;
}

template <std::string (*Render)(const StatsView&)>
void BM_render(benchmark::State& state) {
  StatsView view = fixture().view();
  size_t bytes = 0;
  for (auto _ : state) {
    std::string out = Render(view);
    bytes = out.size();
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}

std::string overview(const StatsView& view) {
  return renderOverviewJson(view, 2000);
}

BENCHMARK(BM_render<renderStatsCsv>)
    ->Name("BM_stats_csv/100_servers")
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_render<renderStatsJson>)
    ->Name("BM_stats_json/100_servers")
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_render<overview>)->Name("BM_overview_json/100_servers")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_render<renderMetrics>)->Name("BM_metrics/100_servers")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tandem
