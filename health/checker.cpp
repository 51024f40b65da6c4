#include "health/checker.h"

#include <cinttypes>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "core/log.h"
#include "health/tcp_check.h"

namespace tandem {

namespace {

int usableServers(const Backend& backend) {
  return backend.usableActive() + backend.usableBackup();
}

void setCheckEnabled(Server& server, bool enabled) {
  std::lock_guard<std::mutex> lock(server.check_mutex);
  server.check_info.enabled = enabled;
}

}  // namespace

Checker::Checker(uv_loop_t* loop, Runtime& runtime) : loop_(loop), runtime_(runtime) {}

void Checker::start() {
  for (const auto& backend : runtime_.backends()) {
    const std::optional<CheckConfig>& cfg = backend->cfg().check;
    for (const auto& server : backend->servers()) {
      bool checked = cfg.has_value() && server->cfg().check;
      setCheckEnabled(*server, checked);
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

// The one place that knows the check types. The config loader accepts only tcp for now;
// HTTP and MySQL checks will be Check subclasses beside TcpCheck.
std::unique_ptr<Check> Checker::makeCheck(Server& server, const CheckConfig& cfg) {
  Check::TransitionFn on_transition = [this](Check& check, RiseFall::Transition transition) {
    onTransition(check, transition);
  };
  switch (cfg.type) {
    case CheckType::kTcp:
      return std::make_unique<TcpCheck>(loop_, server, cfg, std::move(on_transition));
    case CheckType::kHttp:
    case CheckType::kMysql:
      break;
  }
  // Only a Config built by hand gets here (the loader rejects these types): the connect
  // that every HTTP or MySQL check starts with is the part that exists.
  return std::make_unique<TcpCheck>(loop_, server, cfg, std::move(on_transition));
}

void Checker::stop(std::function<void()> done) {
  if (stopping_) {
    return;
  }
  stopping_ = true;
  stop_done_ = std::move(done);
  // Held by this function until every close has been asked for, so that checks closing at
  // once cannot end the stop early.
  checks_open_ = checks_.size() + 1;
  for (const auto& check : checks_) {
    check->close([this] { onCheckClosed(); });
  }
  onCheckClosed();
}

void Checker::onCheckClosed() {
  if (--checks_open_ > 0) {
    return;
  }
  auto done = std::move(stop_done_);
  if (done) {
    done();
  }
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
