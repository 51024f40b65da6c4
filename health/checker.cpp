#include "health/checker.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "core/log.h"
#include "health/http_check.h"
#include "health/mysql_check.h"
#include "health/tcp_check.h"

namespace tandem {

namespace {

int usableServers(const Backend& backend) {
  return backend.usableActive() + backend.usableBackup();
}

void markCheckEnabled(Server& server, bool enabled) {
  std::lock_guard<std::mutex> lock(server.check_mutex);
  server.check_info.enabled = enabled;
}

int64_t wallClockMs() {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  using std::chrono::system_clock;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

Checker::Checker(uv_loop_t* loop, Runtime& runtime) : loop_(loop), runtime_(runtime) {}

void Checker::start() {
  openMarkDownQueue();
  for (const auto& backend : runtime_.backends()) {
    const std::optional<CheckConfig>& cfg = backend->cfg().check;
    for (const auto& server : backend->servers()) {
      bool checked = cfg.has_value() && server->cfg().check;
      markCheckEnabled(*server, checked);
      if (checked) {
        checks_.push_back(makeCheck(*server, *cfg));
      }
    }
  }
  // Check i of n starts at i/n of the spread: 4 checks start at 0, 12, 25 and 37 ms.
  auto n = static_cast<int64_t>(checks_.size());
  for (int64_t i = 0; i < n; ++i) {
    checks_[i]->start(Millis(kStartSpread.count() * i / n));
  }
}

// Reports are accepted only once the handle is open: one arriving earlier is dropped, never
// sent to a handle that does not exist yet.
void Checker::openMarkDownQueue() {
  mark_down_async_.init(uv_async_init, loop_, &Checker::onMarkDownAsync);
  mark_down_async_.get()->data = this;
  std::lock_guard<std::mutex> lock(mark_down_mutex_);
  accepting_mark_downs_ = true;
}

// The one place that knows the check types.
std::unique_ptr<Check> Checker::makeCheck(Server& server, const CheckConfig& cfg) {
  Check::TransitionFn on_transition = [this](Check& check, RiseFall::Transition transition) {
    onTransition(check, transition);
  };
  switch (cfg.type) {
    case CheckType::kTcp:
      break;
    case CheckType::kHttp:
      return std::make_unique<HttpCheck>(loop_, server, cfg, std::move(on_transition));
    case CheckType::kMysql:
      return std::make_unique<MysqlCheck>(loop_, server, cfg, std::move(on_transition));
  }
  // kTcp, and any value a cast could smuggle past the switch: the plain connect check.
  return std::make_unique<TcpCheck>(loop_, server, cfg, std::move(on_transition));
}

void Checker::stop(std::function<void()> done) {
  if (stopping_) {
    return;
  }
  stopping_ = true;
  stop_done_ = std::move(done);
  closeMarkDownQueue();
  // Held by this function until every close has been asked for, so that checks closing at
  // once cannot end the stop early.
  parts_open_ = checks_.size() + 2;
  mark_down_async_.close([this] { onPartClosed(); });
  for (const auto& check : checks_) {
    check->close([this] { onPartClosed(); });
  }
  onPartClosed();
}

// Once this returns no other thread touches the async handle (see requestMarkDown), so it
// may be closed.
void Checker::closeMarkDownQueue() {
  std::lock_guard<std::mutex> lock(mark_down_mutex_);
  accepting_mark_downs_ = false;
  mark_down_queue_.clear();
}

void Checker::onPartClosed() {
  if (--parts_open_ > 0) {
    return;
  }
  auto done = std::move(stop_done_);
  if (done) {
    done();
  }
}

// The send happens under the mutex: stop() clears accepting_mark_downs_ under the same
// mutex before closing the handle, so no send can reach a handle being closed or freed.
void Checker::requestMarkDown(Server& server, std::string reason) {
  std::lock_guard<std::mutex> lock(mark_down_mutex_);
  if (!accepting_mark_downs_) {
    return;
  }
  bool waiting = std::any_of(mark_down_queue_.begin(), mark_down_queue_.end(),
                             [&server](const MarkDownRequest& r) { return r.server == &server; });
  if (!waiting) {
    mark_down_queue_.push_back(MarkDownRequest{&server, std::move(reason)});
  }
  uv_async_send(mark_down_async_.get());
}

void Checker::onMarkDownAsync(uv_async_t* async) {
  static_cast<Checker*>(async->data)->applyMarkDowns();
}

// libuv merges several sends into one callback: everything queued so far is applied.
void Checker::applyMarkDowns() {
  std::vector<MarkDownRequest> requests;
  {
    std::lock_guard<std::mutex> lock(mark_down_mutex_);
    requests.swap(mark_down_queue_);
  }
  for (MarkDownRequest& request : requests) {
    markDown(*request.server, std::move(request.reason));
  }
}

// The error streak starts over, so that the next report needs error_limit new failures.
void Checker::markDown(Server& server, std::string reason) {
  server.consecutive_errors.store(0);
  Check* check = findCheck(server);
  if (check == nullptr || check->paused()) {
    warnUnchecked(server, reason);
    return;
  }
  check->markDown(std::move(reason));
}

// Marking an unchecked server DOWN would take it out for good, a worse outage than the
// errors reported; leaving it UP keeps the balancer's other protections (retries,
// redispatch) in charge. Reports can come every error_limit requests, hence the limit.
void Checker::warnUnchecked(Server& server, const std::string& reason) {
  UncheckedWarning& warning = unchecked_warnings_[&server];
  uint64_t now = uv_now(loop_);
  if (warning.logged && now - warning.last_ms < kUncheckedWarningEvery.count()) {
    ++warning.dropped;
    return;
  }
  std::string dropped;
  if (warning.dropped > 0) {
    dropped = " (" + std::to_string(warning.dropped) + " more reports since the last warning)";
  }
  TLOG_WARN(
      "server %s is kept UP, reason: %s, but it has no active check that could bring "
      "it back%s",
      server.fullName().c_str(), reason.c_str(), dropped.c_str());
  warning = UncheckedWarning{true, now, 0};
}

Checker::CheckToggle Checker::setCheckEnabled(Server& server, bool enabled) {
  Check* check = stopping_ ? nullptr : findCheck(server);
  if (check == nullptr) {
    return CheckToggle::kNoCheck;
  }
  if (check->paused() == !enabled) {
    return CheckToggle::kUnchanged;
  }
  if (enabled) {
    check->resume();
    return CheckToggle::kChanged;
  }
  check->pause();
  if (!server.up.load()) {
    forceUp(server);
  }
  return CheckToggle::kChanged;
}

// The end of a DOWN period, as a check going UP would record it (downtime, last change).
void Checker::forceUp(Server& server) {
  int64_t now = wallClockMs();
  {
    std::lock_guard<std::mutex> lock(server.check_mutex);
    CheckInfo& info = server.check_info;
    info.downtime_ms += now - info.last_change_ms;
    info.last_change_ms = now;
  }
  server.consecutive_errors.store(0);
  server.up.store(true);
}

Check* Checker::findCheck(const Server& server) const {
  auto it = std::find_if(checks_.begin(), checks_.end(),
                         [&server](const auto& check) { return &check->server() == &server; });
  return it == checks_.end() ? nullptr : it->get();
}

// Counts are taken around the store of `up`, so that the log line shows what is left after
// the change and "no server available" fires only for the server that took the last slot.
void Checker::onTransition(Check& check, RiseFall::Transition transition) {
  Server& server = check.server();
  int usable_before = usableServers(server.backend());
  server.up.store(transition == RiseFall::Transition::kWentUp);
  logTransition(server, transition, check.lastResult());
  if (transition == RiseFall::Transition::kWentDown) {
    onServerDown(server, usable_before);
  } else {
    server.consecutive_errors.store(0);  // a fresh start for the passive checks
  }
}

void Checker::logTransition(const Server& server, RiseFall::Transition transition,
                            const CheckResult& result) const {
  const Backend& backend = server.backend();
  std::string name = server.fullName();
  if (transition == RiseFall::Transition::kWentUp) {
    TLOG_NOTICE("server %s is UP, reason: %s, check duration: %" PRId64
                "ms, %d active and %d backup servers online",
                name.c_str(), result.reason.c_str(), result.duration_ms, backend.usableActive(),
                backend.usableBackup());
    return;
  }
  TLOG_WARN("server %s is DOWN, reason: %s, check duration: %" PRId64
            "ms, %d active and %d backup servers left",
            name.c_str(), result.reason.c_str(), result.duration_ms, backend.usableActive(),
            backend.usableBackup());
}

void Checker::onServerDown(Server& server, int usable_before) {
  const Backend& backend = server.backend();
  if (usable_before > 0 && usableServers(backend) == 0) {
    TLOG_ERROR("backend %s has no server available!", backend.name().c_str());
  }
  if (backend.cfg().on_marked_down == OnMarkedDown::kShutdownSessions) {
    runtime_.shutdownSessions(server);
  }
}

}  // namespace tandem
