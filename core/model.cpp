#include "core/model.h"

#include <algorithm>
#include <optional>

#include "core/dns.h"

namespace tandem {

void LatencyHistogram::add(int64_t ms) {
  if (ms < 0) {
    ms = 0;
  }
  size_t i = 0;
  while (i + 1 < kBuckets && ms > kBoundsMs[i]) {
    ++i;
  }
  counts[i].fetch_add(1, std::memory_order_relaxed);
  sum_ms.fetch_add(static_cast<uint64_t>(ms), std::memory_order_relaxed);
}

const char* adminStateName(AdminState state) {
  switch (state) {
    case AdminState::kReady:
      return "READY";
    case AdminState::kDrain:
      return "DRAIN";
    case AdminState::kMaint:
      return "MAINT";
  }
  return "READY";
}

void Counters::onOpen() {
  int64_t now = cur_conns.fetch_add(1, std::memory_order_relaxed) + 1;
  total_conns.fetch_add(1, std::memory_order_relaxed);
  int64_t seen = max_conns.load(std::memory_order_relaxed);
  while (now > seen && !max_conns.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
  }
}

void Counters::countResponse(int status) {
  int cls = status / 100;
  int index = (cls >= 1 && cls <= 5) ? cls - 1 : 5;
  responses[index].fetch_add(1, std::memory_order_relaxed);
}

void Counters::addTimer(std::atomic<int64_t>& avg, int64_t sample_ms, uint64_t samples) {
  int64_t weight = static_cast<int64_t>(std::clamp<uint64_t>(samples, 1, 1024));
  int64_t old = avg.load(std::memory_order_relaxed);
  int64_t next = old + (sample_ms - old) / weight;
  if (next == old && sample_ms != old) {
    next += sample_ms > old ? 1 : -1;  // small differences still move the average
  }
  avg.compare_exchange_strong(old, next, std::memory_order_relaxed);
}

Server::Server(const ServerConfig& cfg, Backend* backend, int id)
    : cfg_(cfg), backend_(backend), id_(id) {
  weight.store(cfg.weight);
  admin.store(cfg.disabled ? AdminState::kMaint : AdminState::kReady);
  // An IP literal is the address; a host name waits for the DnsRefresher.
  if (std::optional<sockaddr_storage> addr = literalAddress(cfg.address)) {
    setAddr(*addr);
  } else {
    by_name_ = true;
  }
}

const sockaddr_storage Server::kNoAddress{};

bool Server::setAddr(const sockaddr_storage& a) {
  const sockaddr_storage* current = addr_.load(std::memory_order_relaxed);
  if (sameSockaddr(*current, a)) {
    return false;
  }
  const sockaddr_storage* copy = nullptr;
  for (const auto& kept : addr_copies_) {
    if (sameSockaddr(*kept, a)) {
      copy = kept.get();
      break;
    }
  }
  if (copy == nullptr) {
    addr_copies_.push_back(std::make_unique<const sockaddr_storage>(a));
    copy = addr_copies_.back().get();
  }
  // Release: a worker that loads the pointer (acquire) sees the copy's bytes.
  addr_.store(copy, std::memory_order_release);
  return true;
}

std::string Server::unresolvedReason() const {
  std::lock_guard<std::mutex> lock(check_mutex);
  return unresolved_reason_;
}

void Server::setUnresolvedReason(std::string reason) {
  std::lock_guard<std::mutex> lock(check_mutex);
  unresolved_reason_ = std::move(reason);
}

std::string Server::fullName() const {
  return backend_->name() + "/" + cfg_.name;
}

Backend::Backend(const BackendConfig& cfg) : cfg_(cfg) {
  int id = 1;
  for (const ServerConfig& s : cfg_.servers) {
    servers_.push_back(std::make_unique<Server>(s, this, id++));
  }
}

Server* Backend::findServer(const std::string& name) const {
  for (const auto& s : servers_) {
    if (s->name() == name) {
      return s.get();
    }
  }
  return nullptr;
}

int Backend::usableActive() const {
  int n = 0;
  for (const auto& s : servers_) {
    n += (!s->cfg().backup && s->usable()) ? 1 : 0;
  }
  return n;
}

int Backend::usableBackup() const {
  int n = 0;
  for (const auto& s : servers_) {
    n += (s->cfg().backup && s->usable()) ? 1 : 0;
  }
  return n;
}

bool Backend::hasFullServer() const {
  for (const auto& s : servers_) {
    if (s->usable() && !s->hasFreeSlot()) {
      return true;
    }
  }
  return false;
}

Frontend::Frontend(const FrontendConfig& cfg, Backend* backend) : cfg_(cfg), backend_(backend) {}

Runtime::Runtime(Config config) : config_(std::move(config)) {
  for (const BackendConfig& b : config_.backends) {
    backends_.push_back(std::make_unique<Backend>(b));
  }
  linkReadersToWriters();
  for (const FrontendConfig& f : config_.frontends) {
    frontends_.push_back(std::make_unique<Frontend>(f, findBackend(f.backend)));
  }
}

// A reader backend falls back to the writer backend that lists a server at one of its
// addresses: the same database seen through the other role.
void Runtime::linkReadersToWriters() {
  for (const auto& reader : backends_) {
    if (reader->cfg().role != Role::kReader) {
      continue;
    }
    for (const auto& writer : backends_) {
      if (writer->cfg().role == Role::kWriter && findSameAddress(*writer, *reader) != nullptr) {
        reader->writer_source = writer.get();
        break;
      }
    }
  }
}

Server* findSameAddress(const Backend& in, const Backend& like) {
  for (const auto& a : in.servers()) {
    for (const auto& b : like.servers()) {
      if (a->cfg().address.str() == b->cfg().address.str()) {
        return a.get();
      }
    }
  }
  return nullptr;
}

Server* serverAtSameAddress(const Backend& in, const Server& like) {
  for (const auto& s : in.servers()) {
    if (s->cfg().address.str() == like.cfg().address.str()) {
      return s.get();
    }
  }
  return nullptr;
}

Backend* Runtime::findBackend(const std::string& name) const {
  for (const auto& b : backends_) {
    if (b->name() == name) {
      return b.get();
    }
  }
  return nullptr;
}

void Runtime::reportPassiveFailure(Server& server, const std::string& reason) {
  if (passive_hook_) {
    passive_hook_(server, reason);
  }
}

void Runtime::shutdownSessions(Server& server) {
  server.shutdown_epoch.fetch_add(1);
  if (shutdown_hook_) {
    shutdown_hook_();
  }
}

}  // namespace tandem
