#include "core/dns.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <utility>

#include "core/log.h"

namespace tandem {

namespace {

std::string lowerCase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The address of an IPv4 or IPv6 literal, port 0.
std::optional<sockaddr_storage> parseIp(const std::string& text) {
  sockaddr_storage out{};
  auto* in4 = reinterpret_cast<sockaddr_in*>(&out);
  if (inet_pton(AF_INET, text.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    return out;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (inet_pton(AF_INET6, text.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    return out;
  }
  return std::nullopt;
}

bool isBlank(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

// The whitespace-separated fields of one line, comment removed.
std::vector<std::string_view> fields(std::string_view line) {
  line = line.substr(0, line.find('#'));
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && isBlank(line[i])) {
      ++i;
    }
    size_t start = i;
    while (i < line.size() && !isBlank(line[i])) {
      ++i;
    }
    if (i > start) {
      out.push_back(line.substr(start, i - start));
    }
  }
  return out;
}

bool contains(const std::vector<sockaddr_storage>& list, const sockaddr_storage& addr) {
  return std::any_of(list.begin(), list.end(),
                     [&addr](const sockaddr_storage& a) { return sameSockaddr(a, addr); });
}

bool isChecked(const Server& server) {
  return server.backend().cfg().check.has_value() && server.cfg().check;
}

std::string addrText(const sockaddr_storage& addr) {
  return formatSockaddr(reinterpret_cast<const sockaddr*>(&addr));
}

}  // namespace

std::optional<sockaddr_storage> literalAddress(const HostPort& hp) {
  std::optional<sockaddr_storage> ip = parseIp(hp.host);
  if (!ip) {
    return std::nullopt;
  }
  return withPort(*ip, hp.port);
}

bool sameSockaddr(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) {
    return false;
  }
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port && x.sin6_scope_id == y.sin6_scope_id &&
           memcmp(&x.sin6_addr, &y.sin6_addr, sizeof(x.sin6_addr)) == 0;
  }
  return a.ss_family == AF_UNSPEC;  // two "no address" values
}

sockaddr_storage withPort(const sockaddr_storage& addr, uint16_t port) {
  sockaddr_storage out = addr;
  if (out.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in&>(out).sin_port = htons(port);
  } else if (out.ss_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6&>(out).sin6_port = htons(port);
  }
  return out;
}

HostsFile HostsFile::parse(std::string_view text) {
  HostsFile hosts;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    std::vector<std::string_view> f = fields(text.substr(pos, end - pos));
    pos = end + 1;
    if (f.size() < 2) {
      continue;  // blank, comment, or an address without names
    }
    std::optional<sockaddr_storage> ip = parseIp(std::string(f[0]));
    if (!ip) {
      continue;
    }
    for (size_t i = 1; i < f.size(); ++i) {
      std::vector<sockaddr_storage>& list = hosts.names_[lowerCase(f[i])];
      if (!contains(list, *ip)) {
        list.push_back(*ip);
      }
    }
  }
  return hosts;
}

const std::vector<sockaddr_storage>* HostsFile::find(std::string_view name) const {
  auto it = names_.find(lowerCase(name));
  return it == names_.end() ? nullptr : &it->second;
}

bool readHostsFile(const std::string& path, std::string* text, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = path + ": " + strerror(errno);
    return false;
  }
  text->clear();
  errno = 0;
  char buf[16384];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    text->append(buf, static_cast<size_t>(in.gcount()));
    if (text->size() > kMaxHostsFileBytes) {
      *error = path + ": larger than " + std::to_string(kMaxHostsFileBytes) + " bytes";
      text->clear();
      return false;
    }
  }
  if (in.bad()) {
    *error = path + ": " + (errno != 0 ? strerror(errno) : "read error");  // "Is a directory"
    return false;
  }
  return true;
}

// ---- DnsRefresher ----

DnsRefresher::DnsRefresher(uv_loop_t* loop, Runtime& runtime)
    : loop_(loop),
      runtime_(runtime),
      refresh_(runtime.config().global.dns_refresh),
      hosts_path_(runtime.config().global.hosts_file) {
  for (const auto& backend : runtime_.backends()) {
    for (const auto& server : backend->servers()) {
      if (!server->byName()) {
        continue;
      }
      const std::string& host = server->cfg().address.host;
      auto it = std::find_if(names_.begin(), names_.end(),
                             [&host](const Name& n) { return n.host == host; });
      if (it == names_.end()) {
        names_.push_back(Name{host, {}});
        it = names_.end() - 1;
      }
      it->servers.push_back(server.get());
    }
  }
}

void DnsRefresher::start() {
  if (names_.empty()) {
    return;
  }
  timer_.init(uv_timer_init, loop_);
  timer_.get()->data = this;
  Millis repeat = refresh_.count() > 0 ? refresh_ : kUnresolvedRetry;
  uv_timer_start(timer_.get(), &DnsRefresher::onTimer, 0, repeat.count());
}

void DnsRefresher::onTimer(uv_timer_t* timer) {
  static_cast<DnsRefresher*>(timer->data)->startRound();
}

// A round whose hosts-file read is still in flight is skipped: that read starts the
// lookups when it ends.
void DnsRefresher::startRound() {
  if (stopping_ || hosts_read_ != nullptr) {
    return;
  }
  if (hosts_path_.empty()) {
    lookUpAll(nullptr);
    return;
  }
  auto* read = new HostsRead;
  read->owner = this;
  read->path = hosts_path_;
  read->req.data = read;
  if (uv_queue_work(loop_, &read->req, &DnsRefresher::onHostsReadWork,
                    &DnsRefresher::onHostsRead) != 0) {
    delete read;
    lookUpAll(nullptr);
    return;
  }
  hosts_read_ = &read->req;
  ++requests_in_flight_;
}

// On the thread pool: touches only the request.
void DnsRefresher::onHostsReadWork(uv_work_t* req) {
  auto* read = static_cast<HostsRead*>(req->data);
  read->ok = readHostsFile(read->path, &read->text, &read->error);
}

void DnsRefresher::onHostsRead(uv_work_t* req, int status) {
  std::unique_ptr<HostsRead> read(static_cast<HostsRead*>(req->data));
  DnsRefresher* self = read->owner;
  self->hosts_read_ = nullptr;
  if (status == 0 && !self->stopping_) {
    if (!read->ok && !self->hosts_failing_) {
      TLOG_WARN("cannot read hosts_file %s; host names go to the system resolver only",
                read->error.c_str());
    } else if (read->ok && self->hosts_failing_) {
      TLOG_NOTICE("hosts_file %s is readable again", read->path.c_str());
    }
    self->hosts_failing_ = !read->ok;
    std::optional<HostsFile> hosts;
    if (read->ok) {
      hosts = HostsFile::parse(read->text);
    }
    self->lookUpAll(hosts ? &*hosts : nullptr);
  }
  self->afterRequest();
}

void DnsRefresher::lookUpAll(const HostsFile* hosts) {
  for (size_t i = 0; i < names_.size(); ++i) {
    Name& name = names_[i];
    bool settled = std::all_of(name.servers.begin(), name.servers.end(),
                               [](const Server* s) { return s->hasAddr(); });
    if (refresh_.count() == 0 && settled) {
      continue;  // looked up once, as dns_refresh = 0 asks
    }
    const std::vector<sockaddr_storage>* listed = hosts ? hosts->find(name.host) : nullptr;
    if (listed != nullptr && !listed->empty()) {
      ++name.hosts_answers;
      apply(name, *listed, "hosts_file");
    } else if (name.lookup == nullptr) {
      startLookup(i);
    }
  }
  if (refresh_.count() == 0 && allResolved()) {
    uv_timer_stop(timer_.get());
  }
}

void DnsRefresher::startLookup(size_t index) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  auto* lookup = new Lookup;
  lookup->owner = this;
  lookup->name = index;
  lookup->hosts_answers = names_[index].hosts_answers;
  lookup->req.data = lookup;
  int rc = uv_getaddrinfo(loop_, &lookup->req, &DnsRefresher::onLookup, names_[index].host.c_str(),
                          nullptr, &hints);
  if (rc != 0) {
    delete lookup;
    fail(names_[index], uv_strerror(rc));
    return;
  }
  names_[index].lookup = &lookup->req;
  ++requests_in_flight_;
}

void DnsRefresher::onLookup(uv_getaddrinfo_t* req, int status, addrinfo* res) {
  std::unique_ptr<Lookup> lookup(static_cast<Lookup*>(req->data));
  DnsRefresher* self = lookup->owner;
  Name& name = self->names_[lookup->name];
  name.lookup = nullptr;
  std::vector<sockaddr_storage> found;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
        ai->ai_addrlen <= sizeof(sockaddr_storage)) {
      sockaddr_storage addr{};
      memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
      if (!contains(found, addr)) {
        found.push_back(addr);
      }
    }
  }
  uv_freeaddrinfo(res);
  if (!self->stopping_ && lookup->hosts_answers == name.hosts_answers) {
    if (status != 0) {
      self->fail(name, uv_strerror(status));
    } else if (found.empty()) {
      self->fail(name, "no IPv4 or IPv6 address");
    } else {
      self->apply(name, found, "DNS");
    }
  }
  self->afterRequest();
}

void DnsRefresher::apply(Name& name, const std::vector<sockaddr_storage>& found,
                         const char* source) {
  if (name.failing) {
    TLOG_NOTICE("host name %s resolves again (%s)", name.host.c_str(), source);
    name.failing = false;
  }
  for (Server* server : name.servers) {
    applyToServer(*server, name, found, source);
  }
}

// The current address is kept while the name still lists it, so that a resolver rotating
// its answers does not move new connections at every round.
void DnsRefresher::applyToServer(Server& server, const Name& name,
                                 const std::vector<sockaddr_storage>& found, const char* source) {
  uint16_t port = server.cfg().address.port;
  bool had_addr = server.hasAddr();
  if (had_addr && contains(found, withPort(server.addr(), 0))) {
    return;
  }
  std::string before = had_addr ? addrText(server.addr()) : "";
  server.setAddr(withPort(found.front(), port));
  std::string after = addrText(server.addr());
  std::string fullname = server.fullName();
  if (had_addr) {
    TLOG_NOTICE("server %s address changed from %s to %s", fullname.c_str(), before.c_str(),
                after.c_str());
    return;
  }
  server.setUnresolvedReason("");
  TLOG_NOTICE("server %s address is %s (%s from %s)", fullname.c_str(), after.c_str(),
              name.host.c_str(), source);
  if (!isChecked(server) && !server.up.load()) {
    {
      std::lock_guard<std::mutex> lock(server.check_mutex);
      server.check_info.status = "INI";  // as any server without checks
      server.check_info.reason.clear();
    }
    server.up.store(true);
    const Backend& backend = server.backend();
    TLOG_NOTICE("server %s is UP, reason: resolved to %s, %d active and %d backup servers online",
                fullname.c_str(), after.c_str(), backend.usableActive(), backend.usableBackup());
  }
}

void DnsRefresher::fail(Name& name, const std::string& error) {
  bool first = !name.failing;
  name.failing = true;
  for (Server* server : name.servers) {
    failServer(*server, name, error, first);
  }
}

// `first`: the first failure of a streak, the only one that logs (a name that stays
// unresolvable is not reported again at every round).
void DnsRefresher::failServer(Server& server, const Name& name, const std::string& error,
                              bool first) {
  std::string fullname = server.fullName();
  if (server.hasAddr()) {
    if (first) {
      TLOG_WARN("server %s: cannot resolve %s (%s), keeping the last good address %s",
                fullname.c_str(), name.host.c_str(), error.c_str(),
                addrText(server.addr()).c_str());
    }
    return;
  }
  std::string reason = "unresolved: " + error;
  server.setUnresolvedReason(reason);
  if (isChecked(server)) {
    if (first) {
      TLOG_WARN("server %s: cannot resolve %s (%s); it takes no traffic until the name resolves",
                fullname.c_str(), name.host.c_str(), error.c_str());
    }
    return;  // its next check fails with this reason and takes it DOWN
  }
  {
    std::lock_guard<std::mutex> lock(server.check_mutex);
    server.check_info.status = "RESOLV";
    server.check_info.reason = reason;
  }
  if (server.up.exchange(false)) {
    const Backend& backend = server.backend();
    TLOG_WARN("server %s is DOWN, reason: %s, %d active and %d backup servers left",
              fullname.c_str(), reason.c_str(), backend.usableActive(), backend.usableBackup());
  }
}

bool DnsRefresher::allResolved() const {
  return std::all_of(names_.begin(), names_.end(), [](const Name& name) {
    return std::all_of(name.servers.begin(), name.servers.end(),
                       [](const Server* s) { return s->hasAddr(); });
  });
}

void DnsRefresher::stop(std::function<void()> done) {
  if (stopping_) {
    return;
  }
  stopping_ = true;
  stop_done_ = std::move(done);
  // Requests still queued end now with UV_ECANCELED (their callbacks drop the result);
  // those already running on the thread pool finish first.
  for (const Name& name : names_) {
    if (name.lookup != nullptr) {
      uv_cancel(reinterpret_cast<uv_req_t*>(name.lookup));
    }
  }
  if (hosts_read_ != nullptr) {
    uv_cancel(reinterpret_cast<uv_req_t*>(hosts_read_));
  }
  timer_.close([this] {
    timer_closed_ = true;
    maybeFinishStop();
  });
}

void DnsRefresher::afterRequest() {
  --requests_in_flight_;
  maybeFinishStop();
}

void DnsRefresher::maybeFinishStop() {
  if (!stopping_ || !timer_closed_ || requests_in_flight_ > 0) {
    return;
  }
  auto done = std::move(stop_done_);
  if (done) {
    done();
  }
}

}  // namespace tandem
