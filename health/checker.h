// Runs the active health checks of every server, on the control thread's loop, and applies
// their state changes to the model.
//
//   Checker checker(control_loop, runtime);
//   checker.start();                       // every checked server within the first 50 ms
//   ...
//   checker.stop([] { /* every check handle is closed */ });
//
// A server is checked when its backend has a check table and its own `check` is true; the
// others stay UP and show check_info.enabled = false. On each UP/DOWN change the Checker
// stores Server::up (which the workers read on every pick), writes one log line in
// HAProxy's words, and on DOWN may close the server's sessions (on_marked_down).
//
// Passive checks: a worker that sees `error_limit` consecutive failures on real traffic
// calls Runtime::reportPassiveFailure(), which main wires to requestMarkDown():
//
//   runtime.setPassiveFailureHook(
//       [&](Server& s, const std::string& r) { checker.requestMarkDown(s, r); });
//
// The request crosses to the control loop through a uv_async_t; there the server goes DOWN
// at once (one log line, as for an active check) and its active check brings it back after
// `rise` successes. A server without active checks (or with them disabled by the operator)
// is left UP with a warning: nothing would ever bring it back. The hook holds a reference to the
// Checker: the workers must be stopped before it is destroyed (main stops the checks only after
// every worker ended).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/uv_handle.h"
#include "health/check.h"

namespace tandem {

class Checker {
 public:
  Checker(uv_loop_t* loop, Runtime& runtime);
  Checker(const Checker&) = delete;
  Checker& operator=(const Checker&) = delete;

  // Creates one check session per checked server and starts them, spread over
  // kStartSpread so that they do not all connect in the same millisecond.
  void start();
  // Closes every check and the passive-check wake-up; done runs on the loop once all
  // their handles are closed. Call it once; later calls are ignored.
  void stop(std::function<void()> done);

  // Thread-safe. Asks the control loop to mark `server` DOWN now, whatever its rise/fall
  // progress, with `reason` in the log line ("3 consecutive errors on traffic: 502"), and
  // to reset its consecutive_errors. Requests for a server already waiting are merged
  // (the first reason wins); requests before start() or after stop() are ignored.
  void requestMarkDown(Server& server, std::string reason);

  size_t checkCount() const { return checks_.size(); }

  // The operator's `disable health` / `enable health`, on the control thread. Disabled: the
  // server's check stops, the server counts UP (a DOWN one is marked UP at once) and passive
  // reports are ignored. Enabled: see Check::resume(). kNoCheck for a server without an
  // active check (or before start()).
  enum class CheckToggle { kChanged, kUnchanged, kNoCheck };
  CheckToggle setCheckEnabled(Server& server, bool enabled);

  static constexpr Millis kStartSpread{50};
  // A server without active checks is never marked DOWN by a passive report; the warning
  // saying so is written at most this often per server.
  static constexpr Millis kUncheckedWarningEvery{60000};

 private:
  struct MarkDownRequest {
    Server* server;
    std::string reason;
  };
  struct UncheckedWarning {
    bool logged = false;
    uint64_t last_ms = 0;  // uv_now() of the last line written
    uint64_t dropped = 0;  // reports since then that wrote no line
  };

  void openMarkDownQueue();
  void closeMarkDownQueue();
  std::unique_ptr<Check> makeCheck(Server& server, const CheckConfig& cfg);
  static void onMarkDownAsync(uv_async_t* async);
  void applyMarkDowns();
  void markDown(Server& server, std::string reason);
  void warnUnchecked(Server& server, const std::string& reason);
  Check* findCheck(const Server& server) const;
  void forceUp(Server& server);
  void onTransition(Check& check, RiseFall::Transition transition);
  void logTransition(const Server& server, RiseFall::Transition transition,
                     const CheckResult& result) const;
  void onServerDown(Server& server, int usable_before);
  void onPartClosed();

  uv_loop_t* loop_;
  Runtime& runtime_;
  std::vector<std::unique_ptr<Check>> checks_;
  bool stopping_ = false;
  size_t parts_open_ = 0;  // while stopping: the async and the checks not yet closed
  std::function<void()> stop_done_;

  // Passive checks. The mutex is taken once per report (after error_limit failures on
  // traffic), never per request.
  std::mutex mark_down_mutex_;
  bool accepting_mark_downs_ = false;             // guarded: true between start() and stop()
  std::vector<MarkDownRequest> mark_down_queue_;  // guarded
  UvHandle<uv_async_t> mark_down_async_;          // wakes the loop for the queue
  std::map<const Server*, UncheckedWarning> unchecked_warnings_;
};

}  // namespace tandem
