// tandem_bench_backend: a small, fast HTTP/1.1 responder used as the upstream for the
// side-by-side load comparison (bench/tcp_compare.sh).
//
//   GET /bytes/N   answers 200 with an N-byte body, streamed with backpressure
//   anything else  answers 200 with a 3-byte body ("ok\n")
//
// One libuv loop per thread; every thread owns its own SO_REUSEPORT listening socket on the
// same port, so the kernel spreads connections across threads. Requests are framed by
// "\r\n\r\n" only (benchmark requests carry no body); pipelined and partially read requests
// are handled, keep-alive follows HTTP/1.0 and HTTP/1.1 rules and the Connection header.
//
// Usage: tandem_bench_backend [--host 127.0.0.1] [--port 0] [--threads 1] [--port-file F]
// Prints "listening on HOST:PORT" on stdout once every thread is bound (and writes the port
// number to --port-file if given). Stops on SIGINT or SIGTERM and prints its counters.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t kMaxHead = 64 * 1024;           // a head larger than this gets 431
constexpr std::size_t kMinReadRoom = 16 * 1024;       // free space offered to each read
constexpr std::size_t kBodyChunk = 256 * 1024;        // one uv_write of body bytes
constexpr std::size_t kWriteHighWater = 1024 * 1024;  // stop queueing body above this
constexpr std::uint64_t kMaxBodyBytes = 1ULL << 40;   // /bytes/N upper bound (1 TiB)

// Static responses: head and body in one string; HEAD requests send only the head part.
constexpr std::string_view kOkBody = "ok\n";
constexpr std::string_view kOk11 =
    "HTTP/1.1 200 OK\r\nServer: tandem-bench\r\n"
    "Content-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";
constexpr std::string_view kOkKeepAlive =
    "HTTP/1.1 200 OK\r\nServer: tandem-bench\r\n"
    "Content-Type: text/plain\r\nContent-Length: 3\r\n"
    "Connection: keep-alive\r\n\r\nok\n";
constexpr std::string_view kOkClose =
    "HTTP/1.1 200 OK\r\nServer: tandem-bench\r\n"
    "Content-Type: text/plain\r\nContent-Length: 3\r\n"
    "Connection: close\r\n\r\nok\n";
constexpr std::string_view kBadRequest =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
constexpr std::string_view kHeadTooLarge =
    "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
    "Connection: close\r\n\r\n";

// Filler for streamed bodies; read-only, shared by every thread.
const std::array<char, kBodyChunk>& body_block() {
  static const std::array<char, kBodyChunk> block = [] {
    std::array<char, kBodyChunk> b{};
    for (std::size_t i = 0; i < b.size(); ++i) {
      b[i] = static_cast<char>('a' + (i % 26));
    }
    return b;
  }();
  return block;
}

uv_buf_t make_buf(const char* data, std::size_t len) {
  return uv_buf_init(const_cast<char*>(data), static_cast<unsigned int>(len));
}

struct Worker;

struct Conn {
  uv_tcp_t tcp{};
  Worker* worker = nullptr;
  std::vector<char> in;  // received bytes not yet consumed: [0, in_len)
  std::size_t in_len = 0;
  std::size_t scanned = 0;      // bytes of `in` already searched for "\r\n\r\n"
  std::uint64_t body_left = 0;  // body bytes of the current /bytes/N still to queue
  unsigned writes_in_flight = 0;
  bool reading = false;
  bool peer_eof = false;     // client half-closed: answer what we have, then close
  bool close_after = false;  // close once every queued write has completed
  bool closing = false;
};

struct WriteReq {
  uv_write_t req{};
  Conn* conn = nullptr;
  std::string owned;  // storage for a dynamic head, when there is one
};

struct Worker {
  uv_loop_t loop{};
  uv_tcp_t server{};
  uv_async_t stop{};
  int listen_fd = -1;
  int backlog = 4096;
  std::vector<uv_buf_t> batch;  // scratch for batching pipelined static responses
  std::uint64_t requests = 0;
  std::uint64_t connections = 0;
  std::uint64_t body_bytes = 0;
  std::thread thread;
};

struct Request {
  bool ok = false;
  bool keep_alive = true;
  bool http10 = false;
  bool head_only = false;
  bool bytes = false;
  std::uint64_t n = 0;
};

bool ieq_prefix(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && strncasecmp(s.data(), prefix.data(), prefix.size()) == 0;
}

bool icontains(std::string_view haystack, std::string_view needle) {
  if (needle.size() > haystack.size()) {
    return false;
  }
  for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (strncasecmp(haystack.data() + i, needle.data(), needle.size()) == 0) {
      return true;
    }
  }
  return false;
}

// Parses a request head (request line and headers, without the final blank line).
Request parse_head(std::string_view head) {
  Request r;
  std::size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  std::string_view rest = eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 2);

  std::size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) {
    return r;
  }
  std::size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    return r;
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (version == "HTTP/1.1") {
    r.keep_alive = true;
  } else if (version == "HTTP/1.0") {
    r.http10 = true;
    r.keep_alive = false;
  } else {
    return r;
  }
  r.head_only = method == "HEAD";

  constexpr std::string_view kBytes = "/bytes/";
  if (target.substr(0, kBytes.size()) == kBytes) {
    std::string_view digits = target.substr(kBytes.size());
    std::size_t q = digits.find('?');
    digits = digits.substr(0, q);
    if (digits.empty() || digits.size() > 13) {
      return r;
    }
    std::uint64_t n = 0;
    for (char ch : digits) {
      if (ch < '0' || ch > '9') {
        return r;
      }
      n = n * 10 + static_cast<std::uint64_t>(ch - '0');
    }
    if (n > kMaxBodyBytes) {
      return r;
    }
    r.bytes = true;
    r.n = n;
  }

  // Headers: only Connection matters.
  while (!rest.empty()) {
    std::size_t e = rest.find("\r\n");
    std::string_view h = rest.substr(0, e);
    rest = e == std::string_view::npos ? std::string_view{} : rest.substr(e + 2);
    if (ieq_prefix(h, "connection:")) {
      std::string_view value = h.substr(11);
      if (icontains(value, "close")) {
        r.keep_alive = false;
      } else if (icontains(value, "keep-alive")) {
        r.keep_alive = true;
      }
    }
  }
  r.ok = true;
  return r;
}

void on_close(uv_handle_t* handle) {
  delete static_cast<Conn*>(handle->data);
}

void close_conn(Conn* c) {
  if (c->closing) {
    return;
  }
  c->closing = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_close);
}

void drive(Conn* c);

void on_write(uv_write_t* req, int status) {
  std::unique_ptr<WriteReq> w(static_cast<WriteReq*>(req->data));
  Conn* c = w->conn;
  --c->writes_in_flight;
  if (c->closing) {
    return;
  }
  if (status < 0) {
    close_conn(c);
    return;
  }
  drive(c);
}

// Queues bufs as one write; `owned` (optional) holds storage the bufs point into.
bool queue_write(Conn* c, const uv_buf_t* bufs, std::size_t nbufs, std::string owned = {}) {
  auto* w = new WriteReq;
  w->conn = c;
  w->owned = std::move(owned);
  w->req.data = w;
  std::vector<uv_buf_t> local;
  if (!w->owned.empty() && nbufs == 0) {
    local.push_back(make_buf(w->owned.data(), w->owned.size()));
    bufs = local.data();
    nbufs = 1;
  }
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c->tcp), bufs,
                    static_cast<unsigned int>(nbufs), on_write);
  if (rc < 0) {
    delete w;
    close_conn(c);
    return false;
  }
  ++c->writes_in_flight;
  return true;
}

void flush_batch(Conn* c) {
  auto& batch = c->worker->batch;
  if (!batch.empty()) {
    queue_write(c, batch.data(), batch.size());
    batch.clear();
  }
}

// Queues body bytes while the write queue is below the high-water mark.
void pump(Conn* c) {
  const auto& block = body_block();
  auto* stream = reinterpret_cast<uv_stream_t*>(&c->tcp);
  // Bounded: each pass queues a chunk, and the queue bound stops it after a few passes.
  while (c->body_left > 0 && !c->closing &&
         uv_stream_get_write_queue_size(stream) < kWriteHighWater) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(c->body_left, block.size()));
    uv_buf_t buf = make_buf(block.data(), n);
    if (!queue_write(c, &buf, 1)) {
      return;
    }
    c->body_left -= n;
    c->worker->body_bytes += n;
  }
}

// Answers complete requests in the input. Returns true if it started a body stream (the
// caller pumps it before answering anything else), false when input is exhausted or the
// connection is to close.
bool answer_requests(Conn* c) {
  Worker* wk = c->worker;
  std::size_t pos = 0;
  bool started_body = false;
  while (!c->close_after) {
    std::string_view avail(c->in.data() + pos, c->in_len - pos);
    std::size_t from = c->scanned > pos + 3 ? c->scanned - pos - 3 : 0;
    std::size_t end = avail.find("\r\n\r\n", from);
    if (end == std::string_view::npos) {
      c->scanned = c->in_len;
      if (avail.size() >= kMaxHead) {
        wk->batch.push_back(make_buf(kHeadTooLarge.data(), kHeadTooLarge.size()));
        c->close_after = true;
      }
      break;
    }
    Request r = parse_head(avail.substr(0, end));
    pos += end + 4;
    c->scanned = pos;
    ++wk->requests;
    if (!r.ok) {
      wk->batch.push_back(make_buf(kBadRequest.data(), kBadRequest.size()));
      c->close_after = true;
      break;
    }
    if (!r.keep_alive) {
      c->close_after = true;
    }
    if (r.bytes) {
      flush_batch(c);
      std::string head =
          "HTTP/1.1 200 OK\r\nServer: tandem-bench\r\n"
          "Content-Type: application/octet-stream\r\nContent-Length: ";
      head += std::to_string(r.n);
      head += "\r\n";
      if (!r.keep_alive) {
        head += "Connection: close\r\n";
      } else if (r.http10) {
        head += "Connection: keep-alive\r\n";
      }
      head += "\r\n";
      queue_write(c, nullptr, 0, std::move(head));
      c->body_left = r.head_only ? 0 : r.n;
      started_body = true;
      break;
    }
    std::string_view resp = !r.keep_alive ? kOkClose : (r.http10 ? kOkKeepAlive : kOk11);
    std::size_t len = r.head_only ? resp.size() - kOkBody.size() : resp.size();
    wk->batch.push_back(make_buf(resp.data(), len));
  }
  flush_batch(c);
  if (pos > 0) {
    std::memmove(c->in.data(), c->in.data() + pos, c->in_len - pos);
    c->in_len -= pos;
    c->scanned -= pos;
  }
  return started_body;
}

void on_alloc(uv_handle_t* handle, std::size_t /*suggested*/, uv_buf_t* buf) {
  auto* c = static_cast<Conn*>(handle->data);
  if (c->in.size() - c->in_len < kMinReadRoom) {
    c->in.resize(std::max(c->in.size() * 2, c->in_len + kMinReadRoom));
  }
  *buf = make_buf(c->in.data() + c->in_len, c->in.size() - c->in_len);
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* /*buf*/);

void set_reading(Conn* c, bool on) {
  if (c->closing || c->reading == on) {
    return;
  }
  auto* stream = reinterpret_cast<uv_stream_t*>(&c->tcp);
  if (on) {
    if (uv_read_start(stream, on_alloc, on_read) < 0) {
      close_conn(c);
      return;
    }
  } else {
    uv_read_stop(stream);
  }
  c->reading = on;
}

// Advances the connection as far as it can: streams the current body, answers queued
// requests, closes when done. Each pass either finishes a body or consumes a request, so
// the loop ends when input or the write budget runs out.
void drive(Conn* c) {
  for (;;) {
    if (c->closing) {
      return;
    }
    if (c->body_left > 0) {
      pump(c);
      if (c->body_left > 0) {
        // Do not buffer unbounded pipelined input while a body is outstanding.
        set_reading(c, c->in_len < kMaxHead && !c->peer_eof && !c->close_after);
        return;
      }
    }
    if (c->close_after || !answer_requests(c)) {
      break;
    }
  }
  if (c->peer_eof) {
    c->close_after = true;
  }
  if (c->close_after) {
    set_reading(c, false);
    if (c->writes_in_flight == 0 && c->body_left == 0) {
      close_conn(c);
    }
    return;
  }
  set_reading(c, true);
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* /*buf*/) {
  auto* c = static_cast<Conn*>(stream->data);
  if (nread == 0) {
    return;
  }
  if (nread == UV_EOF) {
    c->peer_eof = true;
    set_reading(c, false);
    drive(c);
    return;
  }
  if (nread < 0) {
    close_conn(c);
    return;
  }
  c->in_len += static_cast<std::size_t>(nread);
  if (c->body_left > 0) {
    // Answered after the current body; drive() stops reading if this piles up.
    set_reading(c, c->in_len < kMaxHead);
    return;
  }
  drive(c);
}

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) {
    return;
  }
  auto* wk = static_cast<Worker*>(server->data);
  auto* c = new Conn;
  c->worker = wk;
  c->tcp.data = c;
  uv_tcp_init(&wk->loop, &c->tcp);
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)) < 0) {
    c->closing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_close);
    return;
  }
  ++wk->connections;
  uv_tcp_nodelay(&c->tcp, 1);
  c->in.resize(kMinReadRoom);
  set_reading(c, true);
}

void on_stop(uv_async_t* async) {
  uv_walk(
      async->loop,
      [](uv_handle_t* h, void* /*arg*/) {
        if (uv_is_closing(h)) {
          return;
        }
        if (h->type == UV_TCP && h != static_cast<uv_handle_t*>(h->loop->data)) {
          auto* c = static_cast<Conn*>(h->data);
          close_conn(c);
        } else {
          uv_close(h, nullptr);
        }
      },
      nullptr);
}

void run_worker(Worker* wk) {
  uv_run(&wk->loop, UV_RUN_DEFAULT);
  uv_loop_close(&wk->loop);
}

int open_listener(const sockaddr* addr, socklen_t addrlen, std::string& err) {
  int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    err = std::string("SO_REUSEPORT: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (::bind(fd, addr, addrlen) < 0) {
    err = std::string("bind: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

int bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0) {
    return -1;
  }
  if (ss.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int threads = 1;
  int backlog = 4096;
  std::string port_file;
};

void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--host ADDR] [--port N] [--threads N] [--backlog N] "
               "[--port-file FILE]\n"
               "  GET /bytes/N answers N body bytes; any other request answers \"ok\\n\".\n"
               "  --port 0 (default) picks a free port; it is printed and written to "
               "--port-file.\n",
               argv0);
}

bool parse_int(const char* s, int lo, int hi, int& out) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < lo || v > hi) {
    return false;
  }
  out = static_cast<int>(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    bool has_value = i + 1 < argc;
    if (a == "-h" || a == "--help") {
      usage(argv[0]);
      return 0;
    }
    if (!has_value) {
      usage(argv[0]);
      return 2;
    }
    const char* v = argv[++i];
    bool ok = true;
    if (a == "--host") {
      opt.host = v;
    } else if (a == "--port") {
      ok = parse_int(v, 0, 65535, opt.port);
    } else if (a == "--threads") {
      ok = parse_int(v, 1, 256, opt.threads);
    } else if (a == "--backlog") {
      ok = parse_int(v, 1, 1 << 20, opt.backlog);
    } else if (a == "--port-file") {
      opt.port_file = v;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "bad argument: %s %s\n", std::string(a).c_str(), v);
      usage(argv[0]);
      return 2;
    }
  }

  sockaddr_storage addr{};
  socklen_t addrlen = 0;
  if (opt.host.find(':') != std::string::npos) {
    if (uv_ip6_addr(opt.host.c_str(), opt.port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
      std::fprintf(stderr, "bad address: %s\n", opt.host.c_str());
      return 2;
    }
    addrlen = sizeof(sockaddr_in6);
  } else {
    if (uv_ip4_addr(opt.host.c_str(), opt.port, reinterpret_cast<sockaddr_in*>(&addr)) != 0) {
      std::fprintf(stderr, "bad address: %s\n", opt.host.c_str());
      return 2;
    }
    addrlen = sizeof(sockaddr_in);
  }

  // Every thread signal-blocked; the main thread waits for them with sigwait().
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  std::vector<std::unique_ptr<Worker>> workers;
  int port = opt.port;
  for (int t = 0; t < opt.threads; ++t) {
    // With --port 0, the first socket picks the port and the others share it.
    if (opt.host.find(':') != std::string::npos) {
      reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port = htons(static_cast<uint16_t>(port));
    } else {
      reinterpret_cast<sockaddr_in*>(&addr)->sin_port = htons(static_cast<uint16_t>(port));
    }
    std::string err;
    int fd = open_listener(reinterpret_cast<sockaddr*>(&addr), addrlen, err);
    if (fd < 0) {
      std::fprintf(stderr, "listen %s:%d: %s\n", opt.host.c_str(), port, err.c_str());
      return 1;
    }
    port = bound_port(fd);
    auto wk = std::make_unique<Worker>();
    wk->listen_fd = fd;
    wk->backlog = opt.backlog;
    uv_loop_init(&wk->loop);
    // Lets on_stop tell the listener apart from connections.
    wk->loop.data = reinterpret_cast<uv_handle_t*>(&wk->server);
    uv_tcp_init(&wk->loop, &wk->server);
    wk->server.data = wk.get();
    int rc = uv_tcp_open(&wk->server, fd);
    if (rc == 0) {
      rc = uv_listen(reinterpret_cast<uv_stream_t*>(&wk->server), wk->backlog, on_connection);
    }
    if (rc < 0) {
      std::fprintf(stderr, "listen %s:%d: %s\n", opt.host.c_str(), port, uv_strerror(rc));
      return 1;
    }
    uv_async_init(&wk->loop, &wk->stop, on_stop);
    workers.push_back(std::move(wk));
  }

  for (auto& wk : workers) {
    wk->thread = std::thread(run_worker, wk.get());
  }

  if (!opt.port_file.empty()) {
    std::string tmp = opt.port_file + ".tmp";
    if (FILE* f = std::fopen(tmp.c_str(), "w")) {
      std::fprintf(f, "%d\n", port);
      std::fclose(f);
      std::rename(tmp.c_str(), opt.port_file.c_str());
    }
  }
  std::printf("listening on %s:%d threads=%d\n", opt.host.c_str(), port, opt.threads);
  std::fflush(stdout);

  int sig = 0;
  sigwait(&sigs, &sig);

  for (auto& wk : workers) {
    uv_async_send(&wk->stop);
  }
  std::uint64_t requests = 0;
  std::uint64_t connections = 0;
  std::uint64_t body_bytes = 0;
  for (auto& wk : workers) {
    wk->thread.join();
    requests += wk->requests;
    connections += wk->connections;
    body_bytes += wk->body_bytes;
  }
  std::fprintf(stderr, "tandem_bench_backend: %llu connections, %llu requests, %llu body bytes\n",
               static_cast<unsigned long long>(connections),
               static_cast<unsigned long long>(requests),
               static_cast<unsigned long long>(body_bytes));
  return 0;
}
