#include "proxy/listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/log.h"

namespace tandem {

namespace {

constexpr int kBacklog = 1024;

}  // namespace

int bindListenSocket(const HostPort& address, std::string* error) {
  sockaddr_storage addr;
  if (!resolveHostPort(address, &addr, error)) {
    *error = address.str() + ": " + *error;
    return -1;
  }
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = address.str() + ": " + strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  socklen_t len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd, kBacklog) != 0) {
    *error = address.str() + ": " + strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

Listener::Listener(uv_loop_t* loop, Frontend& frontend, int fd, AcceptFn on_accept)
    : loop_(loop), frontend_(frontend), fd_(fd), on_accept_(std::move(on_accept)) {}

int Listener::start() {
  int rc = handle_.init(uv_tcp_init, loop_);
  if (rc != 0) {
    ::close(fd_);
    return rc;
  }
  handle_.get()->data = this;
  rc = uv_tcp_open(handle_.get(), fd_);
  if (rc == 0) {
    rc = uv_listen(handle_.stream(), kBacklog, &Listener::onConnection);
  }
  return rc;
}

void Listener::onConnection(uv_stream_t* server, int status) {
  auto* self = static_cast<Listener*>(server->data);
  if (status != 0) {
    TLOG_WARN("frontend %s: accept failed: %s", self->frontend_.name().c_str(),
              uv_strerror(status));
    return;
  }
  if (!self->reserveSlot()) {
    // Leaving the connection unaccepted makes libuv stop polling this socket until
    // uv_accept() is called (in resume()): later clients wait in the kernel's queue.
    self->paused_ = true;
    return;
  }
  self->acceptOne();
}

void Listener::resume() {
  if (!paused_ || !handle_.isOpen() || !reserveSlot()) {
    return;
  }
  paused_ = false;
  acceptOne();
}

// Takes one frontend slot if maxconn allows. A compare-and-swap loop, because the other
// workers' listeners of the same frontend reserve from the same counter.
bool Listener::reserveSlot() {
  int64_t limit = frontend_.cfg().maxconn;
  Counters& c = frontend_.counters;
  if (limit == 0) {
    c.onOpen();
    return true;
  }
  int64_t cur = c.cur_conns.load(std::memory_order_relaxed);
  do {
    if (cur >= limit) {
      return false;
    }
  } while (!c.cur_conns.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed));
  c.total_conns.fetch_add(1, std::memory_order_relaxed);
  int64_t seen = c.max_conns.load(std::memory_order_relaxed);
  while (cur + 1 > seen &&
         !c.max_conns.compare_exchange_weak(seen, cur + 1, std::memory_order_relaxed)) {
  }
  return true;
}

// The frontend slot is already reserved; the session releases it when it ends.
void Listener::acceptOne() {
  auto client = std::make_unique<UvHandle<uv_tcp_t>>();
  client->init(uv_tcp_init, loop_);
  int rc = uv_accept(handle_.stream(), client->stream());
  if (rc != 0) {
    frontend_.counters.onClose();
    TLOG_WARN("frontend %s: accept failed: %s", frontend_.name().c_str(), uv_strerror(rc));
    return;
  }
  on_accept_(*this, std::move(client));
}

}  // namespace tandem
