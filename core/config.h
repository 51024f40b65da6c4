// The configuration model: what one TOML file says, validated and with every default filled.
//
// loadConfigFile() is the only way to build a Config from a file. It either returns a
// complete, consistent Config or throws ConfigError naming the file, line and key:
//
//   tandem.toml:14: backend[web].server[web2].weight: 300 is out of range 0..256
//
// A Config is immutable once loaded; the runtime model (core/model.h) is built from it.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/address.h"
#include "core/duration.h"
#include "core/log.h"

namespace tandem {

enum class Mode { kTcp, kHttp };
enum class Balance {
  kRoundRobin,
  kStaticRr,
  kLeastConn,
  kFirst,
  kSource,
  kRandom,
  kUri,  // HTTP only: hash of the request path (without the query string)
  kHdr,  // HTTP only: hash of one request header, named in BackendConfig::balance_header
};
enum class LogFormat { kHaproxy, kJson };
// MySQL backends: "writer" sends every connection to one elected master, "reader" balances
// over the replicas that are caught up. kNone: an ordinary backend.
enum class Role { kNone, kWriter, kReader };
enum class Failback { kManual, kAuto };
// What a type = "mysql" check verifies: the greeting only, a login, or a login plus the
// replication state (read_only, replica threads, lag, errors, GTID positions).
enum class MysqlCheckMode { kHandshake, kLogin, kReplication };
enum class CheckType { kTcp, kHttp, kMysql };
enum class OnMarkedDown { kNothing, kShutdownSessions };

const char* modeName(Mode m);
const char* balanceName(Balance b);
const char* checkTypeName(CheckType t);

struct GlobalConfig {
  int threads = 0;  // 0 means "auto": one worker per core
  LogLevel log_level = LogLevel::kInfo;
  // After SIGTERM/SIGINT, open sessions may finish for this long before Tandem exits anyway
  // (HAProxy's hard-stop-after).
  Millis hard_stop_after = Millis(30000);
  // Where HTTP access-log lines go: "stdout", "off", or a file path (appended to).
  std::string access_log = "stdout";
  LogFormat log_format = LogFormat::kHaproxy;  // HAProxy's httplog layout, or one JSON object
  // Where the elected database writers are remembered across restarts (HAProxy's
  // server-state-file); empty: not remembered.
  std::string state_file;
  // How often server host names are looked up again (container addresses change when a
  // container is re-created). 0: each name is looked up until it has resolved once, then
  // never again.
  Millis dns_refresh = Millis(10000);
  // A hosts(5) file that Tandem reads at every lookup round and consults before the system
  // resolver; empty: the system resolver only.
  std::string hosts_file;
};

struct DefaultsConfig {
  Millis timeout_connect = Millis(5000);
  Millis timeout_client = Millis(50000);
  Millis timeout_server = Millis(50000);
  int retries = 3;
  // HTTP: the whole request head must arrive within this (slowloris gets 408).
  Millis timeout_http_request = Millis(10000);
  // HTTP: how long an idle keep-alive client connection waits for its next request.
  Millis timeout_http_keep_alive = Millis(10000);
  int max_header_size = 16384;  // request line plus headers, bytes; 431 past it
  int max_headers = 100;        // header fields in one request; 431 past it
};

// An inclusive range of HTTP status codes that an HTTP check accepts.
struct StatusRange {
  int low = 200;
  int high = 399;
};

struct CheckConfig {
  CheckType type = CheckType::kTcp;
  Millis interval = Millis(2000);   // HAProxy's inter
  Millis fastinter = Millis(2000);  // while going up or down; defaults to interval
  Millis downinter = Millis(2000);  // while DOWN; defaults to interval
  Millis timeout = Millis(2000);    // one check's time limit; defaults to interval
  int rise = 2;
  int fall = 3;
  // type = "http": the request sent and the statuses that count as passing.
  std::string method = "GET";
  std::string path = "/";
  std::string host;  // Host header; empty: the server's address
  std::vector<StatusRange> expect = {StatusRange{200, 399}};
  // type = "mysql": the default mode is kReplication when a user is given, else kHandshake.
  MysqlCheckMode mysql_mode = MysqlCheckMode::kHandshake;
  std::string user;
  std::string password;  // from `password`, or read from `password_file` at load time
  int line = 0;
};

struct ServerConfig {
  std::string name;
  HostPort address;
  int weight = 1;  // 0..256; 0 takes no new traffic (shown as DRAIN)
  bool backup = false;
  int maxconn = 0;    // 0: no limit
  bool check = true;  // checked when the backend has a [backend.check] table
  bool disabled = false;
  int line = 0;
};

struct BackendConfig {
  std::string name;
  Mode mode = Mode::kTcp;
  Balance balance = Balance::kRoundRobin;
  std::optional<CheckConfig> check;  // no table: servers are never checked, always UP
  OnMarkedDown on_marked_down = OnMarkedDown::kNothing;
  // Per-backend copies of [defaults], overridable in the backend table.
  Millis timeout_connect = Millis(5000);
  Millis timeout_server = Millis(50000);
  int retries = 3;
  std::string balance_header;  // balance = "hdr(NAME)": NAME
  // HTTP cookie persistence: the name of the cookie that Tandem inserts to pin a client to
  // a server ("SERVERID"); empty: no persistence.
  std::string cookie;
  // Passive checks: this many consecutive connection failures or 5xx responses on real
  // traffic mark the server DOWN at once (HAProxy's observe layer7 + on-error mark-down);
  // 0 disables.
  int error_limit = 0;
  // MySQL roles (see Role). A writer elects one server; a reader skips replicas lagging by
  // more than max_lag and falls back to the writer of the writer backend with the same
  // servers (matched by address) when none is left.
  Role role = Role::kNone;
  Failback failback = Failback::kManual;
  Millis failback_after = Millis(60000);  // auto failback: old writer UP and caught up this long
  Millis max_lag = Millis(10000);
  bool allow_broken_replica_failover = false;
  // role = "writer": Tandem keeps @@read_only itself, OFF on the elected writer and ON on
  // every other server, through the check's user (which then needs READ_ONLY ADMIN).
  bool manage_read_only = false;
  std::vector<ServerConfig> servers;
  int line = 0;
};

struct FrontendConfig {
  std::string name;
  std::vector<HostPort> listen;
  Mode mode = Mode::kTcp;
  std::string backend;  // the name of a [[backend]]; checked to exist
  int maxconn = 0;      // 0: no limit (the accept backlog still applies)
  Millis timeout_client = Millis(50000);
  // HTTP frontends, copied from [defaults] (overridable in the frontend table).
  Millis timeout_http_request = Millis(10000);
  Millis timeout_http_keep_alive = Millis(10000);
  int max_header_size = 16384;
  int max_headers = 100;
  int line = 0;
};

// One basic-auth account of [admin] users ("name:password" in the file).
struct AdminUser {
  std::string name;
  std::string password;
};

// [admin]: the admin HTTP listener (page, /stats;csv, /stats.json, /metrics, actions) and
// the runtime UNIX socket. Absent table: neither runs.
struct AdminConfig {
  bool enabled = false;  // an [admin] table is present
  // Where the admin HTTP listener binds; "" in the file disables it (socket only).
  std::optional<HostPort> listen = HostPort{"127.0.0.1", 8081};
  std::string socket;  // the runtime API's UNIX socket path; empty: no socket
  // Actions over HTTP need `Authorization: Bearer TOKEN` (token or token_file) or the basic
  // credentials of one of `users`. Neither set: HTTP actions are refused (403).
  std::string token;
  std::vector<AdminUser> users;
  bool read_auth = false;         // the read-only views need credentials too
  Millis refresh = Millis(2000);  // the page's update interval
  int line = 0;
};

struct Config {
  std::string path;
  GlobalConfig global;
  AdminConfig admin;
  DefaultsConfig defaults;
  std::vector<FrontendConfig> frontends;
  std::vector<BackendConfig> backends;

  const BackendConfig* findBackend(const std::string& name) const;
};

class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, int line, std::string key, std::string message);

  const std::string& file() const { return file_; }
  int line() const { return line_; }
  const std::string& key() const { return key_; }

 private:
  std::string file_;
  int line_;
  std::string key_;
};

// Parses and validates. Throws ConfigError (never returns a partial Config).
Config loadConfigFile(const std::string& path);
// The same for text already in memory; `path` is used in error messages only.
Config loadConfigString(const std::string& text, const std::string& path);

}  // namespace tandem
