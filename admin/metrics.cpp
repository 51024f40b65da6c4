#include "admin/metrics.h"

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <deque>
#include <iterator>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

constexpr double kMs = 1000.0;

// HAProxy's exporter labels for the HTTP response classes, in Counters::responses order.
constexpr const char* kCodes[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};
// haproxy_server_status: one series per state, 1 for the current one (HAProxy 2.6).
constexpr const char* kServerStates[] = {"DOWN", "UP", "MAINT", "DRAIN", "NOLB"};
// haproxy_server_check_status: the finished-check statuses HAProxy 2.6 lists (those whose
// result is at least "failed"), one series each, 1 for the last check's status.
constexpr const char* kCheckStatuses[] = {
    "HANA",   "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK",    "L6TOUT",   "L6RSP",
    "L7TOUT", "L7RSP",   "L7OK", "L7OKC",  "L7STS", "PROCERR", "PROCTOUT", "PROCOK"};
// A check reason in a label is cut to this many bytes: label values are kept in memory by
// Prometheus for every distinct value, and a reason may quote a server's error text.
constexpr size_t kMaxReasonBytes = 200;

double value(const std::atomic<uint64_t>& v) {
  return static_cast<double>(v.load(std::memory_order_relaxed));
}
double value(const std::atomic<int64_t>& v) {
  return static_cast<double>(v.load(std::memory_order_relaxed));
}

// One server, read once per scrape: the atomics and, under the check mutex, its check and
// replication facts.
struct ServerFacts {
  const Server* server = nullptr;
  bool up = true;
  bool has_addr = true;
  AdminState admin = AdminState::kReady;
  int weight = 0;
  CheckInfo check;
  ReplicationInfo replication;
  RateTracker::Rate rate;
};

ServerFacts readServer(const Server& server, const StatsView& view) {
  ServerFacts f;
  f.server = &server;
  f.up = server.up.load(std::memory_order_relaxed);
  f.has_addr = server.hasAddr();
  f.admin = server.admin.load(std::memory_order_relaxed);
  f.weight = server.weight.load(std::memory_order_relaxed);
  if (view.rates != nullptr) {
    f.rate = view.rates->rate(&server);
  }
  std::lock_guard<std::mutex> lock(server.check_mutex);
  f.check = server.check_info;
  f.replication = server.replication;
  return f;
}

// As HAProxy's promex_srv_status, with Tandem's weight 0 shown as DRAIN like in the CSV,
// and a server whose name has not resolved in MAINT (HAProxy's resolution maintenance).
const char* serverState(const ServerFacts& f) {
  if (f.admin == AdminState::kMaint || !f.has_addr) {
    return "MAINT";
  }
  if (!f.up) {
    return "DOWN";
  }
  return f.admin == AdminState::kDrain || f.weight == 0 ? "DRAIN" : "UP";
}

bool replicationChecked(const Backend& backend) {
  const std::optional<CheckConfig>& cfg = backend.cfg().check;
  return cfg && cfg->type == CheckType::kMysql && cfg->mysql_mode == MysqlCheckMode::kReplication;
}

// Label values must be valid UTF-8 for Prometheus: other bytes become '?'. Cut at
// kMaxReasonBytes, never inside a character.
std::string labelText(const std::string& text) {
  std::string out;
  size_t i = 0;
  while (i < text.size() && out.size() < kMaxReasonBytes) {
    auto lead = static_cast<unsigned char>(text[i]);
    size_t length = lead < 0x80                    ? 1
                    : lead >= 0xC2 && lead <= 0xDF ? 2
                    : lead >= 0xE0 && lead <= 0xEF ? 3
                    : lead >= 0xF0 && lead <= 0xF4 ? 4
                                                   : 0;
    bool valid = length > 0 && i + length <= text.size();
    for (size_t k = 1; valid && k < length; ++k) {
      valid = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
    }
    if (!valid) {
      out += '?';
      ++i;
    } else if (out.size() + length <= kMaxReasonBytes) {
      out.append(text, i, length);
      i += length;
    } else {
      break;
    }
  }
  return out;
}

// The families in output order. A deque, so that a family stays where it is while later
// ones are added.
class Families {
 public:
  MetricFamily& add(const char* name, const char* help, MetricType type) {
    list_.push_back(MetricFamily{name, help, type, {}});
    return list_.back();
  }
  std::deque<MetricFamily>& list() { return list_; }

 private:
  std::deque<MetricFamily> list_;
};

void addSample(MetricFamily& family, Labels labels, double v) {
  ClientMetric metric;
  metric.label = std::move(labels);
  if (family.type == MetricType::Counter) {
    metric.counter.value = v;
  } else {
    metric.gauge.value = v;
  }
  family.metric.push_back(std::move(metric));
}

Labels proxyLabel(const std::string& proxy) {
  return Labels{{"proxy", proxy}};
}

Labels serverLabels(const Server& server) {
  return Labels{{"proxy", server.backend().name()}, {"server", server.name()}};
}

Labels with(Labels labels, const char* name, std::string v) {
  labels.push_back(ClientMetric::Label{name, std::move(v)});
  return labels;
}

// A family with one series per object, for the simple per-object numbers.
template <typename T, typename LabelFn, typename ValueFn>
void perObject(Families& families, const char* name, const char* help, MetricType type,
               const std::vector<T>& objects, LabelFn labels, ValueFn value_of) {
  MetricFamily& family = families.add(name, help, type);
  for (const T& object : objects) {
    std::optional<double> v = value_of(object);
    if (v) {
      addSample(family, labels(object), *v);
    }
  }
  if (family.metric.empty()) {
    families.list().pop_back();  // a family without series would be a HELP line alone
  }
}

RateTracker::Rate rateOf(const StatsView& view, const void* object) {
  return view.rates != nullptr ? view.rates->rate(object) : RateTracker::Rate{};
}

void addProcess(Families& families, const StatsView& view) {
  double cur = 0;
  double conns = 0;
  double requests = 0;
  double bytes_out = 0;
  double listeners = 0;
  for (const auto& frontend : view.runtime.frontends()) {
    cur += value(frontend->counters.cur_conns);
    conns += value(frontend->counters.total_conns);
    requests += value(frontend->counters.http_requests);
    bytes_out += value(frontend->counters.bytes_out);
    listeners += static_cast<double>(frontend->cfg().listen.size());
  }
  RateTracker::Rate rate = rateOf(view, &view.runtime);
  auto gauge = [&families](const char* name, const char* help, double v) {
    addSample(families.add(name, help, MetricType::Gauge), {}, v);
  };
  auto counter = [&families](const char* name, const char* help, double v) {
    addSample(families.add(name, help, MetricType::Counter), {}, v);
  };
  addSample(families.add("haproxy_process_build_info", "Build info (Tandem's version).",
                         MetricType::Gauge),
            Labels{{"version", view.process.version}}, 1);
  gauge("haproxy_process_nbthread", "Number of worker threads.", view.process.threads);
  gauge("haproxy_process_nbproc", "Number of processes (always 1).", 1);
  gauge("haproxy_process_relative_process_id", "Relative process id (always 1).", 1);
  gauge("haproxy_process_start_time_seconds", "Start time in seconds since the epoch.",
        static_cast<double>(view.process.start_ms) / kMs);
  gauge("haproxy_process_uptime_seconds", "How long the process has been running, in seconds.",
        static_cast<double>(view.now_ms - view.process.start_ms) / kMs);
  gauge("haproxy_process_current_connections", "Number of active sessions.", cur);
  counter("haproxy_process_connections_total", "Total number of accepted connections.", conns);
  counter("haproxy_process_requests_total", "Total number of HTTP requests received.", requests);
  gauge("haproxy_process_current_connection_rate", "Connections accepted over the last second.",
        static_cast<double>(rate.sessions));
  gauge("haproxy_process_max_connection_rate", "Highest connection rate per second seen.",
        static_cast<double>(rate.sessions_max));
  gauge("haproxy_process_current_session_rate", "Sessions created over the last second.",
        static_cast<double>(rate.sessions));
  gauge("haproxy_process_max_session_rate", "Highest session rate per second seen.",
        static_cast<double>(rate.sessions_max));
  gauge("haproxy_process_listeners", "Number of listening addresses.", listeners);
  gauge("haproxy_process_jobs", "Number of active jobs (listeners and sessions).", cur + listeners);
  gauge("haproxy_process_stopping", "Non-zero while the process is stopping.", 0);
  counter("haproxy_process_bytes_out_total", "Total bytes sent to clients.", bytes_out);
}

void addFrontends(Families& families, const StatsView& view) {
  std::vector<const Frontend*> all;
  std::vector<const Frontend*> http;
  for (const auto& frontend : view.runtime.frontends()) {
    all.push_back(frontend.get());
    if (frontend->cfg().mode == Mode::kHttp) {
      http.push_back(frontend.get());
    }
  }
  auto labels = [](const Frontend* f) { return proxyLabel(f->name()); };
  auto counters = [&](const char* name, const char* help, MetricType type, auto get) {
    perObject(families, name, help, type, all, labels,
              [&get](const Frontend* f) -> std::optional<double> { return get(f->counters); });
  };
  MetricFamily& status =
      families.add("haproxy_frontend_status", "Current status of the frontend.", MetricType::Gauge);
  for (const Frontend* f : all) {
    addSample(status, with(labels(f), "state", "DOWN"), 0);
    addSample(status, with(labels(f), "state", "UP"), 1);
  }
  if (all.empty()) {
    families.list().pop_back();
  }
  counters("haproxy_frontend_current_sessions", "Number of current sessions.", MetricType::Gauge,
           [](const Counters& c) { return value(c.cur_conns); });
  counters("haproxy_frontend_max_sessions", "Highest number of simultaneous sessions.",
           MetricType::Gauge, [](const Counters& c) { return value(c.max_conns); });
  perObject(families, "haproxy_frontend_limit_sessions", "Configured session limit (maxconn).",
            MetricType::Gauge, all, labels, [](const Frontend* f) -> std::optional<double> {
              if (f->cfg().maxconn <= 0) {
                return std::nullopt;
              }
              return f->cfg().maxconn;
            });
  counters("haproxy_frontend_sessions_total", "Total number of sessions.", MetricType::Counter,
           [](const Counters& c) { return value(c.total_conns); });
  counters("haproxy_frontend_connections_total", "Total number of accepted connections.",
           MetricType::Counter, [](const Counters& c) { return value(c.total_conns); });
  perObject(families, "haproxy_frontend_max_session_rate",
            "Highest number of sessions per second seen.", MetricType::Gauge, all, labels,
            [&view](const Frontend* f) -> std::optional<double> {
              return static_cast<double>(rateOf(view, f).sessions_max);
            });
  perObject(families, "haproxy_frontend_connections_rate_max",
            "Highest number of connections per second seen.", MetricType::Gauge, all, labels,
            [&view](const Frontend* f) -> std::optional<double> {
              return static_cast<double>(rateOf(view, f).sessions_max);
            });
  counters("haproxy_frontend_bytes_in_total", "Total bytes received from clients.",
           MetricType::Counter, [](const Counters& c) { return value(c.bytes_in); });
  counters("haproxy_frontend_bytes_out_total", "Total bytes sent to clients.", MetricType::Counter,
           [](const Counters& c) { return value(c.bytes_out); });
  counters("haproxy_frontend_requests_denied_total", "Total requests denied.", MetricType::Counter,
           [](const Counters& c) { return value(c.denied_requests); });
  counters("haproxy_frontend_request_errors_total", "Total invalid requests.", MetricType::Counter,
           [](const Counters& c) { return value(c.request_errors); });
  perObject(families, "haproxy_frontend_http_requests_total", "Total HTTP requests received.",
            MetricType::Counter, http, labels, [](const Frontend* f) -> std::optional<double> {
              return value(f->counters.http_requests);
            });
  perObject(families, "haproxy_frontend_http_requests_rate_max",
            "Highest number of HTTP requests per second seen.", MetricType::Gauge, http, labels,
            [&view](const Frontend* f) -> std::optional<double> {
              return static_cast<double>(rateOf(view, f).requests_max);
            });
  if (!http.empty()) {
    MetricFamily& responses =
        families.add("haproxy_frontend_http_responses_total",
                     "Total HTTP responses by status class.", MetricType::Counter);
    for (const Frontend* f : http) {
      for (size_t i = 0; i < 6; ++i) {
        addSample(responses, with(labels(f), "code", kCodes[i]), value(f->counters.responses[i]));
      }
    }
  }
}

// The servers that take traffic: the active ones, or the backups when none is left (the
// weight HAProxy reports for a backend).
std::pair<double, double> backendWeights(const Backend& backend) {
  bool active_left = backend.usableActive() > 0;
  double weight = 0;
  double uweight = 0;
  for (const auto& server : backend.servers()) {
    if (server->usable() && server->cfg().backup != active_left) {
      weight += server->weight.load(std::memory_order_relaxed);
      uweight += server->cfg().weight;
    }
  }
  return {weight, uweight};
}

void addTimers(Families& families, const char* prefix, const std::vector<const Counters*>& all,
               const std::vector<Labels>& labels) {
  struct Timer {
    const char* suffix;
    const char* help;
    std::atomic<int64_t> Counters::*field;
  };
  static const Timer kTimers[] = {
      {"_queue_time_average_seconds", "Average queue time over the last 1024 requests.",
       &Counters::avg_queue_ms},
      {"_connect_time_average_seconds", "Average connect time over the last 1024 requests.",
       &Counters::avg_connect_ms},
      {"_response_time_average_seconds", "Average response time over the last 1024 requests.",
       &Counters::avg_response_ms},
      {"_total_time_average_seconds", "Average total session time over the last 1024 requests.",
       &Counters::avg_total_ms},
  };
  if (all.empty()) {
    return;
  }
  for (const Timer& timer : kTimers) {
    std::string name = std::string(prefix) + timer.suffix;
    MetricFamily& family = families.add(name.c_str(), timer.help, MetricType::Gauge);
    for (size_t i = 0; i < all.size(); ++i) {
      addSample(family, labels[i], value(all[i]->*timer.field) / kMs);
    }
  }
}

// The counters kept for backends and servers alike.
template <typename T>
void addCommonCounters(Families& families, const char* prefix, const std::vector<T>& objects,
                       const std::vector<Labels>& labels, const Counters& (*counters_of)(T)) {
  struct Field {
    const char* suffix;
    const char* help;
    MetricType type;
    bool is_signed;
    std::atomic<uint64_t> Counters::*u;
    std::atomic<int64_t> Counters::*s;
  };
  static const Field kFields[] = {
      {"_current_sessions", "Number of current sessions.", MetricType::Gauge, true, nullptr,
       &Counters::cur_conns},
      {"_max_sessions", "Highest number of simultaneous sessions.", MetricType::Gauge, true,
       nullptr, &Counters::max_conns},
      {"_sessions_total", "Total number of sessions.", MetricType::Counter, false,
       &Counters::total_conns, nullptr},
      {"_bytes_in_total", "Total bytes received from clients.", MetricType::Counter, false,
       &Counters::bytes_in, nullptr},
      {"_bytes_out_total", "Total bytes sent to clients.", MetricType::Counter, false,
       &Counters::bytes_out, nullptr},
      {"_connection_errors_total", "Total failed connections to servers.", MetricType::Counter,
       false, &Counters::connect_errors, nullptr},
      {"_response_errors_total", "Total invalid or missing responses.", MetricType::Counter, false,
       &Counters::response_errors, nullptr},
      {"_retry_warnings_total", "Total retried connections.", MetricType::Counter, false,
       &Counters::retries, nullptr},
      {"_redispatch_warnings_total", "Total retries sent to another server.", MetricType::Counter,
       false, &Counters::redispatches, nullptr},
  };
  if (objects.empty()) {
    return;
  }
  for (const Field& field : kFields) {
    std::string name = std::string(prefix) + field.suffix;
    MetricFamily& family = families.add(name.c_str(), field.help, field.type);
    for (size_t i = 0; i < objects.size(); ++i) {
      const Counters& c = counters_of(objects[i]);
      addSample(family, labels[i], field.is_signed ? value(c.*field.s) : value(c.*field.u));
    }
  }
}

void addResponses(Families& families, const char* name, const std::vector<const Counters*>& all,
                  const std::vector<Labels>& labels) {
  if (all.empty()) {
    return;
  }
  MetricFamily& family =
      families.add(name, "Total HTTP responses by status class.", MetricType::Counter);
  for (size_t i = 0; i < all.size(); ++i) {
    for (size_t k = 0; k < 6; ++k) {
      addSample(family, with(labels[i], "code", kCodes[k]), value(all[i]->responses[k]));
    }
  }
}

const Counters& backendCounters(const Backend* backend) {
  return backend->counters;
}

const Counters& serverCounters(const ServerFacts* facts) {
  return facts->server->counters;
}

void addBackends(Families& families, const StatsView& view) {
  std::vector<const Backend*> all;
  std::vector<Labels> labels;
  std::vector<const Counters*> counters;
  std::vector<const Counters*> http;
  std::vector<Labels> http_labels;
  for (const auto& backend : view.runtime.backends()) {
    all.push_back(backend.get());
    labels.push_back(proxyLabel(backend->name()));
    counters.push_back(&backend->counters);
    if (backend->cfg().mode == Mode::kHttp) {
      http.push_back(&backend->counters);
      http_labels.push_back(labels.back());
    }
  }
  if (all.empty()) {
    return;
  }
  MetricFamily& status =
      families.add("haproxy_backend_status", "Current status of the backend.", MetricType::Gauge);
  for (size_t i = 0; i < all.size(); ++i) {
    bool up = backendWeights(*all[i]).first > 0 || all[i]->servers().empty();
    addSample(status, with(labels[i], "state", "DOWN"), up ? 0 : 1);
    addSample(status, with(labels[i], "state", "UP"), up ? 1 : 0);
  }
  addCommonCounters<const Backend*>(families, "haproxy_backend", all, labels, &backendCounters);
  auto each = [&](const char* name, const char* help, MetricType type, auto get) {
    MetricFamily& family = families.add(name, help, type);
    for (size_t i = 0; i < all.size(); ++i) {
      addSample(family, labels[i], get(*all[i]));
    }
  };
  each("haproxy_backend_requests_denied_total", "Total requests denied.", MetricType::Counter,
       [](const Backend& b) { return value(b.counters.denied_requests); });
  each("haproxy_backend_max_session_rate", "Highest number of sessions per second seen.",
       MetricType::Gauge,
       [&view](const Backend& b) { return static_cast<double>(rateOf(view, &b).sessions_max); });
  each("haproxy_backend_weight", "Total effective weight of the servers taking traffic.",
       MetricType::Gauge, [](const Backend& b) { return backendWeights(b).first; });
  each("haproxy_backend_uweight", "Total configured weight of the servers taking traffic.",
       MetricType::Gauge, [](const Backend& b) { return backendWeights(b).second; });
  each("haproxy_backend_active_servers", "Number of active servers taking traffic.",
       MetricType::Gauge, [](const Backend& b) { return static_cast<double>(b.usableActive()); });
  each("haproxy_backend_backup_servers", "Number of backup servers taking traffic.",
       MetricType::Gauge, [](const Backend& b) { return static_cast<double>(b.usableBackup()); });
  each("haproxy_backend_loadbalanced_total", "Total times a server was chosen by the balancer.",
       MetricType::Counter, [](const Backend& b) {
         double total = 0;
         for (const auto& server : b.servers()) {
           total += static_cast<double>(server->picks.load(std::memory_order_relaxed));
         }
         return total;
       });
  if (!http.empty()) {
    MetricFamily& requests = families.add("haproxy_backend_http_requests_total",
                                          "Total HTTP requests.", MetricType::Counter);
    for (size_t i = 0; i < http.size(); ++i) {
      addSample(requests, http_labels[i], value(http[i]->http_requests));
    }
  }
  addResponses(families, "haproxy_backend_http_responses_total", http, http_labels);
  addTimers(families, "haproxy_backend", counters, labels);
}

void addServerChecks(Families& families, const StatsView& view,
                     const std::vector<const ServerFacts*>& checked,
                     const std::vector<Labels>& labels) {
  if (checked.empty()) {
    return;
  }
  auto each = [&](const char* name, const char* help, MetricType type, auto get) {
    MetricFamily& family = families.add(name, help, type);
    for (size_t i = 0; i < checked.size(); ++i) {
      std::optional<double> v = get(*checked[i]);
      if (v) {
        addSample(family, labels[i], *v);
      }
    }
    if (family.metric.empty()) {
      families.list().pop_back();
    }
  };
  MetricFamily& status =
      families.add("haproxy_server_check_status",
                   "Status of the last health check, one series per status.", MetricType::Gauge);
  for (size_t i = 0; i < checked.size(); ++i) {
    for (const char* name : kCheckStatuses) {
      addSample(status, with(labels[i], "state", name), checked[i]->check.status == name ? 1 : 0);
    }
  }
  each("haproxy_server_check_failures_total", "Total failed health checks.", MetricType::Counter,
       [](const ServerFacts& f) -> std::optional<double> {
         return static_cast<double>(f.check.failed_checks);
       });
  each("haproxy_server_check_up_down_total", "Total UP to DOWN transitions.", MetricType::Counter,
       [](const ServerFacts& f) -> std::optional<double> {
         return static_cast<double>(f.check.down_transitions);
       });
  each("haproxy_server_downtime_seconds_total", "Total time spent DOWN, in seconds.",
       MetricType::Counter, [&view](const ServerFacts& f) -> std::optional<double> {
         int64_t total = f.check.downtime_ms;
         if (!f.up) {
           int64_t since =
               f.check.last_change_ms > 0 ? f.check.last_change_ms : view.process.start_ms;
           total += std::max<int64_t>(0, view.now_ms - since);
         }
         return static_cast<double>(total / 1000);
       });
  each("haproxy_server_check_duration_seconds", "Duration of the last health check, in seconds.",
       MetricType::Gauge, [](const ServerFacts& f) -> std::optional<double> {
         if (f.check.duration_ms < 0) {
           return std::nullopt;
         }
         return static_cast<double>(f.check.duration_ms) / kMs;
       });
  MetricFamily& info =
      families.add("tandem_server_check_info",
                   "The last health check's status and reason (always 1).", MetricType::Gauge);
  for (size_t i = 0; i < checked.size(); ++i) {
    Labels l = with(labels[i], "status", checked[i]->check.status);
    addSample(info, with(std::move(l), "reason", labelText(checked[i]->check.reason)), 1);
  }
}

void addLatency(Families& families, const std::vector<ServerFacts>& servers,
                const std::vector<Labels>& labels) {
  if (servers.empty()) {
    return;
  }
  MetricFamily& family = families.add(
      "tandem_server_latency_seconds",
      "Server latency: HTTP response time (connected to response head); TCP connect time.",
      MetricType::Histogram);
  for (size_t i = 0; i < servers.size(); ++i) {
    const LatencyHistogram& h = servers[i].server->latency;
    ClientMetric metric;
    metric.label = labels[i];
    uint64_t cumulative = 0;
    for (size_t b = 0; b < LatencyHistogram::kBuckets; ++b) {
      cumulative += h.counts[b].load(std::memory_order_relaxed);
      double bound = b + 1 < LatencyHistogram::kBuckets
                         ? static_cast<double>(LatencyHistogram::kBoundsMs[b]) / kMs
                         : std::numeric_limits<double>::infinity();
      metric.histogram.bucket.push_back(ClientMetric::Bucket{cumulative, bound});
    }
    metric.histogram.sample_count = cumulative;
    metric.histogram.sample_sum = value(h.sum_ms) / kMs;
    family.metric.push_back(std::move(metric));
  }
}

void addReplication(Families& families, const std::vector<ServerFacts>& servers,
                    const std::vector<Labels>& labels) {
  std::vector<size_t> known;
  for (size_t i = 0; i < servers.size(); ++i) {
    if (replicationChecked(servers[i].server->backend()) && servers[i].replication.known) {
      known.push_back(i);
    }
  }
  if (known.empty()) {
    return;
  }
  auto each = [&](const char* name, const char* help, auto get) {
    MetricFamily& family = families.add(name, help, MetricType::Gauge);
    for (size_t i : known) {
      std::optional<double> v = get(servers[i].replication);
      if (v) {
        addSample(family, labels[i], *v);
      }
    }
    if (family.metric.empty()) {
      families.list().pop_back();
    }
  };
  each("tandem_server_replication_lag_seconds",
       "Replication lag (Seconds_Behind_Master); absent while unknown.",
       [](const ReplicationInfo& r) -> std::optional<double> {
         if (!r.is_replica || r.lag_seconds < 0) {
           return std::nullopt;
         }
         return static_cast<double>(r.lag_seconds);
       });
  each("tandem_server_replication_io_running", "1 while the replica's IO thread runs.",
       [](const ReplicationInfo& r) -> std::optional<double> {
         return r.is_replica ? std::optional<double>(r.io_running ? 1 : 0) : std::nullopt;
       });
  each("tandem_server_replication_sql_running", "1 while the replica's SQL thread runs.",
       [](const ReplicationInfo& r) -> std::optional<double> {
         return r.is_replica ? std::optional<double>(r.sql_running ? 1 : 0) : std::nullopt;
       });
  each("tandem_server_read_only", "1 when the database server has read_only set.",
       [](const ReplicationInfo& r) -> std::optional<double> { return r.read_only ? 1 : 0; });
}

void addRoles(Families& families, const std::vector<ServerFacts>& servers,
              const std::vector<Labels>& labels) {
  MetricFamily& writer =
      families.add("tandem_backend_writer", "1 for the elected writer of a writer backend, else 0.",
                   MetricType::Gauge);
  MetricFamily& reads =
      families.add("tandem_server_reads_ok",
                   "1 when a reader backend's server is fit to take reads.", MetricType::Gauge);
  for (size_t i = 0; i < servers.size(); ++i) {
    const Server& server = *servers[i].server;
    const Backend& backend = server.backend();
    if (backend.cfg().role == Role::kWriter) {
      addSample(writer, labels[i],
                backend.writer.load(std::memory_order_relaxed) == &server ? 1 : 0);
    } else if (backend.cfg().role == Role::kReader) {
      addSample(reads, labels[i], server.reads_ok.load(std::memory_order_relaxed) ? 1 : 0);
    }
  }
  if (reads.metric.empty()) {
    families.list().pop_back();
  }
  if (writer.metric.empty()) {
    families.list().pop_back();  // the last one now
  }
}

void addServers(Families& families, const StatsView& view) {
  std::vector<ServerFacts> servers;
  for (const auto& backend : view.runtime.backends()) {
    for (const auto& server : backend->servers()) {
      servers.push_back(readServer(*server, view));
    }
  }
  if (servers.empty()) {
    return;
  }
  std::vector<const ServerFacts*> all;
  std::vector<Labels> labels;
  std::vector<const Counters*> counters;
  std::vector<const Counters*> http;
  std::vector<Labels> http_labels;
  std::vector<const ServerFacts*> checked;
  std::vector<Labels> checked_labels;
  for (const ServerFacts& f : servers) {
    all.push_back(&f);
    labels.push_back(serverLabels(*f.server));
    counters.push_back(&f.server->counters);
    if (f.server->backend().cfg().mode == Mode::kHttp) {
      http.push_back(&f.server->counters);
      http_labels.push_back(labels.back());
    }
    if (f.check.enabled) {
      checked.push_back(&f);
      checked_labels.push_back(labels.back());
    }
  }
  MetricFamily& status =
      families.add("haproxy_server_status", "Current status of the server, one series per state.",
                   MetricType::Gauge);
  for (size_t i = 0; i < all.size(); ++i) {
    const char* current = serverState(*all[i]);
    for (const char* state : kServerStates) {
      addSample(status, with(labels[i], "state", state), std::string_view(current) == state);
    }
  }
  addCommonCounters<const ServerFacts*>(families, "haproxy_server", all, labels, &serverCounters);
  auto each = [&](const char* name, const char* help, MetricType type, auto get) {
    MetricFamily& family = families.add(name, help, type);
    for (size_t i = 0; i < all.size(); ++i) {
      std::optional<double> v = get(*all[i]);
      if (v) {
        addSample(family, labels[i], *v);
      }
    }
    if (family.metric.empty()) {
      families.list().pop_back();
    }
  };
  each("haproxy_server_limit_sessions", "Configured session limit (maxconn).", MetricType::Gauge,
       [](const ServerFacts& f) -> std::optional<double> {
         if (f.server->cfg().maxconn <= 0) {
           return std::nullopt;
         }
         return f.server->cfg().maxconn;
       });
  each("haproxy_server_max_session_rate", "Highest number of sessions per second seen.",
       MetricType::Gauge, [](const ServerFacts& f) -> std::optional<double> {
         return static_cast<double>(f.rate.sessions_max);
       });
  each("haproxy_server_weight", "Effective weight.", MetricType::Gauge,
       [](const ServerFacts& f) -> std::optional<double> { return f.weight; });
  each("haproxy_server_uweight", "Configured weight.", MetricType::Gauge,
       [](const ServerFacts& f) -> std::optional<double> { return f.server->cfg().weight; });
  each("haproxy_server_check_last_change_seconds", "Seconds since the last UP/DOWN change.",
       MetricType::Gauge, [&view](const ServerFacts& f) -> std::optional<double> {
         int64_t since =
             f.check.last_change_ms > 0 ? f.check.last_change_ms : view.process.start_ms;
         return static_cast<double>(std::max<int64_t>(0, view.now_ms - since) / 1000);
       });
  each("haproxy_server_loadbalanced_total", "Total times the balancer chose this server.",
       MetricType::Counter, [](const ServerFacts& f) -> std::optional<double> {
         return static_cast<double>(f.server->picks.load(std::memory_order_relaxed));
       });
  addServerChecks(families, view, checked, checked_labels);
  addResponses(families, "haproxy_server_http_responses_total", http, http_labels);
  addTimers(families, "haproxy_server", counters, labels);
  addLatency(families, servers, labels);
  addReplication(families, servers, labels);
  addRoles(families, servers, labels);
}

}  // namespace

std::string renderMetrics(const StatsView& view) {
  Families families;
  addProcess(families, view);
  addFrontends(families, view);
  addBackends(families, view);
  addServers(families, view);
  std::vector<MetricFamily> list(std::make_move_iterator(families.list().begin()),
                                 std::make_move_iterator(families.list().end()));
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, list);
  return out.str();
}

}  // namespace tandem
