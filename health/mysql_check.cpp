#include "health/mysql_check.h"

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "core/log.h"
#include "health/replication_status.h"

namespace tandem {

// What a conversation needs, copied on the loop so that the pool thread touches nothing
// shared.
struct MysqlProbeRequest {
  std::string host;  // numeric, so that the library never resolves a name or picks a socket
  unsigned port = 0;
  MysqlCheckMode mode = MysqlCheckMode::kHandshake;
  std::string user;
  std::string password;
  unsigned timeout_s = 1;
  Millis max_lag{0};
};

struct MysqlProbeOutcome {
  CheckResult result;  // duration_ms is measured on the loop
  std::optional<ReplicationVerdict> replication;
};

namespace {

// "127.0.0.1" or "::1"; empty when the server has no address (its name did not resolve).
std::string numericHost(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    uv_ip4_name(reinterpret_cast<const sockaddr_in*>(&addr), text, sizeof(text));
  } else if (addr.ss_family == AF_INET6) {
    uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(&addr), text, sizeof(text));
  }
  return text;
}

unsigned portOf(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
}

// One client connection, closed (COM_QUIT, so the server logs no aborted connection) when
// the object goes.
class Session {
 public:
  Session() : mysql_(mysql_init(nullptr)) {}
  ~Session() {
    if (mysql_ != nullptr) {
      mysql_close(mysql_);
    }
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // The library reads no option file unless asked to, so only what is set here applies.
  bool connect(const MysqlProbeRequest& r, const char* user, const char* password) {
    if (mysql_ == nullptr) {
      return false;
    }
    unsigned protocol = MYSQL_PROTOCOL_TCP;
    unsigned timeout_s = r.timeout_s;
    mysql_options(mysql_, MYSQL_OPT_PROTOCOL, &protocol);
    mysql_options(mysql_, MYSQL_OPT_CONNECT_TIMEOUT, &timeout_s);
    mysql_options(mysql_, MYSQL_OPT_READ_TIMEOUT, &timeout_s);
    mysql_options(mysql_, MYSQL_OPT_WRITE_TIMEOUT, &timeout_s);
    return mysql_real_connect(mysql_, r.host.c_str(), user, password, nullptr, r.port, nullptr,
                              0) != nullptr;
  }

  // nullopt on error (see error()); a statement without a result set gives no rows.
  std::optional<std::vector<StatusRow>> query(const char* sql) {
    if (mysql_real_query(mysql_, sql, strlen(sql)) != 0) {
      return std::nullopt;
    }
    MYSQL_RES* result = mysql_store_result(mysql_);
    if (result == nullptr) {
      if (mysql_field_count(mysql_) != 0) {
        return std::nullopt;  // a result set was due and could not be read
      }
      return std::vector<StatusRow>{};
    }
    std::vector<StatusRow> rows = readRows(result);
    mysql_free_result(result);
    return rows;
  }

  unsigned error() const { return mysql_ == nullptr ? CR_OUT_OF_MEMORY : mysql_errno(mysql_); }
  std::string errorText() const {
    return mysql_ == nullptr ? "out of memory for a client connection" : mysql_error(mysql_);
  }

 private:
  // Values by column name; lengths make binary-safe copies, NULL stays distinct from "".
  static std::vector<StatusRow> readRows(MYSQL_RES* result) {
    unsigned n = mysql_num_fields(result);
    MYSQL_FIELD* fields = mysql_fetch_fields(result);
    std::vector<StatusRow> rows;
    while (MYSQL_ROW row = mysql_fetch_row(result)) {
      unsigned long* lengths = mysql_fetch_lengths(result);
      StatusRow& out = rows.emplace_back();
      for (unsigned i = 0; i < n; ++i) {
        out[fields[i].name] =
            row[i] == nullptr ? std::nullopt : std::optional(std::string(row[i], lengths[i]));
      }
    }
    return rows;
  }

  MYSQL* mysql_;
};

MysqlProbeOutcome passed(std::string reason, std::optional<ReplicationVerdict> verdict = {}) {
  return MysqlProbeOutcome{CheckResult{true, "L7OK", std::move(reason), -1}, std::move(verdict)};
}

MysqlProbeOutcome failed(const Session& session) {
  std::string text = session.errorText();
  return MysqlProbeOutcome{CheckResult{false, mysqlFailureStatus(session.error(), text), text, -1},
                           std::nullopt};
}

// read_only is 0/1 on both families; ON/OFF is accepted too, should a version print words.
bool isOn(const std::optional<std::string>& value) {
  return value.has_value() && !value->empty() && *value != "0" && *value != "OFF";
}

std::optional<std::string> valueOf(const StatusRow& row, const char* name) {
  auto it = row.find(name);
  return it == row.end() ? std::nullopt : it->second;
}

// MariaDB knows @@gtid_current_pos and @@gtid_slave_pos; MySQL answers 1193 (unknown
// variable) and has @@gtid_executed instead.
std::optional<ServerVariables> readVariables(Session& session) {
  auto rows = session.query(
      "SELECT @@read_only AS read_only, @@gtid_current_pos AS executed, "
      "@@gtid_slave_pos AS slave_pos");
  bool mariadb = true;
  if (!rows && session.error() == ER_UNKNOWN_SYSTEM_VARIABLE) {
    mariadb = false;
    rows = session.query("SELECT @@read_only AS read_only, @@gtid_executed AS executed");
  }
  if (!rows || rows->empty()) {
    return std::nullopt;
  }
  const StatusRow& row = rows->front();
  return ServerVariables{mariadb, isOn(valueOf(row, "read_only")),
                         valueOf(row, "executed").value_or(""),
                         valueOf(row, "slave_pos").value_or("")};
}

// SHOW REPLICA STATUS exists since MariaDB 10.5 and MySQL 8.0.22, and is the only spelling
// MySQL 8.4 accepts; older servers answer 1064 (syntax error) and get the old words. Only
// the default connection is read: a master-master pair has no other.
std::optional<std::vector<StatusRow>> readReplicaStatus(Session& session) {
  auto rows = session.query("SHOW REPLICA STATUS");
  if (!rows && session.error() == ER_PARSE_ERROR) {
    rows = session.query("SHOW SLAVE STATUS");
  }
  return rows;
}

// A refused login passes: the server sent a valid greeting and read our answer.
MysqlProbeOutcome handshake(const MysqlProbeRequest& r) {
  Session session;
  bool anonymous = r.user.empty();
  const char* user = anonymous ? MysqlCheck::kHandshakeUser : r.user.c_str();
  const char* password = anonymous ? "" : r.password.c_str();
  if (session.connect(r, user, password) || isAccessDenied(session.error())) {
    return passed("MySQL handshake passed");
  }
  return failed(session);
}

MysqlProbeOutcome login(const MysqlProbeRequest& r) {
  Session session;
  if (!session.connect(r, r.user.c_str(), r.password.c_str()) || !session.query("SELECT 1")) {
    return failed(session);
  }
  return passed("MySQL login passed");
}

// The server answers queries, so it passes even when its replication state cannot be read
// (a monitor user without the REPLICA MONITOR or REPLICATION CLIENT privilege): the facts
// are marked unknown and the reason says why.
MysqlProbeOutcome unreadableReplication(const ServerVariables& vars, const Session& session) {
  ReplicationVerdict v;
  v.info.read_only = vars.read_only;
  v.info.gtid_executed = vars.gtid_executed;
  v.reason = "MySQL replication status unreadable: Error " + std::to_string(session.error()) +
             ": " + session.errorText();
  std::string reason = v.reason;
  return passed(std::move(reason), std::move(v));
}

MysqlProbeOutcome replication(const MysqlProbeRequest& r) {
  Session session;
  if (!session.connect(r, r.user.c_str(), r.password.c_str())) {
    return failed(session);
  }
  std::optional<ServerVariables> vars = readVariables(session);
  if (!vars) {
    return failed(session);
  }
  std::optional<std::vector<StatusRow>> rows = readReplicaStatus(session);
  if (!rows) {
    return unreadableReplication(*vars, session);
  }
  std::optional<ReplicaStatus> replica;
  if (!rows->empty()) {
    replica = parseReplicaStatus(rows->front());
  }
  ReplicationVerdict verdict = assessReplication(*vars, replica, r.max_lag);
  std::string reason = verdict.reason;
  return passed(std::move(reason), std::move(verdict));
}

// Runs on a pool thread: only `request` and the client library are touched here.
MysqlProbeOutcome converse(const MysqlProbeRequest& request) {
  switch (request.mode) {
    case MysqlCheckMode::kLogin:
      return login(request);
    case MysqlCheckMode::kReplication:
      return replication(request);
    case MysqlCheckMode::kHandshake:
      break;
  }
  return handshake(request);
}

}  // namespace

std::string mysqlExecute(const std::string& host, unsigned port, const std::string& user,
                         const std::string& password, unsigned timeout_s, const char* sql) {
  MysqlProbeRequest request;
  request.host = host;
  request.port = port;
  request.timeout_s = timeout_s;
  Session session;
  if (!session.connect(request, user.c_str(), password.c_str()) || !session.query(sql)) {
    return "error " + std::to_string(session.error()) + ": " + session.errorText();
  }
  return "";
}

std::string numericHostOf(const sockaddr_storage& addr) {
  return numericHost(addr);
}

unsigned portOfAddress(const sockaddr_storage& addr) {
  return portOf(addr);
}

MysqlCheck::MysqlCheck(uv_loop_t* loop, Server& server, const CheckConfig& cfg,
                       TransitionFn on_transition, std::shared_ptr<BlockingPool> pool)
    : Check(loop, server, cfg, std::move(on_transition)),
      pool_(pool != nullptr ? std::move(pool) : sharedPool(loop)) {
  timeout_timer_.init(uv_timer_init, loop);
  timeout_timer_.get()->data = this;
}

MysqlCheck::~MysqlCheck() {
  detachTicket();
}

// mysql_library_init() is not thread-safe and mysql_init() would call it implicitly from
// whichever pool thread came first, so it runs here, once, before any pool exists.
std::shared_ptr<BlockingPool> MysqlCheck::makePool(uv_loop_t* loop, int threads) {
  static std::once_flag library_ready;
  std::call_once(library_ready, [] { mysql_library_init(0, nullptr, nullptr); });
  BlockingPool::ThreadHooks hooks{[] { mysql_thread_init(); }, [] { mysql_thread_end(); }};
  return std::make_shared<BlockingPool>(loop, threads, std::move(hooks));
}

// The registry holds weak references only, so the pool goes with its last check; a loop
// that is later reused at the same address finds an expired entry and gets a new pool.
std::shared_ptr<BlockingPool> MysqlCheck::sharedPool(uv_loop_t* loop) {
  static std::mutex mutex;
  static std::map<uv_loop_t*, std::weak_ptr<BlockingPool>> pools;
  std::lock_guard<std::mutex> lock(mutex);
  std::weak_ptr<BlockingPool>& entry = pools[loop];
  std::shared_ptr<BlockingPool> pool = entry.lock();
  if (pool == nullptr) {
    pool = makePool(loop);
    entry = pool;
  }
  return pool;
}

// 1500 ms -> 2 s, 200 ms -> 1 s: never shorter than the check's own timer, so that the
// timer, not the library, decides a timeout whenever both could.
unsigned MysqlCheck::clientTimeoutSeconds(Millis timeout) {
  auto seconds = (timeout.count() + 999) / 1000;
  return static_cast<unsigned>(std::max<int64_t>(seconds, 1));
}

void MysqlCheck::startProbe() {
  if (server().addr().ss_family != AF_INET && server().addr().ss_family != AF_INET6) {
    endProbe(CheckResult{false, "SOCKERR", "no address to connect to", elapsedMs()});
    return;
  }
  if (ticket_ != nullptr && !ticket_->finished) {
    endProbe(CheckResult{false, "L7TOUT",
                         "Layer7 timeout (the previous check still waits for the server)",
                         elapsedMs()});
    return;
  }
  ticket_ = std::make_shared<Ticket>(Ticket{this, false});
  if (!pool_->post(makeJob(makeRequest(), ticket_))) {
    ticket_ = nullptr;  // nothing runs, so nothing may block the next probe
    endProbe(CheckResult{false, "SOCKERR", "the MySQL check pool is stopped", elapsedMs()});
    return;
  }
  uv_timer_start(timeout_timer_.get(), &MysqlCheck::onTimer, cfg().timeout.count(), 0);
}

MysqlProbeRequest MysqlCheck::makeRequest() const {
  MysqlProbeRequest r;
  r.host = numericHost(server().addr());
  r.port = portOf(server().addr());
  r.mode = cfg().mysql_mode;
  r.user = cfg().user;
  r.password = cfg().password;
  r.timeout_s = clientTimeoutSeconds(cfg().timeout);
  r.max_lag = server().backend().cfg().max_lag;
  return r;
}

// The job owns its request; the completion owns the outcome and a share of the ticket.
// Neither holds the check.
BlockingPool::Job MysqlCheck::makeJob(MysqlProbeRequest request, std::shared_ptr<Ticket> ticket) {
  return [request = std::move(request), ticket = std::move(ticket)]() -> BlockingPool::Completion {
    MysqlProbeOutcome outcome = converse(request);
    return [ticket, outcome]() mutable { onCompletion(*ticket, outcome); };
  };
}

void MysqlCheck::onCompletion(Ticket& ticket, MysqlProbeOutcome& outcome) {
  ticket.finished = true;
  if (ticket.owner != nullptr) {
    ticket.owner->onOutcome(outcome);
  }
}

// The facts go to the model before finishProbe(), so that a transition reported from there
// (and the writer election behind it) already sees them.
void MysqlCheck::onOutcome(MysqlProbeOutcome& outcome) {
  detachTicket();
  if (outcome.replication.has_value()) {
    recordReplication(*outcome.replication);
  }
  outcome.result.duration_ms = elapsedMs();
  endProbe(std::move(outcome.result));
}

// replication_broken is a state, logged when it changes (not on every check).
void MysqlCheck::recordReplication(const ReplicationVerdict& v) {
  Server& s = server();
  {
    std::lock_guard<std::mutex> lock(s.check_mutex);
    s.replication = v.info;
  }
  s.lag_ms.store(v.lag_ms);
  bool was_broken = s.replication_broken.exchange(v.broken);
  if (v.broken && !was_broken) {
    TLOG_WARN("server %s replication is broken, reason: %s", s.fullName().c_str(),
              v.reason.c_str());
  } else if (was_broken && !v.broken) {
    TLOG_NOTICE("server %s replication is no longer broken, reason: %s", s.fullName().c_str(),
                v.reason.c_str());
  }
}

void MysqlCheck::onTimer(uv_timer_t* timer) {
  static_cast<MysqlCheck*>(timer->data)->onTimeout();
}

// The conversation keeps its pool thread until the library's own timeouts end it; ticket_
// stays so that the next probe knows it is still running.
void MysqlCheck::onTimeout() {
  detachTicket();
  endProbe(CheckResult{false, "L7TOUT", "Layer7 timeout", elapsedMs()});
}

// No handle is opened per probe (the timer lives as long as the check), so the result goes
// to finishProbe() at once.
void MysqlCheck::endProbe(CheckResult result) {
  uv_timer_stop(timeout_timer_.get());
  finishProbe(std::move(result));
}

void MysqlCheck::detachTicket() {
  if (ticket_ != nullptr) {
    ticket_->owner = nullptr;
  }
}

// Releasing the pool here rather than in the destructor lets the last check's close stop it
// while the loop still runs, so that its async handle is closed before the loop is.
void MysqlCheck::closeProbe(std::function<void()> on_closed) {
  detachTicket();
  pool_.reset();
  timeout_timer_.close(std::move(on_closed));
}

}  // namespace tandem
