// Renders the model for the admin interface: HAProxy's stats CSV (`/stats;csv`, `show
// stat`), the same rows as JSON (`/stats.json`), `show info`, `show servers state`, and
// the page's overview (`/api/state`). See admin/API.md for the JSON shapes.
//
// Everything here runs on the control thread and only reads the model (atomics and the
// check mutexes), so rendering never slows the workers.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "core/model.h"

namespace tandem {

// Facts about the process for `show info` and the page header.
struct ProcessInfo {
  int pid = 0;
  int64_t start_ms = 0;  // wall clock at start
  int threads = 1;       // worker threads
  std::string version;
  std::string node;  // host name
  std::string config_path;
};

// Per-second rates (HAProxy's rate, rate_max, req_rate, req_rate_max) and the page's
// charts. sample() runs once a second on the control thread and diffs the cumulative
// counters; readers call the accessors on the same thread.
class RateTracker {
 public:
  static constexpr size_t kHistorySeconds = 600;  // the page charts the last 10 minutes

  explicit RateTracker(const Runtime& runtime);
  void sample(int64_t now_ms);

  struct Rate {
    uint64_t sessions = 0;      // over the last second
    uint64_t sessions_max = 0;  // highest seen since start
    uint64_t requests = 0;      // HTTP requests over the last second
    uint64_t requests_max = 0;
  };
  // Keyed by the object (Frontend, Backend or Server, or the Runtime for the whole process:
  // its frontends' sum); zero for one never sampled.
  Rate rate(const void* object) const;

  struct Point {
    int64_t time_ms = 0;
    uint64_t sessions = 0;
    uint64_t requests = 0;
  };
  // Oldest first, at most kHistorySeconds points, for every object rate() knows.
  const std::deque<Point>& history(const void* object) const;

 private:
  struct Entry {
    const Counters* counters = nullptr;
    uint64_t last_sessions = 0;
    uint64_t last_requests = 0;
    Rate rate;
    std::deque<Point> history;
  };
  std::map<const void*, Entry> entries_;
  std::vector<const Counters*> process_parts_;  // the frontends, summed for the Runtime's entry
  int64_t last_ms_ = 0;
};

// What every renderer reads. rates may be null (rates and charts then show 0).
struct StatsView {
  const Runtime& runtime;
  const ProcessInfo& process;
  const RateTracker* rates = nullptr;
  int64_t now_ms = 0;  // wall clock of the rendering
};

// The header line ("# pxname,svname,...") then one row per frontend, server and backend
// (HAProxy's order: each frontend, then per backend its servers and its BACKEND row).
std::string renderStatsCsv(const StatsView& view);
// The same data as JSON (admin/API.md: "/stats.json").
std::string renderStatsJson(const StatsView& view);
// `show info`: "Name: value" lines as HAProxy prints them (Name, Version, Pid, Uptime_sec,
// Nbthread, CurrConns, CumConns, ...).
std::string renderShowInfo(const StatsView& view);
// `show servers state [backend]`: HAProxy's format version 1. Empty backend: all. Returns
// false (and *error) for an unknown backend.
bool renderServersState(const StatsView& view, const std::string& backend, std::string* out,
                        std::string* error);
// The page's overview (admin/API.md: "/api/state").
std::string renderOverviewJson(const StatsView& view, int64_t refresh_ms);
// The log view (admin/API.md: "/api/logs"): log records after `after_seq`, access lines.
std::string renderLogsJson(uint64_t after_seq, size_t max,
                           const std::vector<std::string>& access_lines);

// A server's status word as HAProxy's CSV shows it: "UP", "DOWN", "MAINT", "DRAIN",
// "UP 1/3" (going down, checks left), "DOWN 1/2" (going up), "no check".
std::string serverStatusText(const Server& server);

// JSON string escaping ("\"" included), for every JSON writer in admin/.
std::string jsonQuote(std::string_view text);

}  // namespace tandem
