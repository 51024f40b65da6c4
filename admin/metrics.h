// `/metrics`: the model in Prometheus text format, under the names, types and labels of
// HAProxy 2.6's exporter (haproxy_process_*, haproxy_frontend_*, haproxy_backend_*,
// haproxy_server_*), so that dashboards and alerts written for HAProxy keep working, plus
// tandem_* families for what HAProxy does not measure: replication lag and thread state,
// read_only, the elected writer, readers fit for reads, the last check's reason (an info
// metric) and a latency histogram per server.
//
// Each scrape builds prometheus-cpp's MetricFamily values straight from the model and
// serializes them with its TextSerializer: no registry holds copies between scrapes, so a
// scrape costs one pass over the model and nothing happens between scrapes.
//
//   StatsView view{runtime, process, &rates, nowMs()};
//   std::string body = renderMetrics(view);  // Content-Type: text/plain; version=0.0.4
#pragma once

#include <string>

#include "admin/stats.h"

namespace tandem {

std::string renderMetrics(const StatsView& view);

}  // namespace tandem
