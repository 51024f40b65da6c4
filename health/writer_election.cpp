#include "health/writer_election.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/log.h"

namespace tandem {

namespace election {

namespace {

int usableCount(const Backend& backend) {
  return backend.usableActive() + backend.usableBackup();
}

ReplicationInfo replicationOf(const Server& s) {
  std::lock_guard<std::mutex> lock(s.check_mutex);
  return s.replication;
}

}  // namespace

bool canLead(const Server& s, bool allow_broken, int usable_servers) {
  if (!s.usable()) {
    return false;
  }
  if (s.replication_broken.load()) {
    return allow_broken && usable_servers == 1;
  }
  return true;
}

bool caughtUp(const Server& s) {
  ReplicationInfo r = replicationOf(s);
  return r.known && !s.replication_broken.load() &&
         (!r.is_replica ||
          (r.io_running && r.sql_running && r.lag_seconds == 0 && r.applied_all_received));
}

Server* bestCandidate(const Backend& backend, const Server* current) {
  bool allow_broken = backend.cfg().allow_broken_replica_failover;
  int usable = usableCount(backend) - (current != nullptr && current->usable() ? 1 : 0);
  Server* best = nullptr;
  ReplicationInfo best_info;
  for (const auto& s : backend.servers()) {
    if (s.get() == current || !canLead(*s, allow_broken, usable)) {
      continue;
    }
    ReplicationInfo info = replicationOf(*s);
    auto lag = [](const ReplicationInfo& r) {
      return r.lag_seconds < 0 ? INT64_MAX : r.lag_seconds;
    };
    bool better =
        best == nullptr || (info.applied_all_received && !best_info.applied_all_received) ||
        (info.applied_all_received == best_info.applied_all_received && lag(info) < lag(best_info));
    if (better) {
      best = s.get();
      best_info = info;
    }
  }
  return best;
}

bool readsOk(const Server& s, Millis max_lag) {
  if (s.replication_broken.load()) {
    return false;
  }
  ReplicationInfo r = replicationOf(s);
  if (!r.known || !r.is_replica) {
    return true;  // no replica to lag behind (or not measured yet): its data is current
  }
  return r.sql_running && r.lag_seconds >= 0 && r.lag_seconds * 1000 <= max_lag.count();
}

}  // namespace election

WriterElection::WriterElection(uv_loop_t* loop, Runtime& runtime)
    : loop_(loop), runtime_(runtime), read_only_(loop, runtime) {}

void WriterElection::start() {
  std::map<std::string, std::string> saved = loadState();
  bool any = false;
  for (const auto& b : runtime_.backends()) {
    if (b->cfg().role == Role::kWriter) {
      initialWriter(*b, saved);
      any = true;
    }
    any = any || b->cfg().role == Role::kReader;
  }
  if (!any) {
    return;
  }
  saveState();
  timer_.init(uv_timer_init, loop_);
  timer_.get()->data = this;
  uv_timer_start(timer_.get(), &WriterElection::onTimer, kEvaluateEveryMs, kEvaluateEveryMs);
}

void WriterElection::stop() {
  timer_.close();
  read_only_.stop();
}

void WriterElection::onTimer(uv_timer_t* timer) {
  static_cast<WriterElection*>(timer->data)->evaluate();
}

// A restart keeps the writer the state file names; without one, the first active server
// (in config order) starts as writer, as `balance first` would choose.
void WriterElection::initialWriter(Backend& backend,
                                   const std::map<std::string, std::string>& saved) {
  auto it = saved.find(backend.name());
  Server* chosen = it == saved.end() ? nullptr : backend.findServer(it->second);
  const char* origin = "from the state file";
  if (chosen == nullptr) {
    for (const auto& s : backend.servers()) {
      if (!s->cfg().backup && chosen == nullptr) {
        chosen = s.get();
      }
    }
    origin = "the first server";
  }
  backend.writer.store(chosen, std::memory_order_release);
  if (chosen != nullptr) {
    TLOG_NOTICE("backend %s: writer is %s (%s)", backend.name().c_str(), chosen->name().c_str(),
                origin);
  }
}

void WriterElection::evaluate() {
  uint64_t now = uv_now(loop_);
  for (const auto& b : runtime_.backends()) {
    for (const auto& s : b->servers()) {
      watchReplication(*s);
    }
    if (b->cfg().role == Role::kWriter) {
      evaluateWriter(*b, now);
    } else if (b->cfg().role == Role::kReader) {
      evaluateReaders(*b);
    }
  }
  read_only_.reconcile();
}

void WriterElection::evaluateWriter(Backend& backend, uint64_t now) {
  Server* writer = backend.writer.load(std::memory_order_acquire);
  if (writer != nullptr && writer->usable()) {
    warned_no_candidate_[&backend] = false;
    maybeFailback(backend, *writer, now);
    return;
  }
  Server* next = election::bestCandidate(backend, writer);
  if (next == nullptr) {
    if (!warned_no_candidate_[&backend]) {
      warned_no_candidate_[&backend] = true;
      TLOG_ERROR("backend %s: writer %s is not usable and no other server can take the role",
                 backend.name().c_str(), writer ? writer->name().c_str() : "(none)");
    }
    return;
  }
  moveWriter(backend, next, writer == nullptr ? std::string("no writer") : downReason(*writer));
}

// failback = "auto": the first server takes the role back once it has been usable and caught
// up for failback_after without a break.
void WriterElection::maybeFailback(Backend& backend, Server& writer, uint64_t now) {
  if (backend.cfg().failback != Failback::kAuto) {
    return;
  }
  Server* preferred = backend.servers().empty() ? nullptr : backend.servers().front().get();
  if (preferred == nullptr || preferred == &writer) {
    return;
  }
  if (!preferred->usable() || !election::caughtUp(*preferred)) {
    caught_up_since_.erase(preferred);
    return;
  }
  auto [it, inserted] = caught_up_since_.emplace(preferred, now);
  uint64_t held = now - it->second;
  if (held >= static_cast<uint64_t>(backend.cfg().failback_after.count())) {
    caught_up_since_.erase(preferred);
    moveWriter(backend, preferred,
               "failback: " + preferred->name() + " UP and caught up for " +
                   formatDuration(backend.cfg().failback_after));
  }
}

void WriterElection::evaluateReaders(Backend& backend) {
  for (const auto& s : backend.servers()) {
    bool ok = election::readsOk(*s, backend.cfg().max_lag);
    bool was = s->reads_ok.exchange(ok);
    if (ok != was) {
      TLOG_NOTICE("server %s %s the reader pool", s->fullName().c_str(), ok ? "rejoins" : "leaves");
    }
  }
}

void WriterElection::watchReplication(Server& server) {
  bool broken = server.replication_broken.load();
  bool& was = was_broken_[&server];
  if (broken == was) {
    return;
  }
  was = broken;
  std::string error;
  {
    std::lock_guard<std::mutex> lock(server.check_mutex);
    error = server.replication.last_sql_error.empty() ? server.replication.last_io_error
                                                      : server.replication.last_sql_error;
  }
  if (broken) {
    TLOG_WARN("server %s replication is broken: %s", server.fullName().c_str(), error.c_str());
  } else {
    TLOG_NOTICE("server %s replication is running again", server.fullName().c_str());
  }
}

std::string WriterElection::downReason(const Server& s) const {
  std::lock_guard<std::mutex> lock(s.check_mutex);
  const char* state = !s.up.load()                           ? "DOWN"
                      : s.admin.load() == AdminState::kMaint ? "in maintenance"
                                                             : "draining";
  std::string why = s.name() + " is " + state;
  if (!s.up.load() && !s.check_info.reason.empty()) {
    why += " (" + s.check_info.reason + ")";
  }
  return why;
}

// The move itself: new writer first (new connections go there at once), then the sessions
// still open on the old one are closed so that no client keeps writing to it.
void WriterElection::moveWriter(Backend& backend, Server* to, const std::string& reason) {
  Server* from = backend.writer.exchange(to, std::memory_order_acq_rel);
  TLOG_WARN("backend %s: writer moves from %s to %s, reason: %s", backend.name().c_str(),
            from ? from->name().c_str() : "(none)", to->name().c_str(), reason.c_str());
  if (from != nullptr) {
    runtime_.shutdownSessions(*from);
  }
  saveState();
}

bool WriterElection::setWriter(Backend& backend, Server& to, std::string* why) {
  if (backend.cfg().role != Role::kWriter) {
    *why = "backend " + backend.name() + " has no writer role";
    return false;
  }
  if (&to.backend() != &backend) {
    *why = "server " + to.name() + " is not in backend " + backend.name();
    return false;
  }
  int usable = backend.usableActive() + backend.usableBackup();
  if (!election::canLead(to, backend.cfg().allow_broken_replica_failover, usable)) {
    *why = "server " + to.fullName() + " cannot take the writer role: " +
           (to.usable() ? "its replication is broken" : "it is not UP and ready");
    return false;
  }
  if (backend.writer.load() == &to) {
    return true;
  }
  moveWriter(backend, &to, "set by the operator");
  return true;
}

// "backend server" per line. Unknown names are ignored on load (the config may have changed).
std::map<std::string, std::string> WriterElection::loadState() const {
  std::map<std::string, std::string> saved;
  const std::string& path = runtime_.config().global.state_file;
  if (path.empty()) {
    return saved;
  }
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string backend, server;
    if (line.empty() || line[0] == '#' || !(fields >> backend >> server)) {
      continue;
    }
    saved[backend] = server;
  }
  return saved;
}

// Written to a temporary file and renamed, so a crash never leaves half a state file.
void WriterElection::saveState() const {
  const std::string& path = runtime_.config().global.state_file;
  if (path.empty()) {
    return;
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "# tandem writer state: backend server\n";
    for (const auto& b : runtime_.backends()) {
      Server* w = b->writer.load();
      if (b->cfg().role == Role::kWriter && w != nullptr) {
        out << b->name() << " " << w->name() << "\n";
      }
    }
    if (!out.flush()) {
      TLOG_ERROR("state_file %s: cannot write", tmp.c_str());
      return;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    TLOG_ERROR("state_file %s: cannot replace: %s", path.c_str(), strerror(errno));
  }
}

}  // namespace tandem
