// A MySQL or MariaDB check (`type = "mysql"`), in one of three modes (CheckConfig::mysql_mode):
//
//   handshake    The server must send its greeting and answer a login. No credentials are
//                needed: a login refused with "access denied" (1045) comes after a valid
//                greeting and passes; an error packet instead of the greeting (1129 host
//                blocked, 1040 too many connections) fails, as in HAProxy's mysql-check.
//                Without a user the login names kHandshakeUser, which no account should
//                match, so that the server's log says who knocked.
//   login        The monitor user logs in and runs SELECT 1.
//   replication  As login, then reads @@read_only, the GTID positions and SHOW REPLICA
//                STATUS into Server::replication, Server::lag_ms and
//                Server::replication_broken. Replication trouble does not fail the check
//                (the writer election decides what it means); it becomes the reason shown
//                in the log and the admin page: "replication SQL thread stopped: Error
//                1062: ...", "lag 42s > max_lag 10s", "read_only=ON".
//
// Why libmysqlclient even for the handshake, rather than reading the greeting on a raw
// socket: a client that hangs up after the greeting leaves the server an aborted handshake,
// which it logs and counts against max_connect_errors for the balancer's address (1129
// "Host is blocked" after 100 of them, HAProxy's known trap); a refused login is an
// authentication failure, which does not count. The library also follows protocol details
// (capabilities, auth plugins, TLS) that a hand-written reader would have to track.
//
// libmysqlclient blocks, so each conversation runs on a BlockingPool thread, never on the
// loop. Its connect, read and write timeouts are the check's `timeout` rounded up to whole
// seconds, so a stuck server holds a pool thread for a bounded time; the check's own timer
// fires at `timeout` regardless and reports L7TOUT, and the conversation's late outcome is
// dropped. A check never has two conversations in flight: a probe due while the previous
// one still blocks fails at once, so one stuck server occupies at most one pool thread.
//
// One probe, each step a method:
//   startProbe()   post the conversation (on a pool thread) and arm the timer
//   onOutcome()    on the loop: store the replication facts, then finishProbe()
//   onTimeout()    L7TOUT "Layer7 timeout"; the conversation is abandoned
//
// Statuses: L7OK when the mode's steps succeed; L4CON/L4TOUT when no TCP connection was
// made; L7TOUT when the server stopped answering; L7RSP when the conversation broke (lost
// connection, malformed packet); L7STS when the server answered with an error (access
// denied in login mode, 1129, 1040, a failed query); SOCKERR when there was no address.
//
// Lifetime: a conversation holds a shared Ticket, not the check. The check clears the
// ticket's owner when it stops waiting (timeout, close, destruction), so an outcome that
// arrives later finds nobody and is dropped. The pool is shared by every MySQL check on a
// loop (see sharedPool) and released by closeProbe(): the last release stops it, which
// waits for the conversations still running (their timeouts bound the wait).
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "core/uv_handle.h"
#include "health/blocking_pool.h"
#include "health/check.h"
#include "health/replication_status.h"

namespace tandem {

// What one conversation is given and what it returns (defined in mysql_check.cpp).
struct MysqlProbeRequest;
struct MysqlProbeOutcome;

class MysqlCheck final : public Check {
 public:
  // `pool` runs the conversations; null: the pool shared by the MySQL checks on `loop`.
  MysqlCheck(uv_loop_t* loop, Server& server, const CheckConfig& cfg, TransitionFn on_transition,
             std::shared_ptr<BlockingPool> pool = nullptr);
  ~MysqlCheck() override;

  // A pool whose threads set up and tear down libmysqlclient's per-thread state.
  static std::shared_ptr<BlockingPool> makePool(uv_loop_t* loop,
                                                int threads = BlockingPool::kDefaultThreads);
  // One pool per loop, created on first use and stopped when its last check releases it.
  static std::shared_ptr<BlockingPool> sharedPool(uv_loop_t* loop);

  // The client library's timeouts for a check `timeout`: whole seconds, rounded up, at
  // least 1 (the library takes seconds only; 0 would mean no timeout at all).
  static unsigned clientTimeoutSeconds(Millis timeout);

  // The user a handshake-only check logs in as when none is configured.
  static constexpr const char* kHandshakeUser = "tandem-handshake";

 protected:
  void startProbe() override;
  void closeProbe(std::function<void()> on_closed) override;

 private:
  // Shared by the check and one conversation; read and written on the loop thread only.
  struct Ticket {
    MysqlCheck* owner = nullptr;  // null once nobody waits for the outcome
    bool finished = false;        // the conversation has returned
  };

  MysqlProbeRequest makeRequest() const;
  static BlockingPool::Job makeJob(MysqlProbeRequest request, std::shared_ptr<Ticket> ticket);
  static void onCompletion(Ticket& ticket, MysqlProbeOutcome& outcome);
  void onOutcome(MysqlProbeOutcome& outcome);
  void recordReplication(const ReplicationVerdict& verdict);
  static void onTimer(uv_timer_t* timer);
  void onTimeout();
  void endProbe(CheckResult result);
  void detachTicket();

  std::shared_ptr<BlockingPool> pool_;
  UvHandle<uv_timer_t> timeout_timer_;
  std::shared_ptr<Ticket> ticket_;  // the latest conversation
};

// Runs one statement as `user` on a fresh connection and closes it: for the writer
// election's read_only switch. Blocks (call it on a BlockingPool thread). Returns "" on
// success, else "error NNNN: text".
std::string mysqlExecute(const std::string& host, unsigned port, const std::string& user,
                         const std::string& password, unsigned timeout_s, const char* sql);
// The numeric host ("127.0.0.1"; empty without an address) and port of a server address.
std::string numericHostOf(const sockaddr_storage& addr);
unsigned portOfAddress(const sockaddr_storage& addr);

}  // namespace tandem
