// Shared setup for the admin renderer tests (stats_test.cpp, metrics_test.cpp): a real
// Runtime built from a config string (no workers run), the process facts the renderers
// print, and the ways those tests put servers in a check or replication state, as the
// checkers would.
//
//   class MyTest : public AdminTest {
//    protected:
//     MyTest()
//         : AdminTest(frontendToml("in", 18097, "plain") + tcpBackendToml("plain", "t1", 18096),
//                     "my.toml") {}
//   };
//   TEST_F(MyTest, Renders) {
//     setCheckInfo(server("plain", "t1"), true, 0, "L4CON", "connection refused", 1);
//     EXPECT_THAT(renderStatsCsv(view()), HasSubstr("L4CON"));
//   }
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <mutex>
#include <string>

#include "admin/stats.h"
#include "core/config.h"

namespace tandem {

// A frontend listening on 127.0.0.1:`port`, as TOML; `extra` holds more of its keys.
inline std::string frontendToml(const std::string& name, int port, const std::string& backend,
                                const std::string& extra = "") {
  return "\n[[frontend]]\nname = \"" + name + "\"\nlisten = \"127.0.0.1:" + std::to_string(port) +
         "\"\nbackend = \"" + backend + "\"\n" + extra;
}

// A server at 127.0.0.1:`port` of the backend above it, as TOML; `extra` holds more keys.
inline std::string serverToml(const std::string& name, int port, const std::string& extra = "") {
  return "[[backend.server]]\nname = \"" + name +
         "\"\naddress = \"127.0.0.1:" + std::to_string(port) + "\"\n" + extra;
}

// A TCP backend of one server, as TOML.
inline std::string tcpBackendToml(const std::string& name, const std::string& server, int port) {
  return "\n[[backend]]\nname = \"" + name + "\"\n" + serverToml(server, port);
}

// A backend of two MySQL servers, db1 and db2, under the replication check, as TOML.
inline std::string replicationBackendToml(const std::string& name, const std::string& role,
                                          int db1_port, int db2_port) {
  return "\n[[backend]]\nname = \"" + name + "\"\nrole = \"" + role +
         "\"\n[backend.check]\ntype = \"mysql\"\nmode = \"replication\"\n"
         "user = \"monitor\"\npassword = \"secret\"\n" +
         serverToml("db1", db1_port) + serverToml("db2", db2_port);
}

// Puts a server in a check state, as the checker would.
inline void setCheckInfo(Server& s, bool enabled, int health, const std::string& status,
                         const std::string& reason, int64_t duration_ms) {
  std::lock_guard<std::mutex> lock(s.check_mutex);
  s.check_info.enabled = enabled;
  s.check_info.health = health;
  s.check_info.status = status;
  s.check_info.reason = reason;
  s.check_info.duration_ms = duration_ms;
}

// Makes a server a read-only replica whose IO thread runs and SQL thread has stopped, as
// the replication check would report it.
inline void setStoppedReplica(Server& s, int64_t lag_seconds) {
  std::lock_guard<std::mutex> lock(s.check_mutex);
  s.replication.known = true;
  s.replication.is_replica = true;
  s.replication.read_only = true;
  s.replication.io_running = true;
  s.replication.sql_running = false;
  s.replication.lag_seconds = lag_seconds;
}

// A Runtime from `toml` and the process facts both test files share; each sets the rest.
class AdminTest : public testing::Test {
 protected:
  AdminTest(const std::string& toml, const std::string& file_name)
      : runtime_(loadConfigString(toml, file_name)) {
    process_.start_ms = kNow - 42000;
    process_.version = "0.1.0";
    process_.node = "lb1";
  }

  StatsView view(const RateTracker* rates = nullptr) const {
    return StatsView{runtime_, process_, rates, kNow};
  }
  Server& server(const std::string& backend, const std::string& name) {
    return *runtime_.findBackend(backend)->findServer(name);
  }

  static constexpr int64_t kNow = 1796300000000;
  Runtime runtime_;
  ProcessInfo process_;
};

}  // namespace tandem
