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
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <vector>

#include "core/model.h"
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
  // Closes every check; done runs (on the loop, or at once when nothing was checked) once
  // all their handles are closed. Call it once; later calls are ignored.
  void stop(std::function<void()> done);

  size_t checkCount() const { return checks_.size(); }

  static constexpr Millis kStartSpread{50};

 private:
  std::unique_ptr<Check> makeCheck(Server& server, const CheckConfig& cfg);
  void onTransition(Check& check, RiseFall::Transition transition);
  void logTransition(const Server& server, RiseFall::Transition transition,
                     const CheckResult& result) const;
  void onServerDown(Server& server, int usable_before);
  void onCheckClosed();

  uv_loop_t* loop_;
  Runtime& runtime_;
  std::vector<std::unique_ptr<Check>> checks_;
  bool stopping_ = false;
  size_t checks_open_ = 0;  // while stopping: checks whose handles are not all closed yet
  std::function<void()> stop_done_;
};

}  // namespace tandem
