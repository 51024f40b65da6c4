// The single-writer rule for MySQL master-master pairs: each backend with role = "writer"
// has exactly one server that takes new connections (Backend::writer), and this class,
// on the control thread, decides which.
//
//   WriterElection election(control_loop, runtime);
//   election.start();   // writers from the state file, else the first server of each backend
//   ...                 // every kEvaluateEvery it looks at the checks' results:
//                       //  - the writer is not usable (DOWN, MAINT, DRAIN): the role moves to
//                       //    the best other server, its sessions on the old writer are closed
//                       //  - failback = "auto": the role returns to the first server once it
//                       //    has been UP and caught up for failback_after
//   election.setWriter(backend, server, &why);  // the operator's switch (admin interface)
//
// A move is never undone by itself (failback = "manual"), is logged with its reason, and is
// written to [global] state_file so that a restart of Tandem keeps the same writer.
//
// With manage_read_only, it also sets @@read_only to follow the role (ReadOnlyKeeper).
// It also keeps Server::reads_ok for role = "reader" backends (replicating, within max_lag)
// and logs when a server's replication breaks or recovers.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "core/model.h"
#include "core/uv_handle.h"
#include "health/read_only_keeper.h"

namespace tandem {

// Pure decisions, unit-tested apart from the loop.
namespace election {

// Fit to take the writer role now: usable, and with replication not broken (unless
// `allow_broken` and it is the only usable server left).
bool canLead(const Server& s, bool allow_broken, int usable_servers);
// Caught up: replication known, both threads running, lag 0, nothing left to apply.
bool caughtUp(const Server& s);
// The best server other than `current` to take the role, or nullptr: one that has applied
// everything it received first, then the least lag, then the lowest id.
Server* bestCandidate(const Backend& backend, const Server* current);
// role = "reader": may this server take reads?
bool readsOk(const Server& s, Millis max_lag);

}  // namespace election

class WriterElection {
 public:
  static constexpr uint64_t kEvaluateEveryMs = 100;

  WriterElection(uv_loop_t* loop, Runtime& runtime);
  WriterElection(const WriterElection&) = delete;
  WriterElection& operator=(const WriterElection&) = delete;

  void start();
  void stop();
  // One pass over every writer and reader backend (the timer calls it; tests may too).
  void evaluate();
  // The operator's switch: moves the role to `to` if it can lead; else false and *why.
  bool setWriter(Backend& backend, Server& to, std::string* why);

 private:
  static void onTimer(uv_timer_t* timer);
  void initialWriter(Backend& backend, const std::map<std::string, std::string>& saved);
  void evaluateWriter(Backend& backend, uint64_t now);
  void maybeFailback(Backend& backend, Server& writer, uint64_t now);
  void evaluateReaders(Backend& backend);
  void watchReplication(Server& server);
  void moveWriter(Backend& backend, Server* to, const std::string& reason);
  std::map<std::string, std::string> loadState() const;
  void saveState() const;
  std::string downReason(const Server& s) const;

  uv_loop_t* loop_;
  Runtime& runtime_;
  UvHandle<uv_timer_t> timer_;
  std::map<const Server*, uint64_t> caught_up_since_;  // auto failback: uv_now() ms
  std::map<const Server*, bool> was_broken_;
  std::map<const Backend*, bool> warned_no_candidate_;
  ReadOnlyKeeper read_only_;  // manage_read_only backends
};

}  // namespace tandem
