// Balancing algorithms: which server of a backend takes the next connection.
//
//   auto balancer = makeBalancer(backend);          // once per worker thread and backend
//   PickContext ctx{hashClientAddress(peer), &tried};
//   Server* server = balancer->pick(ctx);           // nullptr: none eligible, answer 503
//
// A server is eligible when it is usable() (UP, READY, weight above 0), below its maxconn
// and not among the servers this connection already failed on. Backup servers take traffic
// only while no active server is usable; among them the same algorithm applies.
//
// Weights are read from Server::weight on every pick, so a weight set at runtime by the admin
// interface takes effect on the next connection without rebuilding anything.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "core/model.h"

namespace tandem {

// What the balancer knows of the connection being placed.
struct PickContext {
  uint64_t client_hash = 0;  // hashClientAddress() of the client, for `source`
  // Servers this connection already failed on; retries skip them. May be nullptr.
  const std::vector<const Server*>* tried = nullptr;
  // balance uri / hdr: the hash of the request's path or named header, computed by the HTTP
  // session (hashKey()). Without one (no such header), those algorithms fall back to
  // roundrobin, as HAProxy's do.
  uint64_t request_hash = 0;
  bool has_request_hash = false;
};

// One instance per worker thread per backend: not thread-safe, no locks, no allocation in
// pick(). The Backend must outlive it.
class Balancer {
 public:
  virtual ~Balancer() = default;

  // Returns a server to connect to, or nullptr when none is eligible now. Increments
  // server->picks on success.
  virtual Server* pick(const PickContext& ctx) = 0;
};

// Builds the algorithm named by backend.cfg().balance. `seed` feeds the PRNG of `random`;
// 0 draws one from std::random_device (tests pass a fixed seed to be reproducible).
std::unique_ptr<Balancer> makeBalancer(Backend& backend, uint64_t seed = 0);

// A hash of the client's IP address, not its port, so that every connection from one client
// lands on the same server under `source`. Stable across runs and processes (no random seed):
// two Tandem instances behind one VIP agree. An IPv4-mapped IPv6 address hashes as the IPv4
// address it carries. Returns 0 for nullptr or a family other than AF_INET and AF_INET6.
uint64_t hashClientAddress(const sockaddr* sa);

// A stable hash of a request key (a path for `uri`, a header value for `hdr`).
uint64_t hashKey(std::string_view key);

}  // namespace tandem
