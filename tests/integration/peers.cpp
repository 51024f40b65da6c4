// The network side of the harness: blocking sockets with deadlines, the in-process backend
// servers and their per-connection handlers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <stdexcept>

#include "tests/integration/harness.h"

namespace tandem::it {

namespace {

// How long a peer waits on a silent socket before giving up. Far above any test's own
// deadline: it only keeps a broken run from leaving threads blocked forever.
constexpr milliseconds kPeerIdle{120000};
// Bounds a blocked send (and connect, which Linux times out with SO_SNDTIMEO).
constexpr milliseconds kSendTimeout{60000};
constexpr size_t kBufSize = 64 * 1024;

timeval toTimeval(milliseconds d) {
  // SO_RCVTIMEO of zero means "block forever"; the shortest real wait is 1 ms.
  long ms = std::max<long>(1, static_cast<long>(d.count()));
  return timeval{ms / 1000, (ms % 1000) * 1000};
}

void setSendTimeout(int fd) {
  timeval tv = toTimeval(kSendTimeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

milliseconds remaining(Clock::time_point deadline) {
  return std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
}

// Reads until `n` bytes, EOF, error or the deadline; returns what arrived.
std::string recvUpTo(Socket& sock, size_t n, Clock::time_point deadline) {
  std::string out;
  char buf[kBufSize];
  while (out.size() < n) {
    milliseconds left = remaining(deadline);
    if (left.count() <= 0) {
      break;
    }
    ssize_t r = sock.recvSome(buf, std::min(sizeof(buf), n - out.size()), left);
    if (r <= 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

void echoLoop(Socket& sock) {
  char buf[kBufSize];
  while (true) {
    ssize_t n = sock.recvSome(buf, sizeof(buf), kPeerIdle);
    if (n <= 0) {
      break;
    }
    if (!sock.sendAll(buf, static_cast<size_t>(n))) {
      return;
    }
  }
  sock.shutdownWrite();
}

uint64_t splitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

bool eventually(const std::function<bool()>& condition, milliseconds timeout) {
  Clock::time_point deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Socket

Socket::~Socket() {
  close();
}

Socket::Socket(Socket&& other) noexcept : fd_(other.release()) {}

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = other.release();
  }
  return *this;
}

bool Socket::sendAll(const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::send(fd_, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool Socket::setRecvTimeout(milliseconds timeout) {
  timeval tv = toTimeval(timeout);
  return setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0;
}

ssize_t Socket::recvSome(void* buf, size_t len, milliseconds timeout) {
  if (!setRecvTimeout(timeout)) {
    return -1;
  }
  while (true) {
    ssize_t n = ::recv(fd_, buf, len, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    return n;
  }
}

std::optional<std::string> Socket::recvExact(size_t n, milliseconds timeout) {
  std::string out = recvUpTo(*this, n, Clock::now() + timeout);
  if (out.size() != n) {
    return std::nullopt;
  }
  return out;
}

// Peeks so that bytes after the newline stay in the socket for the next read.
std::optional<std::string> Socket::readLine(milliseconds timeout) {
  Clock::time_point deadline = Clock::now() + timeout;
  std::string line;
  char buf[1024];
  while (true) {
    milliseconds left = remaining(deadline);
    if (left.count() <= 0 || !setRecvTimeout(left)) {
      return std::nullopt;
    }
    ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_PEEK);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) {
        continue;
      }
      return std::nullopt;
    }
    const char* nl = static_cast<const char*>(memchr(buf, '\n', static_cast<size_t>(n)));
    size_t take = nl ? static_cast<size_t>(nl - buf) + 1 : static_cast<size_t>(n);
    if (::recv(fd_, buf, take, 0) != static_cast<ssize_t>(take)) {
      return std::nullopt;
    }
    line.append(buf, nl ? take - 1 : take);
    if (nl) {
      return line;
    }
  }
}

std::optional<std::string> Socket::readToEof(milliseconds timeout) {
  Clock::time_point deadline = Clock::now() + timeout;
  std::string out;
  char buf[kBufSize];
  while (true) {
    milliseconds left = remaining(deadline);
    if (left.count() <= 0) {
      return std::nullopt;
    }
    ssize_t n = recvSome(buf, sizeof(buf), left);
    if (n == 0) {
      return out;
    }
    if (n < 0) {
      return std::nullopt;
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

bool Socket::quietFor(milliseconds window) {
  if (!setRecvTimeout(window)) {
    return false;
  }
  char c;
  ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

bool Socket::waitClosed(milliseconds timeout) {
  Clock::time_point deadline = Clock::now() + timeout;
  char buf[kBufSize];
  while (true) {
    milliseconds left = remaining(deadline);
    if (left.count() <= 0) {
      return false;
    }
    ssize_t n = recvSome(buf, sizeof(buf), left);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
      return true;
    }
  }
}

bool Socket::shutdownWrite() {
  return ::shutdown(fd_, SHUT_WR) == 0;
}

void Socket::close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

int Socket::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

Socket connectTo(uint16_t port, int* errno_out) {
  Socket sock(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) {
    throw std::runtime_error(std::string("socket: ") + strerror(errno));
  }
  setSendTimeout(sock.fd());
  sockaddr_in addr = loopback(port);
  if (::connect(sock.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno_out) {
      *errno_out = errno;
    }
    return Socket();
  }
  if (errno_out) {
    *errno_out = 0;
  }
  return sock;
}

std::string echoExchange(Socket& sock, const std::string& data, milliseconds timeout) {
  std::thread sender([&sock, &data] { sock.sendAll(data); });
  std::string back = recvUpTo(sock, data.size(), Clock::now() + timeout);
  if (back.size() != data.size()) {
    // Wakes a sender still blocked on a full buffer so that join() returns.
    ::shutdown(sock.fd(), SHUT_RDWR);
  }
  sender.join();
  return back;
}

std::string askName(uint16_t port, milliseconds timeout) {
  Socket sock = connectTo(port);
  if (!sock.valid()) {
    return "";
  }
  return sock.readLine(timeout).value_or("");
}

std::vector<std::string> askNames(uint16_t port, int count) {
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i) {
    names.push_back(askName(port));
  }
  return names;
}

int countOf(const std::vector<std::string>& names, const std::string& name) {
  return static_cast<int>(std::count(names.begin(), names.end(), name));
}

std::string randomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t word = gen();
    memcpy(out.data() + i, &word, std::min<size_t>(8, n - i));
  }
  return out;
}

void StreamDigest::add(const void* data, size_t len) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < len; ++i) {
    hash = (hash ^ p[i]) * 1099511628211ull;
  }
  bytes += len;
}

void patternChunk(uint64_t offset, char* out, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    uint64_t pos = offset + i;
    out[i] = static_cast<char>(splitMix(pos >> 3) >> ((pos & 7) * 8));
  }
}

// ---------------------------------------------------------------------------------------
// TestServer

TestServer::TestServer(Handler handler, uint16_t port) : handler_(std::move(handler)), port_(port) {
  start();
}

TestServer::~TestServer() {
  stop();
}

void TestServer::start() {
  if (listen_fd_ >= 0) {
    return;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  // Restarting a "killed" server reuses its port while old connections sit in TIME_WAIT.
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr = loopback(port_);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 128) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    ::close(fd);
    throw std::runtime_error("test server on port " + std::to_string(port_) + ": " + strerror(err));
  }
  port_ = ntohs(addr.sin_port);
  listen_fd_ = fd;
  stopping_ = false;
  acceptor_ = std::thread(&TestServer::acceptLoop, this, fd);
}

// Polls with a short timeout rather than blocking in accept() so that stop() only has to
// raise a flag; closing a descriptor another thread is blocked on is not reliable.
void TestServer::acceptLoop(int listen_fd) {
  while (!stopping_) {
    pollfd p{listen_fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) {
      continue;
    }
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    setSendTimeout(fd);
    auto conn = std::make_shared<Conn>();
    conn->fd = fd;
    ++accepted_;
    ++active_;
    std::lock_guard<std::mutex> lock(mu_);
    conns_.push_back(conn);
    conn->thread = std::thread(&TestServer::serve, this, conn);
  }
}

void TestServer::serve(std::shared_ptr<Conn> conn) {
  Socket sock(conn->fd);
  handler_(sock);
  {
    // Under the lock so that stop() never shuts down a descriptor number already reused.
    std::lock_guard<std::mutex> lock(mu_);
    conn->done = true;
    ::close(sock.release());
  }
  --active_;
}

void TestServer::stopListening() {
  if (listen_fd_ < 0) {
    return;
  }
  stopping_ = true;
  acceptor_.join();
  ::close(listen_fd_);
  listen_fd_ = -1;
}

void TestServer::stop() {
  stopListening();
  std::vector<std::shared_ptr<Conn>> conns;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& c : conns_) {
      if (!c->done) {
        ::shutdown(c->fd, SHUT_RDWR);
      }
    }
    conns.swap(conns_);
  }
  for (const auto& c : conns) {
    c->thread.join();
  }
}

// ---------------------------------------------------------------------------------------
// Handlers

Handler echoHandler() {
  return [](Socket& sock) { echoLoop(sock); };
}

Handler nameHandler(const std::string& name) {
  return [name](Socket& sock) {
    if (sock.sendAll(name + "\n")) {
      echoLoop(sock);
    }
  };
}

Handler sinkHandler(std::shared_ptr<std::atomic<uint64_t>> total) {
  return [total](Socket& sock) {
    char buf[kBufSize];
    ssize_t n;
    while ((n = sock.recvSome(buf, sizeof(buf), kPeerIdle)) > 0) {
      *total += static_cast<uint64_t>(n);
    }
  };
}

Handler slowReaderHandler(size_t chunk, milliseconds pause, std::shared_ptr<StreamDigest> digest) {
  return [chunk, pause, digest](Socket& sock) {
    while (true) {
      std::this_thread::sleep_for(pause);
      std::string got = recvUpTo(sock, chunk, Clock::now() + kPeerIdle);
      digest->add(got.data(), got.size());
      if (got.size() < chunk) {
        return;  // EOF (or a silent peer)
      }
    }
  };
}

Handler sourceHandler(uint64_t bytes) {
  return [bytes](Socket& sock) {
    std::vector<char> buf(kBufSize);
    for (uint64_t sent = 0; sent < bytes;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), bytes - sent));
      patternChunk(sent, buf.data(), n);
      if (!sock.sendAll(buf.data(), n)) {
        return;
      }
      sent += n;
    }
    sock.shutdownWrite();
  };
}

Handler replyAfterEofHandler(std::string reply, std::shared_ptr<std::string> received) {
  return [reply, received](Socket& sock) {
    std::optional<std::string> got = sock.readToEof(kPeerIdle);
    if (!got) {
      return;
    }
    *received = *got;
    sock.sendAll(reply);
  };
}

}  // namespace tandem::it
