#include "proxy/balancer.h"

#include <netinet/in.h>

#include <algorithm>
#include <random>
#include <utility>

namespace tandem {
namespace {

constexpr int kMaxWeight = 256;  // the top of ServerConfig::weight's range

// SplitMix64's output function: every input bit flips about half of the output bits. Used
// both to step the PRNG of `random` and to finish the client-address hash, whose low bits
// `source` takes modulo the total weight.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// FNV-1a, then mixed: FNV alone leaves nearby addresses (10.0.0.1, 10.0.0.2) in nearby
// residues. Fixed constants, so the value is the same in every run and on every machine.
uint64_t hashBytes(const uint8_t* bytes, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; ++i) {
    h ^= bytes[i];
    h *= 0x100000001b3ULL;
  }
  return mix64(h);
}

bool isV4Mapped(const in6_addr& a) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::equal(kPrefix, kPrefix + 12, a.s6_addr);
}

bool wasTried(const Server& s, const PickContext& ctx) {
  return ctx.tried != nullptr &&
         std::find(ctx.tried->begin(), ctx.tried->end(), &s) != ctx.tried->end();
}

// The weight `s` competes with in this pick, or 0 when it must not be picked: not usable
// (DOWN, DRAIN, MAINT or weight 0), at its maxconn, or already tried by this connection.
// Callers load the weight through here once per pick, so the sums they build stay consistent
// even while the control thread rewrites weights.
int eligibleWeight(const Server& s, const PickContext& ctx) {
  if (!s.usable() || !s.hasFreeSlot() || wasTried(s, ctx)) {
    return 0;
  }
  if (s.backend().cfg().role == Role::kReader && !s.reads_ok.load(std::memory_order_relaxed)) {
    return 0;  // a replica lagging past max_lag or with broken replication takes no reads
  }
  return std::max(s.weight.load(std::memory_order_relaxed), 0);
}

int64_t curConns(const Server& s) {
  return s.counters.cur_conns.load(std::memory_order_relaxed);
}

// True when a carries less load per unit of weight than b (cur_a/w_a < cur_b/w_b), multiplied
// out to stay exact in integers: connections in the millions times weights up to 256 fit.
bool lighter(int64_t cur_a, int w_a, int64_t cur_b, int w_b) {
  return cur_a * w_b < cur_b * w_a;
}

// The servers of one kind (the active ones, or the backups) in id order, with whatever state
// the algorithm carries from one pick to the next.
class Group {
 public:
  explicit Group(std::vector<Server*> servers) : servers_(std::move(servers)) {}
  virtual ~Group() = default;

  const std::vector<Server*>& servers() const { return servers_; }
  virtual Server* pick(const PickContext& ctx) = 0;

 protected:
  std::vector<Server*> servers_;
};

// Smooth weighted round-robin. Each pick credits every eligible server with its weight, takes
// the one with the most credit (the first in id order on a tie) and debits it the total.
// Weights a=3, b=1, credits before the debit: (3,1)->a, (2,2)->a, (1,3)->b, (4,0)->a, back
// to (0,0). So b is never more than three picks away, where a classic cycle would send a
// burst: with 5:1:1 this gives a a b a c a a instead of a a a a a b c.
class RoundRobinGroup final : public Group {
 public:
  explicit RoundRobinGroup(std::vector<Server*> servers)
      : Group(std::move(servers)), credit_(servers_.size(), 0) {}

  Server* pick(const PickContext& ctx) override {
    int64_t total = 0;
    size_t best = servers_.size();
    for (size_t i = 0; i < servers_.size(); ++i) {
      int w = eligibleWeight(*servers_[i], ctx);
      if (w == 0) {
        continue;  // keeps its credit: the credits of all servers always sum to zero
      }
      credit_[i] += w;
      total += w;
      if (best == servers_.size() || credit_[i] > credit_[best]) {
        best = i;
      }
    }
    if (best == servers_.size()) {
      return nullptr;
    }
    credit_[best] -= total;
    return servers_[best];
  }

 private:
  std::vector<int64_t> credit_;
};

// Classic interleaved weighted round-robin (LVS's wrr without the gcd step). Passes sweep the
// servers in id order against a threshold that falls by one per pass, from the highest weight
// down to 1; a server is taken in every pass whose threshold is at most its weight, so it gets
// `weight` turns per cycle. Weights a=1, b=2, c=3 give the cycle c | b c | a b c.
// Cheaper than roundrobin: a pick usually costs one step, not a scan of every server.
class StaticRrGroup final : public Group {
 public:
  using Group::Group;

  Server* pick(const PickContext& ctx) override {
    // Whether the pass under way began in this call, so that `top` has seen every server.
    bool whole_pass = next_ == 0;
    int top = 0;  // the highest eligible weight seen in the pass under way
    while (!servers_.empty()) {
      if (next_ == servers_.size()) {
        if (whole_pass && top == 0) {
          return nullptr;
        }
        threshold_ = whole_pass ? top : lowerThreshold();
        next_ = 0;
        whole_pass = true;
        top = 0;
      }
      Server* s = servers_[next_++];
      int w = eligibleWeight(*s, ctx);
      if (w >= threshold_) {
        return s;
      }
      top = std::max(top, w);
    }
    return nullptr;
  }

 private:
  // A cycle restarts at kMaxWeight rather than scanning for the real maximum: the pass at
  // kMaxWeight then picks nobody, and a pass that picks nobody drops the threshold straight
  // to the highest weight it saw. That same step recovers when weights are lowered at runtime.
  int lowerThreshold() const { return threshold_ > 1 ? threshold_ - 1 : kMaxWeight; }

  size_t next_ = 0;
  int threshold_ = kMaxWeight;
};

// Fewest connections per unit of weight. Equal servers share: the scan starts just after the
// last server picked and only a strictly lighter server displaces the first one found, so a
// burst of picks before any connection opens still spreads instead of piling on one server.
class LeastConnGroup final : public Group {
 public:
  using Group::Group;

  Server* pick(const PickContext& ctx) override {
    const size_t n = servers_.size();
    size_t best = n;
    int best_w = 0;
    int64_t best_cur = 0;
    for (size_t k = 0, i = start_; k < n; ++k, i = (i + 1 == n) ? 0 : i + 1) {
      int w = eligibleWeight(*servers_[i], ctx);
      if (w == 0) {
        continue;
      }
      int64_t cur = curConns(*servers_[i]);
      if (best == n || lighter(cur, w, best_cur, best_w)) {
        best = i;
        best_w = w;
        best_cur = cur;
      }
    }
    if (best == n) {
      return nullptr;
    }
    start_ = (best + 1 == n) ? 0 : best + 1;
    return servers_[best];
  }

 private:
  size_t start_ = 0;
};

// HAProxy's `first`: the lowest id with a free slot, weights ignored (beyond weight 0 meaning
// DRAIN). Servers fill one after the other up to their maxconn, so with one connection at a
// time, as for a database writer, every client reaches the same server.
class FirstGroup final : public Group {
 public:
  using Group::Group;

  Server* pick(const PickContext& ctx) override {
    for (Server* s : servers_) {
      if (eligibleWeight(*s, ctx) > 0) {
        return s;
      }
    }
    return nullptr;
  }
};

// Shared by source and random: a weighted draw over the eligible servers, where each one owns
// a run of `weight` consecutive offsets in id order. Weights are loaded once into weights_ so
// that the sum and the walk agree even if the control thread changes one in between.
class WeightedDrawGroup : public Group {
 public:
  explicit WeightedDrawGroup(std::vector<Server*> servers)
      : Group(std::move(servers)), weights_(servers_.size(), 0) {}

 protected:
  // Fills weights_ for this pick; returns their total (0: nobody is eligible).
  int64_t loadWeights(const PickContext& ctx) {
    int64_t total = 0;
    for (size_t i = 0; i < servers_.size(); ++i) {
      weights_[i] = eligibleWeight(*servers_[i], ctx);
      total += weights_[i];
    }
    return total;
  }

  // The index owning `offset` (below the total): weights 1, 2, 3 own [0], [1, 2], [3, 5].
  size_t ownerOf(uint64_t offset) const {
    size_t i = 0;
    while (offset >= static_cast<uint64_t>(weights_[i])) {
      offset -= static_cast<uint64_t>(weights_[i]);
      ++i;
    }
    return i;
  }

  std::vector<int> weights_;
};

// Map-based `source`: the client hash modulo the total weight, walked over the eligible
// servers. The same client reaches the same server for as long as the eligible set and the
// weights stay the same; any change reshuffles most clients (not a consistent hash).
class SourceGroup final : public WeightedDrawGroup {
 public:
  using WeightedDrawGroup::WeightedDrawGroup;

  Server* pick(const PickContext& ctx) override {
    int64_t total = loadWeights(ctx);
    if (total == 0) {
      return nullptr;
    }
    return servers_[ownerOf(ctx.client_hash % static_cast<uint64_t>(total))];
  }
};

// balance uri / hdr: the request's key hash over the weighted servers, as `source` does with
// the client address; a request without the key (no such header) goes round-robin.
class RequestHashGroup final : public WeightedDrawGroup {
 public:
  explicit RequestHashGroup(std::vector<Server*> servers)
      : WeightedDrawGroup(servers), fallback_(std::move(servers)) {}

  Server* pick(const PickContext& ctx) override {
    if (!ctx.has_request_hash) {
      return fallback_.pick(ctx);
    }
    int64_t total = loadWeights(ctx);
    if (total == 0) {
      return nullptr;
    }
    return servers_[ownerOf(ctx.request_hash % static_cast<uint64_t>(total))];
  }

 private:
  RoundRobinGroup fallback_;
};

// Power of two choices: two independent weighted draws, keeping the one with fewer
// connections per unit of weight. Weights set the shares while loads are even, and a server
// that is slow to release connections sheds traffic without any shared state between workers.
class RandomGroup final : public WeightedDrawGroup {
 public:
  RandomGroup(std::vector<Server*> servers, uint64_t seed)
      : WeightedDrawGroup(std::move(servers)), state_(seed) {}

  Server* pick(const PickContext& ctx) override {
    int64_t total = loadWeights(ctx);
    if (total == 0) {
      return nullptr;
    }
    size_t a = ownerOf(draw(total));
    size_t b = ownerOf(draw(total));
    // On a tie keep the first draw: it alone is an exact weighted draw.
    bool b_lighter =
        lighter(curConns(*servers_[b]), weights_[b], curConns(*servers_[a]), weights_[a]);
    return servers_[b_lighter ? b : a];
  }

 private:
  // Uniform enough in [0, total): total is at most 256 per server, so the modulo bias on a
  // 64-bit draw is below one part in 10^12.
  uint64_t draw(int64_t total) {
    state_ += 0x9e3779b97f4a7c15ULL;  // SplitMix64's step
    return mix64(state_) % static_cast<uint64_t>(total);
  }

  uint64_t state_;
};

std::unique_ptr<Group> makeGroup(Balance balance, std::vector<Server*> servers, uint64_t seed) {
  switch (balance) {
    case Balance::kRoundRobin:
      return std::make_unique<RoundRobinGroup>(std::move(servers));
    case Balance::kStaticRr:
      return std::make_unique<StaticRrGroup>(std::move(servers));
    case Balance::kLeastConn:
      return std::make_unique<LeastConnGroup>(std::move(servers));
    case Balance::kFirst:
      return std::make_unique<FirstGroup>(std::move(servers));
    case Balance::kSource:
      return std::make_unique<SourceGroup>(std::move(servers));
    case Balance::kRandom:
      return std::make_unique<RandomGroup>(std::move(servers), seed);
    case Balance::kUri:
    case Balance::kHdr:
      return std::make_unique<RequestHashGroup>(std::move(servers));
  }
  return std::make_unique<RoundRobinGroup>(std::move(servers));  // unreachable: all enumerated
}

// Routes each pick to the active group while any active server is usable, else to the
// backups, and counts the pick. A usable active server that is merely full or already tried
// does not open the backups: as in HAProxy, backups stand in for servers that are down.
class GroupedBalancer final : public Balancer {
 public:
  GroupedBalancer(std::unique_ptr<Group> active, std::unique_ptr<Group> backup)
      : active_(std::move(active)), backup_(std::move(backup)) {}

  Server* pick(const PickContext& ctx) override {
    Group& group = anyUsable(active_->servers()) ? *active_ : *backup_;
    Server* s = group.pick(ctx);
    if (s != nullptr) {
      s->picks.fetch_add(1, std::memory_order_relaxed);
    }
    return s;
  }

 private:
  static bool anyUsable(const std::vector<Server*>& servers) {
    return std::any_of(servers.begin(), servers.end(), [](const Server* s) { return s->usable(); });
  }

  std::unique_ptr<Group> active_;
  std::unique_ptr<Group> backup_;
};

// role = "writer": the elected writer and nobody else, whatever the retries: sending writes to
// two masters at once is what the role exists to prevent. Backups play no part either.
class WriterBalancer final : public Balancer {
 public:
  explicit WriterBalancer(Backend& backend) : backend_(backend) {}

  Server* pick(const PickContext& ctx) override {
    Server* w = backend_.writer.load(std::memory_order_acquire);
    if (w == nullptr || eligibleWeight(*w, ctx) == 0) {
      return nullptr;
    }
    w->picks.fetch_add(1, std::memory_order_relaxed);
    return w;
  }

 private:
  Backend& backend_;
};

uint64_t randomSeed() {
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

}  // namespace

std::unique_ptr<Balancer> makeBalancer(Backend& backend, uint64_t seed) {
  if (backend.cfg().role == Role::kWriter) {
    return std::make_unique<WriterBalancer>(backend);
  }
  if (seed == 0) {
    seed = randomSeed();
  }
  std::vector<Server*> active;
  std::vector<Server*> backup;
  for (const auto& s : backend.servers()) {
    (s->cfg().backup ? backup : active).push_back(s.get());
  }
  Balance balance = backend.cfg().balance;
  // Distinct streams, so that the backups' draws are not a replay of the actives'.
  return std::make_unique<GroupedBalancer>(makeGroup(balance, std::move(active), mix64(seed)),
                                           makeGroup(balance, std::move(backup), ~seed));
}

uint64_t hashClientAddress(const sockaddr* sa) {
  if (sa == nullptr) {
    return 0;
  }
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    return hashBytes(reinterpret_cast<const uint8_t*>(&in->sin_addr), sizeof(in->sin_addr));
  }
  if (sa->sa_family == AF_INET6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
    // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; hash the IPv4 part so the
    // client keeps its server whichever socket accepted it.
    return isV4Mapped(a) ? hashBytes(a.s6_addr + 12, 4) : hashBytes(a.s6_addr, sizeof(a.s6_addr));
  }
  return 0;
}

uint64_t hashKey(std::string_view key) {
  return hashBytes(reinterpret_cast<const uint8_t*>(key.data()), key.size());
}

}  // namespace tandem
