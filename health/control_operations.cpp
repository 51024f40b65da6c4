#include "health/control_operations.h"

#include <cinttypes>
#include <string>

#include "core/log.h"

namespace tandem {

namespace {

int usableServers(const Backend& backend) {
  return backend.usableActive() + backend.usableBackup();
}

int64_t sessions(const Server& server) {
  return server.counters.cur_conns.load(std::memory_order_relaxed);
}

// HAProxy's "backend has no server available!", written by whichever change took the last
// usable server away.
void logIfEmptied(const Backend& backend, int usable_before) {
  if (usable_before > 0 && usableServers(backend) == 0) {
    TLOG_ERROR("backend %s has no server available!", backend.name().c_str());
  }
}

void logAdminChange(const Server& server, AdminState from, AdminState to, const std::string& who) {
  const Backend& backend = server.backend();
  std::string name = server.fullName();
  switch (to) {
    case AdminState::kDrain:
      TLOG_WARN("server %s is going DRAIN by %s, %d active and %d backup servers left, %" PRId64
                " sessions active",
                name.c_str(), who.c_str(), backend.usableActive(), backend.usableBackup(),
                sessions(server));
      return;
    case AdminState::kMaint:
      TLOG_WARN(
          "server %s enters maintenance by %s, %d active and %d backup servers left, "
          "%" PRId64 " sessions active",
          name.c_str(), who.c_str(), backend.usableActive(), backend.usableBackup(),
          sessions(server));
      return;
    case AdminState::kReady:
      // READY does not make a server that its checks hold DOWN take traffic: say so.
      TLOG_NOTICE(
          "server %s is READY again by %s (leaving %s)%s, %d active and %d backup "
          "servers online",
          name.c_str(), who.c_str(), adminStateName(from),
          server.up.load() ? "" : " but still DOWN by its checks", backend.usableActive(),
          backend.usableBackup());
      return;
  }
}

}  // namespace

// The Runtime is taken for symmetry with the Checker and the WriterElection (the same model
// they act on); every call here gets its objects already resolved.
ControlOperations::ControlOperations(Runtime& /*runtime*/, Checker& checker,
                                     WriterElection& election)
    : checker_(checker), election_(election) {}

bool ControlOperations::setAdminState(Server& server, AdminState state, const std::string& who,
                                      std::string* /*why*/) {
  AdminState from = server.admin.load();
  if (from == state) {
    return true;
  }
  int usable_before = usableServers(server.backend());
  server.admin.store(state);
  logAdminChange(server, from, state, who);
  logIfEmptied(server.backend(), usable_before);
  return true;
}

bool ControlOperations::setWeight(Server& server, int weight, const std::string& who,
                                  std::string* why) {
  if (weight < 0 || weight > 256) {
    *why = "weight " + std::to_string(weight) + " is out of range 0..256";
    return false;
  }
  int from = server.weight.load();
  if (from == weight) {
    return true;
  }
  int usable_before = usableServers(server.backend());
  server.weight.store(weight);
  const Backend& backend = server.backend();
  TLOG_NOTICE(
      "server %s weight changed from %d to %d by %s (configured %d), %d active and %d "
      "backup servers online",
      server.fullName().c_str(), from, weight, who.c_str(), server.cfg().weight,
      backend.usableActive(), backend.usableBackup());
  logIfEmptied(backend, usable_before);
  return true;
}

bool ControlOperations::setHealthEnabled(Server& server, bool enabled, const std::string& who,
                                         std::string* why) {
  bool was_up = server.up.load();
  switch (checker_.setCheckEnabled(server, enabled)) {
    case Checker::CheckToggle::kNoCheck:
      *why = "server " + server.fullName() + " has no health check";
      return false;
    case Checker::CheckToggle::kUnchanged:
      return true;
    case Checker::CheckToggle::kChanged:
      break;
  }
  const Backend& backend = server.backend();
  if (enabled) {
    TLOG_NOTICE("health checks of server %s enabled by %s", server.fullName().c_str(), who.c_str());
    return true;
  }
  TLOG_WARN(
      "health checks of server %s disabled by %s, it counts UP%s, %d active and %d "
      "backup servers online",
      server.fullName().c_str(), who.c_str(), was_up ? "" : " (its checks had it DOWN)",
      backend.usableActive(), backend.usableBackup());
  return true;
}

bool ControlOperations::setWriter(Backend& backend, Server& server, const std::string& who,
                                  std::string* why) {
  Server* from = backend.writer.load();
  if (!election_.setWriter(backend, server, why)) {
    return false;
  }
  if (from != &server) {
    TLOG_NOTICE("backend %s: writer set to %s by %s", backend.name().c_str(), server.name().c_str(),
                who.c_str());
  }
  return true;
}

}  // namespace tandem
