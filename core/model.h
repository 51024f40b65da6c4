// The runtime model that the workers (proxy/), the checks (health/) and later the admin
// interface share: frontends, backends and servers, their state words and counters.
//
// Threads: the control thread writes a server's state (up, admin, weight); workers read it
// on every pick. Each field is one atomic, so no lock is ever taken on the data path.
// Counters are relaxed atomics: they are summed for display, never used for decisions
// except cur_conns (leastconn, maxconn), where a slightly stale read is harmless.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/config.h"

namespace tandem {

class Backend;

// Administrative state, set by the operator (config `disabled`, later the admin interface).
enum class AdminState : uint8_t { kReady, kDrain, kMaint };

struct Counters {
  std::atomic<int64_t> cur_conns{0};
  std::atomic<int64_t> max_conns{0};
  std::atomic<uint64_t> total_conns{0};
  std::atomic<uint64_t> bytes_in{0};   // from clients (or, for a server, sent to it)
  std::atomic<uint64_t> bytes_out{0};  // to clients (or, for a server, received from it)
  std::atomic<uint64_t> connect_errors{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> redispatches{0};

  // HTTP (zero in TCP mode).
  std::atomic<uint64_t> http_requests{0};    // req_tot
  std::atomic<uint64_t> denied_requests{0};  // dreq
  std::atomic<uint64_t> request_errors{0};   // ereq: bad requests (400, 408, 431)
  std::atomic<uint64_t> response_errors{0};  // eresp: bad or missing responses (502, 504)
  std::atomic<uint64_t> responses[6] = {};   // by class: 1xx..5xx, then other
  // Running averages in ms, HAProxy-style over about the last 1024 samples (see addTimer).
  std::atomic<int64_t> avg_queue_ms{0};
  std::atomic<int64_t> avg_connect_ms{0};
  std::atomic<int64_t> avg_response_ms{0};
  std::atomic<int64_t> avg_total_ms{0};

  void countResponse(int status);
  // Moves a running average toward `sample`: avg += (sample - avg) / min(samples, 1024),
  // where `samples` counts this one: the first sample sets the average, and later ones
  // weigh as in HAProxy's sliding window of 1024. Lossy under contention between workers
  // (a lost update skips one sample).
  static void addTimer(std::atomic<int64_t>& avg, int64_t sample_ms, uint64_t samples);

  // Increments cur_conns and total_conns and raises max_conns if needed.
  void onOpen();
  void onClose() { cur_conns.fetch_sub(1, std::memory_order_relaxed); }
};

// A latency distribution in fixed buckets (upper bounds in ms, the last one +Inf), for the
// per-server histograms in /metrics. Lock-free: workers add with relaxed atomics; a reader
// may see a sample in a bucket before it shows in sum_ms (harmless for display).
struct LatencyHistogram {
  static constexpr int64_t kBoundsMs[] = {1,   2,   5,    10,   25,   50,   100,
                                          250, 500, 1000, 2500, 5000, 10000};
  static constexpr size_t kBuckets = sizeof(kBoundsMs) / sizeof(kBoundsMs[0]) + 1;  // + +Inf
  std::atomic<uint64_t> counts[kBuckets] = {};  // per bucket, not cumulative
  std::atomic<uint64_t> sum_ms{0};

  void add(int64_t ms);
};

// The latest facts about a server's health checks, for logs and the admin interface.
// Written by the control thread under CheckInfo::mutex; read by whoever displays it.
struct CheckInfo {
  std::string status = "INI";     // HAProxy's check_status: INI, L4OK, L4TOUT, L4CON, SOCKERR...
  std::string reason;             // "connection refused", "Layer4 check passed", ...
  int64_t duration_ms = -1;       // of the last completed check
  int health = 0;                 // HAProxy's rise/fall counter, 0..rise+fall-1
  bool checking = false;          // a check is in flight
  bool enabled = false;           // active checks run for this server
  uint64_t failed_checks = 0;     // chkfail
  uint64_t down_transitions = 0;  // chkdown
  int64_t last_change_ms = 0;     // wall clock (ms since epoch) of the last UP/DOWN change
  int64_t downtime_ms = 0;        // total time spent DOWN before the current period
};

// What the last replication-aware MySQL check saw on a server (SHOW REPLICA/SLAVE STATUS,
// @@read_only, GTID positions). Guarded by Server::check_mutex like CheckInfo.
struct ReplicationInfo {
  bool known = false;       // a replication check has completed at least once
  bool is_replica = false;  // replication is configured on this server
  bool read_only = false;
  bool io_running = false;    // Slave_IO_Running / Replica_IO_Running = Yes
  bool sql_running = false;   // Slave_SQL_Running / Replica_SQL_Running = Yes
  int64_t lag_seconds = -1;   // Seconds_Behind_Master (or _Source); -1: NULL or unknown
  std::string last_io_error;  // "Error 2003 ..." as the server reports it; empty: none
  std::string last_sql_error;
  std::string gtid_executed;          // @@gtid_current_pos (MariaDB) or @@gtid_executed (MySQL)
  std::string gtid_received;          // Gtid_IO_Pos (MariaDB) or Retrieved_Gtid_Set (MySQL)
  bool applied_all_received = false;  // positions compared equal (or both empty)
};

class Server {
 public:
  Server(const ServerConfig& cfg, Backend* backend, int id);

  const ServerConfig& cfg() const { return cfg_; }
  const std::string& name() const { return cfg_.name; }
  Backend& backend() const { return *backend_; }
  int id() const { return id_; }  // 1-based position in its backend, as HAProxy's srv_id

  // Where to connect: the current one of the server's immutable address copies. Workers
  // read it on every connect without a lock (uv_tcp_connect copies it); the control thread
  // swaps in another copy when DNS gives the server's name a new address (core/dns.h).
  // Until a host name first resolves it is kNoAddress (family AF_UNSPEC) and the server
  // takes no traffic. The same address always yields the same reference, so comparing
  // &addr() values tells whether the address changed.
  const sockaddr_storage& addr() const { return *addr_.load(std::memory_order_acquire); }
  bool hasAddr() const { return addr_.load(std::memory_order_relaxed) != &kNoAddress; }
  // Control thread only, or before the workers start. Returns false when `a` (family,
  // address and port) is the current address already.
  bool setAddr(const sockaddr_storage& a);
  // The configured host is a name to look up, not an IP literal.
  bool byName() const { return by_name_; }
  // Why the host name does not resolve while it has never resolved: "unresolved: unknown
  // node or service". Empty once resolved, and while the first lookup is under way.
  // Written by the DnsRefresher, read by the checks, both on the control thread; locked
  // with check_mutex for other readers.
  std::string unresolvedReason() const;
  void setUnresolvedReason(std::string reason);

  static const sockaddr_storage kNoAddress;

  // Operational state from checks; a server without checks is always up.
  std::atomic<bool> up{true};
  std::atomic<AdminState> admin{AdminState::kReady};
  std::atomic<int> weight{1};  // effective weight, 0..256
  // Bumped when sessions on this server must be closed (on_marked_down, writer switch).
  // Each session remembers the value at connect and closes when it changes.
  std::atomic<uint32_t> shutdown_epoch{0};
  std::atomic<uint64_t> picks{0};  // times chosen by the balancer (HAProxy's lbtot)
  // Passive checks: consecutive failures seen on real traffic (reset by a success).
  std::atomic<int> consecutive_errors{0};
  Counters counters;
  // HTTP: the server's response time (connected to response head); TCP: the connect time.
  LatencyHistogram latency;

  mutable std::mutex check_mutex;
  CheckInfo check_info;         // guarded by check_mutex
  ReplicationInfo replication;  // guarded by check_mutex

  // Replication facts the workers read without the mutex (reader balancing).
  std::atomic<int64_t> lag_ms{-1};              // -1: unknown
  std::atomic<bool> replication_broken{false};  // a replica thread stopped with an error
  // role = "reader": replicating and within max_lag, so it may take reads. Written by the
  // control thread (WriterElection), read by the balancer.
  std::atomic<bool> reads_ok{true};

  // Takes new traffic: up, ready, with a weight above 0 and an address (maxconn is checked
  // apart).
  bool usable() const {
    return up.load(std::memory_order_relaxed) && hasAddr() &&
           admin.load(std::memory_order_relaxed) == AdminState::kReady &&
           weight.load(std::memory_order_relaxed) > 0;
  }
  // Below its maxconn (always true without one).
  bool hasFreeSlot() const {
    return cfg_.maxconn == 0 || counters.cur_conns.load(std::memory_order_relaxed) < cfg_.maxconn;
  }
  std::string fullName() const;  // "backend/server"

 private:
  ServerConfig cfg_;
  Backend* backend_;
  int id_;
  bool by_name_ = false;
  std::string unresolved_reason_;  // guarded by check_mutex
  // Copies are never freed while the server lives, so a reference a worker took stays
  // valid whatever the control thread swaps in meanwhile. Equal addresses share one copy,
  // so memory grows with the number of distinct addresses a name ever had (128 bytes
  // each: a name flapping between two addresses costs two copies), never with the number
  // of changes. Only the control thread touches the list.
  std::vector<std::unique_ptr<const sockaddr_storage>> addr_copies_;
  std::atomic<const sockaddr_storage*> addr_{&kNoAddress};
};

class Backend {
 public:
  explicit Backend(const BackendConfig& cfg);

  const BackendConfig& cfg() const { return cfg_; }
  const std::string& name() const { return cfg_.name; }
  const std::vector<std::unique_ptr<Server>>& servers() const { return servers_; }
  Server* findServer(const std::string& name) const;

  // Servers that would take traffic now (usable()), by kind, for log lines such as
  // "1 active and 0 backup servers left".
  int usableActive() const;
  int usableBackup() const;
  // Some server would take traffic but is at its maxconn: a request may wait for a slot.
  bool hasFullServer() const;

  Counters counters;

  // role = "writer": the one server that takes new connections; null while none is
  // elected. Written by the control thread, read by workers on every connection.
  std::atomic<Server*> writer{nullptr};
  // role = "reader": the writer backend over the same servers (matched by address), whose
  // writer takes the reads when no replica is fit to. Set once by Runtime.
  Backend* writer_source = nullptr;

 private:
  BackendConfig cfg_;
  std::vector<std::unique_ptr<Server>> servers_;
};

class Frontend {
 public:
  Frontend(const FrontendConfig& cfg, Backend* backend);

  const FrontendConfig& cfg() const { return cfg_; }
  const std::string& name() const { return cfg_.name; }
  Backend& backend() const { return *backend_; }

  Counters counters;

 private:
  FrontendConfig cfg_;
  Backend* backend_;
};

const char* adminStateName(AdminState state);  // "READY", "DRAIN", "MAINT"

// Helpers for MySQL roles, where one database appears in a writer and a reader backend.
Server* findSameAddress(const Backend& in,
                        const Backend& like);  // any server of `in` also in `like`
Server* serverAtSameAddress(const Backend& in, const Server& like);  // `like`'s twin in `in`

// Everything built from one Config. Lives as long as the process; workers and checks hold
// plain pointers into it.
class Runtime {
 public:
  // Builds the model. Servers at an IP literal have their address from the start; servers
  // named by a host name wait without one (taking no traffic) for the DnsRefresher's first
  // lookup, which runs on the control loop: nothing here blocks on DNS.
  explicit Runtime(Config config);

  const Config& config() const { return config_; }
  const std::vector<std::unique_ptr<Frontend>>& frontends() const { return frontends_; }
  const std::vector<std::unique_ptr<Backend>>& backends() const { return backends_; }
  Backend* findBackend(const std::string& name) const;

  // Asks every worker to close the sessions open on `server` (bumps its shutdown_epoch,
  // then calls the hook that main wires to the workers). Callable from any thread.
  void shutdownSessions(Server& server);
  void setShutdownHook(std::function<void()> hook) { shutdown_hook_ = std::move(hook); }

  // Passive checks: a worker saw `error_limit` consecutive failures on `server`. The hook
  // (main wires it to the control thread's checker) marks it DOWN with `reason`. Callable
  // from any thread; a no-op until a hook is set.
  void reportPassiveFailure(Server& server, const std::string& reason);
  void setPassiveFailureHook(std::function<void(Server&, const std::string&)> hook) {
    passive_hook_ = std::move(hook);
  }

 private:
  void linkReadersToWriters();

  Config config_;
  std::vector<std::unique_ptr<Backend>> backends_;
  std::vector<std::unique_ptr<Frontend>> frontends_;
  std::function<void()> shutdown_hook_;
  std::function<void(Server&, const std::string&)> passive_hook_;
};

}  // namespace tandem
