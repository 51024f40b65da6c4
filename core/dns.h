// Server addresses given as host names (compose service names such as "web1:80"): looked up
// at start and again every [global] dns_refresh, on the control thread's loop, never on a
// worker's.
//
//   DnsRefresher dns(control_loop, runtime);
//   dns.start();                // the first round of lookups starts now
//   ...
//   dns.stop([] { /* the timer is closed and no lookup is in flight */ });
//
// One round, for each distinct host name that servers use:
//
//   1. [global] hosts_file, when set, is read again (on libuv's thread pool) and parsed as
//      hosts(5). A name listed there takes its addresses from it; the system resolver is
//      not asked. This lets operators and tests pin names without touching /etc/hosts.
//   2. Every other name goes to uv_getaddrinfo (the system resolver, run on libuv's thread
//      pool). A name whose previous lookup is still in flight is skipped this round, so a
//      slow resolver never piles up requests and never delays the other names.
//
// What a result does to each server using the name (servers at an IP literal never take
// part):
//
//   - first success: the server gets its address. Without active checks it is UP from
//     then on (logged if it had been marked DOWN); with checks, the checks decide as for
//     any server (a server already DOWN needs `rise` successes).
//   - failure before any success: the server stays without an address and takes no
//     traffic. Its reason becomes "unresolved: <resolver error>": without checks the
//     server is marked DOWN here (check status "RESOLV"); with checks, its next probe
//     fails with that reason, which takes it DOWN through the normal rise/fall path.
//   - a later failure: the server keeps its last good address; one warning per failure
//     streak.
//   - another address: "server web/web1 address changed from A to B". New connections and
//     checks use B; sessions already open stay on A. While the name still lists the
//     current address (a DNS answer in another order), nothing changes.
//
// The port always comes from the configuration; only the address is looked up.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/address.h"
#include "core/duration.h"
#include "core/model.h"
#include "core/uv_handle.h"

namespace tandem {

// The socket address of an IP-literal host ("10.0.0.5", "::1") with hp.port; nullopt for a
// host name, which needs a lookup.
std::optional<sockaddr_storage> literalAddress(const HostPort& hp);

// Same family, address and port (and IPv6 scope); the other bytes of the storage are
// ignored.
bool sameSockaddr(const sockaddr_storage& a, const sockaddr_storage& b);

// A copy of `addr` (AF_INET or AF_INET6) with its port set to `port`.
sockaddr_storage withPort(const sockaddr_storage& addr, uint16_t port);

// The text of a hosts(5) file: "ADDRESS NAME [ALIAS...]" per line, '#' starts a comment.
// Lines whose first field is not an IPv4 or IPv6 address are skipped, as the C library
// does. A name may appear on several lines: its addresses are kept in file order, without
// duplicates. Names compare case-insensitively.
//
//   HostsFile hosts = HostsFile::parse("127.0.0.2  web1 web1.local  # test\n");
//   hosts.find("WEB1")  -> {127.0.0.2 (port 0)}
class HostsFile {
 public:
  static HostsFile parse(std::string_view text);

  // The addresses (port 0) listed for `name`, or nullptr when the file does not list it.
  const std::vector<sockaddr_storage>* find(std::string_view name) const;
  size_t nameCount() const { return names_.size(); }

 private:
  std::unordered_map<std::string, std::vector<sockaddr_storage>> names_;
};

// Reads the hosts file at `path` into *text. Files above kMaxHostsFileBytes are refused
// (a hosts file is a few lines; a huge one is a mistake that must not cost memory).
// False with *error set ("/etc/x: No such file or directory") on failure.
constexpr size_t kMaxHostsFileBytes = 1024 * 1024;
bool readHostsFile(const std::string& path, std::string* text, std::string* error);

class DnsRefresher {
 public:
  DnsRefresher(uv_loop_t* loop, Runtime& runtime);
  DnsRefresher(const DnsRefresher&) = delete;
  DnsRefresher& operator=(const DnsRefresher&) = delete;

  // Starts the first round at once, then one every dns_refresh. With dns_refresh 0, rounds
  // come every kUnresolvedRetry while some name has never resolved, then stop. Does
  // nothing when no server is named by a host name.
  void start();
  // Stops the rounds and cancels the lookups still queued; done runs on the loop once the
  // timer is closed and no lookup or hosts-file read is in flight. A lookup already inside
  // the resolver cannot be interrupted: done waits for it (the resolver's own timeouts bound
  // that) and its result is dropped. Later calls are ignored.
  void stop(std::function<void()> done);

  static constexpr Millis kUnresolvedRetry{1000};

 private:
  // One host name and the servers that use it (a database may appear in a writer and a
  // reader backend under the same name).
  struct Name {
    std::string host;
    std::vector<Server*> servers;
    uv_getaddrinfo_t* lookup = nullptr;  // in flight: it has not called back yet
    // Bumped when the hosts file answers for the name: a system lookup started before that
    // is stale (the name moved into the hosts file meanwhile) and its result is dropped.
    uint64_t hosts_answers = 0;
    bool failing = false;  // in a failure streak that has been logged
  };
  struct Lookup {
    uv_getaddrinfo_t req{};
    DnsRefresher* owner = nullptr;
    size_t name = 0;             // index into names_
    uint64_t hosts_answers = 0;  // the name's count when the lookup started
  };
  struct HostsRead {
    uv_work_t req{};
    DnsRefresher* owner = nullptr;
    std::string path;
    bool ok = false;  // filled on the thread pool
    std::string text;
    std::string error;
  };

  static void onTimer(uv_timer_t* timer);
  void startRound();
  static void onHostsReadWork(uv_work_t* req);
  static void onHostsRead(uv_work_t* req, int status);
  void lookUpAll(const HostsFile* hosts);
  void startLookup(size_t index);
  static void onLookup(uv_getaddrinfo_t* req, int status, addrinfo* res);
  void apply(Name& name, const std::vector<sockaddr_storage>& found, const char* source);
  void applyToServer(Server& server, const Name& name, const std::vector<sockaddr_storage>& found,
                     const char* source);
  void fail(Name& name, const std::string& error);
  void failServer(Server& server, const Name& name, const std::string& error, bool first);
  bool allResolved() const;
  void afterRequest();
  void maybeFinishStop();

  uv_loop_t* loop_;
  Runtime& runtime_;
  Millis refresh_;
  std::string hosts_path_;
  std::vector<Name> names_;
  UvHandle<uv_timer_t> timer_;
  size_t requests_in_flight_ = 0;    // lookups and hosts-file reads
  uv_work_t* hosts_read_ = nullptr;  // in flight
  bool hosts_failing_ = false;       // the hosts file could not be read, and that was logged
  bool stopping_ = false;
  bool timer_closed_ = false;
  std::function<void()> stop_done_;
};

}  // namespace tandem
