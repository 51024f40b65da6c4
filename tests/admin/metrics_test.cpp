// /metrics over a real Runtime built from a config (no workers run): HAProxy's exporter
// names and labels, the tandem_* families, cumulative histogram buckets, and the real
// `promtool check metrics` run on the output.
#include "admin/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/config.h"
#include "tests/admin/admin_test_support.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// An HTTP and a TCP frontend; an HTTP backend with a check, a TCP one, and the same MySQL
// pair as a writer and as a reader backend.
std::string metricsConfig() {
  return frontendToml("http-in", 18190, "web", "mode = \"http\"\nmaxconn = 100\n") +
         frontendToml("db-in", 18194, "db") + R"(
[[backend]]
name = "web"
mode = "http"
[backend.check]
type = "http"
)" + serverToml("web1", 18191, "maxconn = 10\n") +
         serverToml("web2", 18192) + tcpBackendToml("plain", "t1", 18196) +
         replicationBackendToml("db", "writer", 13316, 13317) +
         replicationBackendToml("db-read", "reader", 13316, 13317);
}

std::vector<std::string> linesStartingWith(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      out.push_back(line);
    }
  }
  return out;
}

double sampleValue(const std::string& line) {
  return std::strtod(line.substr(line.rfind(' ') + 1).c_str(), nullptr);
}

class MetricsTest : public AdminTest {
 protected:
  MetricsTest() : AdminTest(metricsConfig(), "metrics.toml") {
    process_.pid = 4321;
    process_.threads = 2;
  }

  std::string render(const RateTracker* rates = nullptr) { return renderMetrics(view(rates)); }
  void setCheck(Server& s, const std::string& status, const std::string& reason, int health) {
    setCheckInfo(s, true, health, status, reason, 4);
  }
  // A busy, varied state: every family Tandem fills has series.
  void populate() {
    for (const auto& b : runtime_.backends()) {
      if (b->cfg().check) {
        for (const auto& s : b->servers()) {
          setCheck(*s, "L7OK", "Layer7 check passed: 200 OK", 4);
        }
      }
    }
    Server& web1 = server("web", "web1");
    web1.counters.cur_conns = 2;
    web1.counters.total_conns = 50;
    web1.counters.responses[1] = 40;
    web1.counters.responses[4] = 3;
    web1.counters.avg_response_ms = 25;
    for (int64_t ms : {0, 3, 3, 700, 20000}) {
      web1.latency.add(ms);
    }
    Server& web2 = server("web", "web2");
    web2.up = false;
    setCheck(web2, "L4CON", "connection refused, \"again\"\n\xff", 0);
    server("plain", "t1").admin = AdminState::kDrain;
    Backend& web = *runtime_.findBackend("web");
    web.counters.responses[1] = 40;
    web.counters.http_requests = 43;
    runtime_.frontends()[0]->counters.total_conns = 60;
    runtime_.findBackend("db")->writer = &server("db", "db1");
    server("db-read", "db2").reads_ok = false;
    setStoppedReplica(server("db", "db2"), 7);
  }
};

TEST_F(MetricsTest, ServerStatusHasOneSeriesPerState) {
  populate();
  std::string text = render();
  std::vector<std::string> web1 =
      linesStartingWith(text, R"(haproxy_server_status{proxy="web",server="web1",)");
  EXPECT_EQ(web1, (std::vector<std::string>{
                      R"(haproxy_server_status{proxy="web",server="web1",state="DOWN"} 0)",
                      R"(haproxy_server_status{proxy="web",server="web1",state="UP"} 1)",
                      R"(haproxy_server_status{proxy="web",server="web1",state="MAINT"} 0)",
                      R"(haproxy_server_status{proxy="web",server="web1",state="DRAIN"} 0)",
                      R"(haproxy_server_status{proxy="web",server="web1",state="NOLB"} 0)"}));
  EXPECT_THAT(text,
              HasSubstr(R"(haproxy_server_status{proxy="web",server="web2",state="DOWN"} 1)"));
  EXPECT_THAT(text,
              HasSubstr(R"(haproxy_server_status{proxy="plain",server="t1",state="DRAIN"} 1)"));
  EXPECT_THAT(text, HasSubstr("# TYPE haproxy_server_status gauge\n"));
}

TEST_F(MetricsTest, HaproxyFamiliesCarryTheModel) {
  populate();
  std::string text = render();
  for (const char* want : {
           "haproxy_process_build_info{version=\"0.1.0\"} 1\n",
           "haproxy_process_nbthread 2\n",
           "haproxy_process_connections_total 60\n",
           "# TYPE haproxy_process_connections_total counter\n",
           "haproxy_frontend_status{proxy=\"http-in\",state=\"UP\"} 1\n",
           "haproxy_frontend_limit_sessions{proxy=\"http-in\"} 100\n",
           "haproxy_frontend_sessions_total{proxy=\"http-in\"} 60\n",
           "haproxy_frontend_http_responses_total{proxy=\"http-in\",code=\"2xx\"} 0\n",
           "haproxy_backend_status{proxy=\"web\",state=\"UP\"} 1\n",
           "haproxy_backend_http_responses_total{proxy=\"web\",code=\"2xx\"} 40\n",
           "haproxy_backend_http_responses_total{proxy=\"web\",code=\"other\"} 0\n",
           "haproxy_backend_http_requests_total{proxy=\"web\"} 43\n",
           "haproxy_backend_active_servers{proxy=\"web\"} 1\n",
           "haproxy_server_current_sessions{proxy=\"web\",server=\"web1\"} 2\n",
           "haproxy_server_sessions_total{proxy=\"web\",server=\"web1\"} 50\n",
           "haproxy_server_limit_sessions{proxy=\"web\",server=\"web1\"} 10\n",
           "haproxy_server_http_responses_total{proxy=\"web\",server=\"web1\",code=\"5xx\"} 3\n",
           "haproxy_server_response_time_average_seconds{proxy=\"web\",server=\"web1\"} 0.025\n",
           "haproxy_server_check_status{proxy=\"web\",server=\"web1\",state=\"L7OK\"} 1\n",
           "haproxy_server_check_status{proxy=\"web\",server=\"web2\",state=\"L4CON\"} 1\n",
           "haproxy_server_check_status{proxy=\"web\",server=\"web2\",state=\"L7OK\"} 0\n",
           "haproxy_server_check_duration_seconds{proxy=\"web\",server=\"web1\"} 0.004\n",
           "haproxy_server_weight{proxy=\"web\",server=\"web1\"} 1\n",
       }) {
    EXPECT_THAT(text, HasSubstr(want));
  }
  // TCP backends and servers have no HTTP series; unchecked servers no check series.
  EXPECT_THAT(text, Not(HasSubstr("haproxy_backend_http_requests_total{proxy=\"plain\"}")));
  EXPECT_THAT(text, Not(HasSubstr("haproxy_server_check_status{proxy=\"plain\"")));
  EXPECT_THAT(text, Not(HasSubstr("haproxy_frontend_limit_sessions{proxy=\"db-in\"}")));
}

TEST_F(MetricsTest, TandemFamiliesShowRolesReplicationAndChecks) {
  populate();
  std::string text = render();
  for (const char* want : {
           "tandem_backend_writer{proxy=\"db\",server=\"db1\"} 1\n",
           "tandem_backend_writer{proxy=\"db\",server=\"db2\"} 0\n",
           "tandem_server_reads_ok{proxy=\"db-read\",server=\"db1\"} 1\n",
           "tandem_server_reads_ok{proxy=\"db-read\",server=\"db2\"} 0\n",
           "tandem_server_replication_lag_seconds{proxy=\"db\",server=\"db2\"} 7\n",
           "tandem_server_replication_io_running{proxy=\"db\",server=\"db2\"} 1\n",
           "tandem_server_replication_sql_running{proxy=\"db\",server=\"db2\"} 0\n",
           "tandem_server_read_only{proxy=\"db\",server=\"db2\"} 1\n",
           "tandem_server_check_info{proxy=\"web\",server=\"web1\",status=\"L7OK\","
           "reason=\"Layer7 check passed: 200 OK\"} 1\n",
           // Quotes and line breaks escaped, an invalid byte replaced.
           "tandem_server_check_info{proxy=\"web\",server=\"web2\",status=\"L4CON\","
           "reason=\"connection refused, \\\"again\\\"\\n?\"} 1\n",
       }) {
    EXPECT_THAT(text, HasSubstr(want));
  }
  // db1 never reported replication facts: no series rather than a made-up 0.
  EXPECT_THAT(text, Not(HasSubstr("tandem_server_replication_lag_seconds{proxy=\"db\","
                                  "server=\"db1\"}")));
  EXPECT_THAT(text, Not(HasSubstr("tandem_backend_writer{proxy=\"web\"")));
}

TEST_F(MetricsTest, LatencyHistogramBucketsAreCumulative) {
  populate();
  std::string text = render();
  std::vector<std::string> buckets =
      linesStartingWith(text, R"(tandem_server_latency_seconds_bucket{proxy="web",server="web1",)");
  ASSERT_EQ(buckets.size(), LatencyHistogram::kBuckets);
  double previous = 0;
  for (const std::string& line : buckets) {
    double v = sampleValue(line);
    EXPECT_GE(v, previous) << line;
    previous = v;
  }
  EXPECT_EQ(buckets.front(),
            R"(tandem_server_latency_seconds_bucket{proxy="web",server="web1",le="0.001"} 1)");
  EXPECT_THAT(text, HasSubstr(R"(tandem_server_latency_seconds_bucket{proxy="web",server="web1",)"
                              R"(le="0.005"} 3)"));
  EXPECT_THAT(text, HasSubstr(R"(tandem_server_latency_seconds_bucket{proxy="web",server="web1",)"
                              R"(le="1"} 4)"));
  EXPECT_EQ(buckets.back(),
            R"(tandem_server_latency_seconds_bucket{proxy="web",server="web1",le="+Inf"} 5)");
  EXPECT_THAT(text,
              HasSubstr(R"(tandem_server_latency_seconds_count{proxy="web",server="web1"} 5)"));
  EXPECT_THAT(text,
              HasSubstr(R"(tandem_server_latency_seconds_sum{proxy="web",server="web1"} 20.706)"));
  EXPECT_THAT(text, HasSubstr("# TYPE tandem_server_latency_seconds histogram\n"));
}

TEST_F(MetricsTest, EveryFamilyHasHelp) {
  populate();
  std::string text = render();
  std::vector<std::string> types = linesStartingWith(text, "# TYPE ");
  std::vector<std::string> helps = linesStartingWith(text, "# HELP ");
  ASSERT_GT(types.size(), 50u);
  EXPECT_EQ(types.size(), helps.size());
  for (const std::string& help : helps) {
    std::string rest = help.substr(7);
    EXPECT_NE(rest.find(' '), std::string::npos) << help;  // a name, then words
  }
}

TEST_F(MetricsTest, RatesComeFromTheTracker) {
  RateTracker rates(runtime_);
  rates.sample(1000);
  runtime_.frontends()[0]->counters.total_conns += 9;
  rates.sample(2000);
  std::string text = render(&rates);
  EXPECT_THAT(text, HasSubstr("haproxy_frontend_max_session_rate{proxy=\"http-in\"} 9\n"));
  EXPECT_THAT(text, HasSubstr("haproxy_process_current_session_rate 9\n"));
}

// The real promtool, fed on stdin as Prometheus' own tooling would read a scrape.
std::string runPromtool(const std::string& text, int* status) {
  char path[] = "/tmp/tandem-metrics-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  std::string command = std::string("promtool check metrics < ") + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  size_t n = 0;
  while (pipe != nullptr && (n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    output.append(buffer, n);
  }
  *status = pipe != nullptr ? pclose(pipe) : -1;
  unlink(path);
  return output;
}

bool promtoolInstalled() {
  return access("/usr/bin/promtool", X_OK) == 0;
}

// promtool exits 0 and prints nothing.
void expectPromtoolAccepts(const std::string& text) {
  int status = 0;
  std::string output = runPromtool(text, &status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
  EXPECT_EQ(output, "");
}

TEST_F(MetricsTest, PromtoolFindsNothingToComplainAbout) {
  if (!promtoolInstalled()) {
    GTEST_SKIP() << "promtool is not installed (Debian package prometheus)";
  }
  populate();
  expectPromtoolAccepts(render());

  // The check is real: a counter without _total makes it complain.
  std::string bad =
      "# HELP bad_counter A counter named wrong.\n# TYPE bad_counter counter\n"
      "bad_counter 1\n";
  int status = 0;
  std::string complaint = runPromtool(bad, &status);
  EXPECT_THAT(complaint, HasSubstr("_total"));
}

TEST_F(MetricsTest, PromtoolAcceptsAnIdleConfigToo) {
  if (!promtoolInstalled()) {
    GTEST_SKIP() << "promtool is not installed (Debian package prometheus)";
  }
  expectPromtoolAccepts(render());
}

}  // namespace
}  // namespace tandem
