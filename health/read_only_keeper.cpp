#include "health/read_only_keeper.h"

#include <algorithm>

#include "core/log.h"
#include "health/mysql_check.h"

namespace tandem {

ReadOnlyKeeper::ReadOnlyKeeper(uv_loop_t* loop, Runtime& runtime)
    : loop_(loop), runtime_(runtime) {}

ReadOnlyKeeper::~ReadOnlyKeeper() {
  stop();
}

void ReadOnlyKeeper::stop() {
  stopped_ = true;
  for (auto& ticket : tickets_) {
    ticket->owner = nullptr;
  }
  tickets_.clear();
  pool_ = nullptr;
}

void ReadOnlyKeeper::reconcile() {
  if (stopped_) {
    return;
  }
  uint64_t now = uv_now(loop_);
  for (const auto& backend : runtime_.backends()) {
    if (backend->cfg().role == Role::kWriter && backend->cfg().manage_read_only) {
      reconcileBackend(*backend, now);
    }
  }
}

void ReadOnlyKeeper::reconcileBackend(Backend& backend, uint64_t now) {
  const Server* writer = backend.writer.load(std::memory_order_acquire);
  if (writer == nullptr) {
    return;  // no decision to enforce; every server keeps what it has
  }
  const CheckConfig& check = *backend.cfg().check;
  // A check confirms (or not) a sent value within one interval plus its timeout.
  uint64_t confirm_ms = static_cast<uint64_t>((check.interval + check.timeout).count()) * 2;
  for (const auto& s : backend.servers()) {
    bool want_on = s.get() != writer;
    bool known;
    bool is_on;
    {
      std::lock_guard<std::mutex> lock(s->check_mutex);
      known = s->replication.known;
      is_on = s->replication.read_only;
    }
    State& state = states_[s.get()];
    if (!known || !s->up.load() || state.in_flight) {
      continue;
    }
    if (is_on == want_on) {
      state.sent_valid = false;
      state.warned = false;
      continue;
    }
    if (state.sent_valid && state.sent_on == want_on && now - state.sent_ms < confirm_ms) {
      continue;  // sent; the next check will show it
    }
    if (state.last_attempt_ms != 0 && now - state.last_attempt_ms < kRetryEveryMs) {
      continue;
    }
    send(*s, want_on, now);
  }
}

void ReadOnlyKeeper::send(Server& server, bool on, uint64_t now) {
  if (pool_ == nullptr) {
    pool_ = MysqlCheck::sharedPool(loop_);
  }
  State& state = states_[&server];
  state.in_flight = true;
  state.last_attempt_ms = now;
  auto ticket = std::make_shared<Ticket>(Ticket{this, &server, on});
  tickets_.push_back(ticket);
  const CheckConfig& check = *server.backend().cfg().check;
  std::string host = numericHostOf(server.addr());
  unsigned port = portOfAddress(server.addr());
  std::string user = check.user;
  std::string password = check.password;
  unsigned timeout_s = MysqlCheck::clientTimeoutSeconds(check.timeout);
  bool posted = pool_->post([=]() -> BlockingPool::Completion {
    std::string error =
        mysqlExecute(host, port, user, password, timeout_s,
                     on ? "SET GLOBAL read_only = ON" : "SET GLOBAL read_only = OFF");
    return [ticket, error] {
      if (ticket->owner != nullptr) {
        ticket->owner->onDone(*ticket, error);
      }
    };
  });
  if (!posted) {
    state.in_flight = false;
    tickets_.pop_back();
  }
}

void ReadOnlyKeeper::onDone(Ticket& ticket, const std::string& error) {
  tickets_.erase(std::remove_if(tickets_.begin(), tickets_.end(),
                                [&](const auto& t) { return t.get() == &ticket; }),
                 tickets_.end());
  Server& server = *ticket.server;
  State& state = states_[&server];
  state.in_flight = false;
  const Server* writer = server.backend().writer.load(std::memory_order_acquire);
  std::string because = writer == &server   ? std::string("it is the writer")
                        : writer != nullptr ? writer->name() + " is the writer"
                                            : std::string("no writer");
  if (error.empty()) {
    state.sent_valid = true;
    state.sent_on = ticket.on;
    state.sent_ms = uv_now(loop_);
    state.warned = false;
    TLOG_NOTICE("server %s: read_only set %s (%s)", server.fullName().c_str(),
                ticket.on ? "ON" : "OFF", because.c_str());
    return;
  }
  if (!state.warned) {
    state.warned = true;
    TLOG_WARN("server %s: cannot set read_only %s (%s): %s", server.fullName().c_str(),
              ticket.on ? "ON" : "OFF", because.c_str(), error.c_str());
  }
}

}  // namespace tandem
