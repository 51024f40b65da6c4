#include "proxy/tcp_session.h"

#include <netinet/in.h>

#include "core/log.h"
#include "proxy/worker.h"

namespace tandem {

// A server connection and its connect request, which must live until libuv has called the
// connect callback, even when the connection is abandoned (timeout, retry, close).
struct TcpSession::ServerConn {
  UvHandle<uv_tcp_t> tcp;
  uv_connect_t req{};
  TcpSession* session = nullptr;
  bool abandoned = false;   // replaced by a retry or closed: its callbacks are ignored
  uint64_t started_ms = 0;  // uv_now() when the connect was asked for (server latency)
};

struct TcpSession::WriteReq {
  uv_write_t req{};
  TcpSession* session = nullptr;
  Side* to = nullptr;
  char* buffer = nullptr;  // from the worker's pool
  size_t len = 0;
};

struct TcpSession::ShutdownReq {
  uv_shutdown_t req{};
  TcpSession* session = nullptr;
};

TcpSession::TcpSession(Worker& worker, Frontend& frontend,
                       std::unique_ptr<UvHandle<uv_tcp_t>> client)
    : worker_(worker),
      frontend_(frontend),
      backend_(frontend.backend()),
      client_tcp_(std::move(client)),
      retries_left_(frontend.backend().cfg().retries) {
  client_.tcp = client_tcp_.get();
  client_tcp_->get()->data = this;
  open_handles_ = 1;
  if (timer_.init(uv_timer_init, worker_.loop()) == 0) {
    timer_.get()->data = this;
    ++open_handles_;
  }
  uv_tcp_nodelay(client_tcp_->get(), 1);
  worker_.addSession(this);
}

TcpSession::~TcpSession() {
  worker_.removeSession(this, frontend_);
}

void TcpSession::start() {
  queued_since_ = uv_now(worker_.loop());
  if (pickServer()) {
    connectServer();
    return;
  }
  if (phase_ == Phase::kQueued) {
    // Every eligible server is at its maxconn: wait for a slot, as long as a connect may
    // take (HAProxy's timeout queue defaults to timeout connect).
    armTimer(backend_.cfg().timeout_connect.count());
  }
}

// Chooses a server. Returns false either because all are full (phase stays kQueued) or
// because none is available at all (the session is closed).
bool TcpSession::pickServer() {
  PickContext ctx;
  sockaddr_storage peer;
  int len = sizeof(peer);
  if (uv_tcp_getpeername(client_tcp_->get(), reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    ctx.client_hash = hashClientAddress(reinterpret_cast<sockaddr*>(&peer));
  }
  ctx.tried = &tried_;
  Server* s = worker_.balancerFor(backend_).pick(ctx);
  if (s == nullptr && !tried_.empty()) {
    // Every eligible server failed once already: the remaining retries go round again.
    tried_.clear();
    s = worker_.balancerFor(backend_).pick(ctx);
  }
  if (s == nullptr) {
    s = readerFallback();
  }
  if (s != nullptr) {
    assign(s);
    return true;
  }
  if (!backend_.hasFullServer()) {
    backend_.counters.connect_errors.fetch_add(1, std::memory_order_relaxed);
    close();
  }
  return false;
}

// role = "reader" with no replica fit to take reads: the writer's twin in this backend takes
// them, so that reads are never refused while the database can answer.
Server* TcpSession::readerFallback() {
  if (backend_.cfg().role != Role::kReader || backend_.writer_source == nullptr) {
    return nullptr;
  }
  Server* writer = backend_.writer_source->writer.load(std::memory_order_acquire);
  Server* twin = writer == nullptr ? nullptr : serverAtSameAddress(backend_, *writer);
  if (twin == nullptr || !twin->usable() || !twin->hasFreeSlot()) {
    return nullptr;
  }
  twin->picks.fetch_add(1, std::memory_order_relaxed);
  return twin;
}

void TcpSession::assign(Server* server) {
  if (server_choice_ == nullptr) {
    backend_.counters.onOpen();
  }
  server_choice_ = server;
  server_epoch_ = server->shutdown_epoch.load();
  server->counters.onOpen();
}

// Gives the server slot back (the session ends or moves to another server).
void TcpSession::release() {
  if (server_choice_ != nullptr) {
    server_choice_->counters.onClose();
    server_choice_ = nullptr;
  }
}

void TcpSession::retryQueued() {
  if (phase_ != Phase::kQueued) {
    return;
  }
  if (pickServer()) {
    uv_timer_stop(timer_.get());
    connectServer();
  }
}

void TcpSession::connectServer() {
  phase_ = Phase::kConnecting;
  conn_ = new ServerConn;
  conn_->session = this;
  conn_->req.data = conn_;
  conn_->started_ms = uv_now(worker_.loop());
  if (conn_->tcp.init(uv_tcp_init, worker_.loop()) != 0) {
    delete conn_;
    conn_ = nullptr;
    close();
    return;
  }
  ++open_handles_;
  conn_->tcp.get()->data = this;
  server_.tcp = &conn_->tcp;
  int rc = uv_tcp_connect(&conn_->req, conn_->tcp.get(),
                          reinterpret_cast<const sockaddr*>(&server_choice_->addr()),
                          &TcpSession::onConnect);
  if (rc != 0) {
    onConnectFailed(uv_strerror(rc));
    return;
  }
  armTimer(backend_.cfg().timeout_connect.count());
}

void TcpSession::onConnect(uv_connect_t* req, int status) {
  auto* conn = static_cast<ServerConn*>(req->data);
  if (conn->abandoned || status == UV_ECANCELED) {
    return;  // the close callback of conn->tcp frees it
  }
  conn->session->onConnected(status);
}

void TcpSession::onConnected(int status) {
  if (status != 0) {
    onConnectFailed(uv_strerror(status));
    return;
  }
  uv_timer_stop(timer_.get());
  uv_tcp_nodelay(conn_->tcp.get(), 1);
  // In TCP mode a server's latency is its connect time (/metrics' latency histogram).
  server_choice_->latency.add(static_cast<int64_t>(uv_now(worker_.loop()) - conn_->started_ms));
  if (server_choice_->consecutive_errors.load(std::memory_order_relaxed) != 0) {
    server_choice_->consecutive_errors.store(0, std::memory_order_relaxed);
  }
  startStreaming();
}

// Drops the failed connection and tries again while retries remain: the next eligible
// server first, the same one again when it is the only one.
void TcpSession::onConnectFailed(const char* why) {
  Server* failed = server_choice_;
  failed->counters.connect_errors.fetch_add(1, std::memory_order_relaxed);
  notePassiveFailure(*failed, why);
  backend_.counters.connect_errors.fetch_add(1, std::memory_order_relaxed);
  TLOG_DEBUG("connect to %s failed: %s", failed->fullName().c_str(), why);
  ServerConn* old = conn_;
  conn_ = nullptr;
  server_.tcp = nullptr;
  old->abandoned = true;
  old->tcp.close([this, old] {
    delete old;
    onHandleClosed();
  });
  release();
  if (retries_left_ <= 0) {
    close();
    return;
  }
  --retries_left_;
  failed->counters.retries.fetch_add(1, std::memory_order_relaxed);
  backend_.counters.retries.fetch_add(1, std::memory_order_relaxed);
  tried_.push_back(failed);
  phase_ = Phase::kQueued;
  if (!pickServer()) {
    if (phase_ == Phase::kQueued) {
      armTimer(backend_.cfg().timeout_connect.count());
    }
    return;
  }
  if (server_choice_ != failed) {
    backend_.counters.redispatches.fetch_add(1, std::memory_order_relaxed);
  }
  connectServer();
}

// Passive checks: error_limit consecutive failed connects mark the server DOWN at once.
void TcpSession::notePassiveFailure(Server& server, const char* why) {
  int limit = backend_.cfg().error_limit;
  if (limit > 0 && server.consecutive_errors.fetch_add(1) + 1 == limit) {
    worker_.runtime().reportPassiveFailure(
        server, std::to_string(limit) + " consecutive connection failures, last: " + why);
  }
}

void TcpSession::startStreaming() {
  phase_ = Phase::kStreaming;
  uint64_t now = uv_now(worker_.loop());
  client_.last_active = now;
  server_.last_active = now;
  updateReading(client_, server_);
  updateReading(server_, client_);
  armTimer(std::min(frontend_.cfg().timeout_client, backend_.cfg().timeout_server).count());
}

void TcpSession::onAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* self = static_cast<TcpSession*>(handle->data);
  buf->base = self->worker_.pool().take();
  buf->len = BufferPool::kBufferSize;
}

void TcpSession::onReadClient(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<TcpSession*>(stream->data);
  self->onRead(self->client_, self->server_, nread, buf);
}

void TcpSession::onReadServer(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<TcpSession*>(stream->data);
  self->onRead(self->server_, self->client_, nread, buf);
}

void TcpSession::onRead(Side& from, Side& to, ssize_t nread, const uv_buf_t* buf) {
  if (nread <= 0) {
    if (buf->base != nullptr) {
      worker_.pool().give(buf->base);
    }
    if (nread == UV_EOF) {
      onEof(from, to);
    } else if (nread < 0) {
      close();
    }
    return;
  }
  from.last_active = uv_now(worker_.loop());
  countBytes(&from == &client_, static_cast<size_t>(nread));
  forward(to, buf->base, static_cast<size_t>(nread));
  updateReading(from, to);
}

// Writes at once what the socket takes (the common case: no copy, no request) and queues
// the rest; the pool buffer goes back when the last byte of it is written.
void TcpSession::forward(Side& to, char* data, size_t len) {
  uv_buf_t b = uv_buf_init(data, static_cast<unsigned>(len));
  int written = uv_try_write(to.tcp->stream(), &b, 1);
  if (written == static_cast<int>(len)) {
    to.last_active = uv_now(worker_.loop());
    worker_.pool().give(data);
    return;
  }
  if (written < 0 && written != UV_EAGAIN) {
    worker_.pool().give(data);
    close();
    return;
  }
  size_t done = written > 0 ? static_cast<size_t>(written) : 0;
  auto* w = new WriteReq;
  w->session = this;
  w->to = &to;
  w->buffer = data;
  w->len = len - done;
  w->req.data = w;
  to.queued_bytes += w->len;
  b = uv_buf_init(data + done, static_cast<unsigned>(w->len));
  int rc = uv_write(&w->req, to.tcp->stream(), &b, 1, &TcpSession::onWrite);
  if (rc != 0) {
    to.queued_bytes -= w->len;
    worker_.pool().give(data);
    delete w;
    close();
  }
}

void TcpSession::onWrite(uv_write_t* req, int status) {
  auto* w = static_cast<WriteReq*>(req->data);
  TcpSession* self = w->session;
  Side& to = *w->to;
  size_t len = w->len;
  self->worker_.pool().give(w->buffer);
  delete w;
  self->onWritten(to, len, status);
}

void TcpSession::onWritten(Side& to, size_t len, int status) {
  to.queued_bytes -= len;
  if (phase_ == Phase::kClosing) {
    return;
  }
  if (status != 0) {
    close();
    return;
  }
  to.last_active = uv_now(worker_.loop());
  updateReading(peerOf(to), to);
}

// Backpressure: read from `from` only while `to` has room, and never after its EOF.
void TcpSession::updateReading(Side& from, const Side& to) {
  bool want = !from.eof && phase_ == Phase::kStreaming && to.queued_bytes < kHighWater &&
              (from.reading || to.queued_bytes <= kLowWater);
  if (want == from.reading) {
    return;
  }
  if (want) {
    auto cb = &from == &client_ ? &TcpSession::onReadClient : &TcpSession::onReadServer;
    from.reading = uv_read_start(from.tcp->stream(), &TcpSession::onAlloc, cb) == 0;
  } else {
    uv_read_stop(from.tcp->stream());
    from.reading = false;
  }
}

// Half-close: `from` will send nothing more, so shut `to`'s write side once what is queued
// has gone (uv_shutdown waits for pending writes). The session ends when both sides are done.
void TcpSession::onEof(Side& from, Side& to) {
  from.eof = true;
  updateReading(from, to);
  auto* s = new ShutdownReq;
  s->session = this;
  s->req.data = s;
  to.shut = true;
  if (uv_shutdown(&s->req, to.tcp->stream(), &TcpSession::onShutdown) != 0) {
    delete s;
    close();
  }
}

void TcpSession::onShutdown(uv_shutdown_t* req, int status) {
  auto* s = static_cast<ShutdownReq*>(req->data);
  TcpSession* self = s->session;
  delete s;
  if (self->phase_ == Phase::kClosing) {
    return;
  }
  if (status != 0 || (self->client_.eof && self->server_.eof)) {
    self->close();
  }
}

void TcpSession::countBytes(bool from_client, size_t len) {
  auto add = [len](std::atomic<uint64_t>& c) { c.fetch_add(len, std::memory_order_relaxed); };
  if (from_client) {
    add(frontend_.counters.bytes_in);
    add(backend_.counters.bytes_in);
    add(server_choice_->counters.bytes_in);
  } else {
    add(frontend_.counters.bytes_out);
    add(backend_.counters.bytes_out);
    add(server_choice_->counters.bytes_out);
  }
}

void TcpSession::armTimer(uint64_t timeout_ms) {
  if (timer_.isOpen()) {
    uv_timer_start(timer_.get(), &TcpSession::onTimer, timeout_ms, 0);
  }
}

void TcpSession::onTimer(uv_timer_t* timer) {
  auto* self = static_cast<TcpSession*>(timer->data);
  switch (self->phase_) {
    case Phase::kQueued:
      TLOG_DEBUG("frontend %s: no server slot freed in time", self->frontend_.name().c_str());
      self->close();
      break;
    case Phase::kConnecting:
      self->onConnectFailed("connection timeout");
      break;
    case Phase::kStreaming:
      self->onIdleCheck();
      break;
    case Phase::kClosing:
      break;
  }
}

// Idle timeouts: the client side may stay silent (no read from it, no write to it
// completing) for timeout_client, the server side for timeout_server. Activity only stores
// a timestamp; this check re-arms the timer for the earliest deadline.
void TcpSession::onIdleCheck() {
  uint64_t now = uv_now(worker_.loop());
  uint64_t client_deadline = client_.last_active + frontend_.cfg().timeout_client.count();
  uint64_t server_deadline = server_.last_active + backend_.cfg().timeout_server.count();
  if (now >= client_deadline || now >= server_deadline) {
    TLOG_DEBUG("frontend %s: session idle past its %s timeout", frontend_.name().c_str(),
               now >= client_deadline ? "client" : "server");
    close();
    return;
  }
  armTimer(std::min(client_deadline, server_deadline) - now);
}

void TcpSession::checkShutdown() {
  if (server_choice_ != nullptr && phase_ != Phase::kClosing &&
      server_choice_->shutdown_epoch.load() != server_epoch_) {
    close();
  }
}

void TcpSession::close() {
  if (phase_ == Phase::kClosing) {
    return;
  }
  phase_ = Phase::kClosing;
  release();
  auto closed = [this] { onHandleClosed(); };
  client_tcp_->close(closed);
  if (timer_.isOpen()) {
    timer_.close(closed);
  }
  if (conn_ != nullptr) {
    ServerConn* conn = conn_;
    conn->abandoned = true;
    conn->tcp.close([this, conn] {
      delete conn;
      onHandleClosed();
    });
  }
}

// Deferred deletion: the session frees itself only when libuv has released every handle,
// and so after every pending write, shutdown and connect callback has run.
void TcpSession::onHandleClosed() {
  if (--open_handles_ == 0 && phase_ == Phase::kClosing) {
    delete this;
  }
}

}  // namespace tandem
