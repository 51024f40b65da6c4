#include "health/check.h"

#include <chrono>
#include <mutex>
#include <utility>

namespace tandem {

namespace {

int64_t wallClockMs() {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  using std::chrono::system_clock;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

// A server already DOWN before any check (its address did not resolve) starts DOWN here
// too, so that its first failure is not reported as a second transition.
Check::Check(uv_loop_t* loop, Server& server, const CheckConfig& cfg, TransitionFn on_transition)
    : loop_(loop),
      server_(server),
      cfg_(cfg),
      on_transition_(std::move(on_transition)),
      rise_fall_(cfg.rise, cfg.fall, server.up.load()) {}

void Check::start(Millis first_delay) {
  timer_.init(uv_timer_init, loop_);
  timer_.get()->data = this;
  {
    std::lock_guard<std::mutex> lock(server_.check_mutex);
    CheckInfo& info = server_.check_info;
    info.enabled = true;
    info.health = rise_fall_.health();
    info.last_change_ms = wallClockMs();  // lastchg counts from start-up, as in HAProxy
  }
  uv_timer_start(timer_.get(), &Check::onTimer, first_delay.count(), 0);
}

void Check::close(std::function<void()> on_closed) {
  if (closing_) {
    return;
  }
  closing_ = true;
  on_closed_ = std::move(on_closed);
  setChecking(false);
  // One extra part held until both closes are under way, so that a close completing at
  // once (a handle never opened) cannot report the end early.
  parts_left_ = 3;
  timer_.close([this] { onPartClosed(); });
  closeProbe([this] { onPartClosed(); });
  onPartClosed();
}

int64_t Check::elapsedMs() const {
  return static_cast<int64_t>(uv_now(loop_) - probe_start_ms_);
}

void Check::onTimer(uv_timer_t* timer) {
  static_cast<Check*>(timer->data)->onProbeDue();
}

void Check::markDown(std::string reason) {
  if (closing_ || paused_) {
    return;
  }
  bool counted_failure = rise_fall_.health() > 0;
  RiseFall::Transition transition = rise_fall_.markDown();
  apply(CheckResult{false, "HANA", std::move(reason), 0}, transition, counted_failure);
  // The timer was armed for the old health (`interval` at full health); a DOWN server is
  // probed after `downinter`. A probe in flight re-arms it when it ends.
  if (!probing_) {
    scheduleNext();
  }
}

void Check::pause() {
  if (closing_ || paused_) {
    return;
  }
  paused_ = true;
  uv_timer_stop(timer_.get());
  std::lock_guard<std::mutex> lock(server_.check_mutex);
  server_.check_info.enabled = false;
}

// The first probe goes out at once (the operator wants to see a result), unless one from
// before the pause is still in flight: its end re-arms the timer.
void Check::resume() {
  if (closing_ || !paused_) {
    return;
  }
  paused_ = false;
  if (!rise_fall_.up()) {
    rise_fall_ = RiseFall(cfg_.rise, cfg_.fall, true);
  }
  {
    std::lock_guard<std::mutex> lock(server_.check_mutex);
    server_.check_info.enabled = true;
    server_.check_info.health = rise_fall_.health();
  }
  if (!probing_) {
    uv_timer_start(timer_.get(), &Check::onTimer, 0, 0);
  }
}

// A server named by a host name that has no address yet cannot be probed. While its first
// lookup is under way (no reason yet) the probe waits kAwaitAddress without a result, so
// that a name resolving at once starts like an IP server; once a lookup has failed, the
// probe fails with "unresolved: ..." and the rise/fall rule takes the server DOWN.
void Check::onProbeDue() {
  probe_start_ms_ = uv_now(loop_);
  if (!server_.hasAddr()) {
    std::string reason = server_.unresolvedReason();
    if (reason.empty()) {
      uv_timer_start(timer_.get(), &Check::onTimer, kAwaitAddress.count(), 0);
    } else {
      finishProbe(CheckResult{false, "RESOLV", std::move(reason), 0});
    }
    return;
  }
  probing_ = true;
  setChecking(true);
  startProbe();
}

void Check::finishProbe(CheckResult result) {
  probing_ = false;
  if (paused_) {
    setChecking(false);
    return;  // resume() re-arms the timer
  }
  // HAProxy's chkfail counts only the failures that lower the counter: a server already at
  // DOWN health 0 keeps failing without adding to it.
  bool counted_failure = !result.ok && rise_fall_.health() > 0;
  RiseFall::Transition transition = rise_fall_.onResult(result.ok);
  apply(std::move(result), transition, counted_failure);
  scheduleNext();
}

void Check::apply(CheckResult result, RiseFall::Transition transition, bool counted_failure) {
  last_result_ = std::move(result);
  record(transition, counted_failure);
  if (transition != RiseFall::Transition::kNone && on_transition_) {
    on_transition_(*this, transition);
  }
}

// One critical section per result, so that a reader never sees the new status with the old
// counters.
void Check::record(RiseFall::Transition transition, bool counted_failure) {
  int64_t now = wallClockMs();
  std::lock_guard<std::mutex> lock(server_.check_mutex);
  CheckInfo& info = server_.check_info;
  info.status = last_result_.status;
  info.reason = last_result_.reason;
  info.duration_ms = last_result_.duration_ms;
  info.health = rise_fall_.health();
  info.checking = probing_;  // a mark-down may come while a probe is in flight
  info.failed_checks += counted_failure ? 1 : 0;
  if (transition == RiseFall::Transition::kWentDown) {
    ++info.down_transitions;
    info.last_change_ms = now;
  } else if (transition == RiseFall::Transition::kWentUp) {
    info.downtime_ms += now - info.last_change_ms;
    info.last_change_ms = now;
  }
}

void Check::scheduleNext() {
  if (closing_) {
    return;
  }
  uv_timer_start(timer_.get(), &Check::onTimer, rise_fall_.nextInterval(cfg_).count(), 0);
}

void Check::setChecking(bool checking) {
  std::lock_guard<std::mutex> lock(server_.check_mutex);
  server_.check_info.checking = checking;
}

void Check::onPartClosed() {
  if (--parts_left_ > 0) {
    return;
  }
  auto done = std::move(on_closed_);
  if (done) {
    done();
  }
}

}  // namespace tandem
