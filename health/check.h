// One server's active check session, whatever the protocol: the schedule, the rise/fall
// state and the facts shown to operators (Server::check_info).
//
// A session repeats one cycle on the control thread's loop:
//
//   1. onProbeDue()     the timer fires; the session marks the server as being checked and
//                       calls startProbe(), which the protocol (TcpCheck, later HTTP and
//                       MySQL) implements.
//   2. finishProbe()    the protocol reports one CheckResult, once its own handles for that
//                       probe are released; the rise/fall counter moves, check_info is
//                       updated under check_mutex, and a state change goes to the
//                       TransitionFn (the Checker applies it to the model and logs it).
//   3. scheduleNext()   the timer is armed with interval, fastinter or downinter.
//
// markDown() cuts in from outside the cycle (passive checks): the server goes DOWN at once
// and the cycle goes on from health 0, so that `rise` successes bring it back.
//
// pause() and resume() are the operator's `disable health` and `enable health`: while
// paused no probe starts, the result of one in flight is dropped, markDown() is ignored
// and check_info.enabled is false (the Checker keeps the server UP meanwhile).
//
// close() stops the cycle at any step: a probe in flight is abandoned without a result, and
// on_closed runs once every handle of the session has been closed by libuv. Only then may
// the session be destroyed without leaving callbacks behind; destroying it earlier is safe
// too (the handles free themselves), but nobody learns when libuv is done.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>

#include "core/config.h"
#include "core/model.h"
#include "core/uv_handle.h"
#include "health/rise_fall.h"

namespace tandem {

struct CheckResult {
  bool ok = false;
  std::string status;        // HAProxy's check_status: L4OK, L4CON, L4TOUT, SOCKERR, ...
  std::string reason;        // "Layer4 check passed", "connection refused", ...
  int64_t duration_ms = -1;  // from the start of the probe to its outcome
};

class Check {
 public:
  // Called after a result changed the server's state (check_info is already updated).
  using TransitionFn = std::function<void(Check& check, RiseFall::Transition transition)>;

  Check(uv_loop_t* loop, Server& server, const CheckConfig& cfg, TransitionFn on_transition);
  virtual ~Check() = default;
  Check(const Check&) = delete;
  Check& operator=(const Check&) = delete;

  // Marks the server as checked and runs the first probe after first_delay.
  void start(Millis first_delay);
  // Stops checking; on_closed runs once every handle is closed. Later calls do nothing.
  void close(std::function<void()> on_closed);
  // Marks the server DOWN now, whatever its rise/fall progress, as if a check had failed
  // with HAProxy's HANA status ("health analyze"), `reason` and a zero duration: check_info
  // and the TransitionFn see it like any result. A probe in flight goes on and counts
  // from health 0. Does nothing after close() or while paused.
  void markDown(std::string reason);
  // Stops the cycle until resume(); a probe in flight finishes but its result is dropped.
  void pause();
  // Starts probing again at once. A server that was UP keeps its rise/fall progress; one
  // that was DOWN (the pause made it count UP) starts over as a new server, UP until its
  // first result, so that one failure takes it down again and one success confirms it.
  void resume();
  bool paused() const { return paused_; }

  Server& server() const { return server_; }
  const CheckConfig& cfg() const { return cfg_; }
  const RiseFall& riseFall() const { return rise_fall_; }
  const CheckResult& lastResult() const { return last_result_; }

  // How long a probe waits for the first lookup of its server's host name (core/dns.h).
  static constexpr Millis kAwaitAddress{100};

 protected:
  uv_loop_t* loop() const { return loop_; }
  // Milliseconds since the current probe started, on the loop's clock (the one its timers
  // use, so a probe cut by a timeout of T ms reports at least T).
  int64_t elapsedMs() const;

  // Starts one probe, which ends in exactly one finishProbe() call unless closeProbe()
  // abandons it first. finishProbe() may come from inside startProbe() (a socket error).
  virtual void startProbe() = 0;
  // Abandons a probe in flight (no finishProbe) and closes the protocol's handles;
  // on_closed runs once all of them are closed.
  virtual void closeProbe(std::function<void()> on_closed) = 0;
  // The probe's outcome. Call it after the probe's handles are closed: the next probe may
  // start from here.
  void finishProbe(CheckResult result);

 private:
  static void onTimer(uv_timer_t* timer);
  void onProbeDue();
  void apply(CheckResult result, RiseFall::Transition transition, bool counted_failure);
  void record(RiseFall::Transition transition, bool counted_failure);
  void scheduleNext();
  void setChecking(bool checking);
  void onPartClosed();

  uv_loop_t* loop_;
  Server& server_;
  CheckConfig cfg_;
  TransitionFn on_transition_;
  RiseFall rise_fall_;
  CheckResult last_result_;
  UvHandle<uv_timer_t> timer_;
  uint64_t probe_start_ms_ = 0;  // uv_now() when the current probe started
  bool probing_ = false;         // between onProbeDue() and finishProbe()
  bool closing_ = false;
  bool paused_ = false;
  int parts_left_ = 0;  // the timer and the protocol's handles, while closing
  std::function<void()> on_closed_;
};

}  // namespace tandem
