// Keeps @@read_only in step with the writer role for backends with manage_read_only = true:
// OFF on the elected writer, ON on every other server of the backend, so that a client
// that reaches a database directly (or an application that bypasses Tandem) cannot write to
// the master that is not the writer and break the single-writer rule.
//
//   ReadOnlyKeeper keeper(control_loop, runtime);
//   keeper.reconcile();   // WriterElection calls it after each evaluation (every 100 ms)
//   keeper.stop();        // before the loop closes
//
// The facts come from the replication checks (Server::replication.read_only). A server whose
// flag differs from what the role wants gets `SET GLOBAL read_only = ON|OFF` through the
// check's user, on the MySQL checks' BlockingPool (libmysqlclient blocks). A server that is
// DOWN is left alone (it is set when it comes back, before it could take the role). Retries
// happen at most every kRetryEveryMs while the flag still differs; after a success the
// keeper waits for the next check to confirm before sending again. Each change is one log
// line; a failure is one warning per streak ("Access denied; you need the READ_ONLY ADMIN
// privilege" tells the operator what to grant).
#pragma once

#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/model.h"
#include "health/blocking_pool.h"

namespace tandem {

class ReadOnlyKeeper {
 public:
  static constexpr uint64_t kRetryEveryMs = 1000;

  ReadOnlyKeeper(uv_loop_t* loop, Runtime& runtime);
  ~ReadOnlyKeeper();
  ReadOnlyKeeper(const ReadOnlyKeeper&) = delete;
  ReadOnlyKeeper& operator=(const ReadOnlyKeeper&) = delete;

  void reconcile();
  // Stops waiting for statements in flight and releases the pool. Later reconcile() calls
  // do nothing.
  void stop();

 private:
  struct Ticket {
    ReadOnlyKeeper* owner = nullptr;  // null once nobody waits for the outcome
    Server* server = nullptr;
    bool on = false;
  };
  struct State {
    bool in_flight = false;
    uint64_t last_attempt_ms = 0;
    // A success not yet confirmed by a check: the value sent and when.
    bool sent_valid = false;
    bool sent_on = false;
    uint64_t sent_ms = 0;
    bool warned = false;  // a failure was logged in the current streak
  };

  void reconcileBackend(Backend& backend, uint64_t now);
  void send(Server& server, bool on, uint64_t now);
  void onDone(Ticket& ticket, const std::string& error);

  uv_loop_t* loop_;
  Runtime& runtime_;
  bool stopped_ = false;
  std::shared_ptr<BlockingPool> pool_;  // taken on first use: only with managed backends
  std::map<const Server*, State> states_;
  std::vector<std::shared_ptr<Ticket>> tickets_;  // in flight
};

}  // namespace tandem
