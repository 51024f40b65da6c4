#include "proxy/http_session.h"

#include <netinet/in.h>

#include <cstring>

#include "core/access_log.h"
#include "core/address.h"
#include "core/log.h"
#include "proxy/balancer.h"
#include "proxy/worker.h"

namespace tandem {

// A write that the socket did not take at once: the unwritten bytes are copied here.
struct HttpSession::WriteReq {
  uv_write_t req{};
  HttpSession* session = nullptr;
  bool to_client = false;
  uint32_t generation = 0;  // the upstream it was written to (server writes only)
  std::string data;
};

namespace {

HttpParser::Limits requestLimits(const FrontendConfig& cfg) {
  HttpParser::Limits limits;
  limits.max_head_bytes = static_cast<size_t>(cfg.max_header_size);
  limits.max_headers = cfg.max_headers;
  return limits;
}

bool hasBody(const HttpHead& head) {
  return head.chunked || head.content_length > 0;
}

}  // namespace

HttpSession::HttpSession(Worker& worker, Frontend& frontend,
                         std::unique_ptr<UvHandle<uv_tcp_t>> client)
    : worker_(worker),
      frontend_(frontend),
      backend_(frontend.backend()),
      client_tcp_(std::move(client)),
      request_parser_(HttpParser::Kind::kRequest, requestLimits(frontend.cfg())) {
  client_tcp_->get()->data = this;
  open_handles_ = 1;
  if (timer_.init(uv_timer_init, worker_.loop()) == 0) {
    timer_.get()->data = this;
    ++open_handles_;
  }
  uv_tcp_nodelay(client_tcp_->get(), 1);
  sockaddr_storage peer;
  int len = sizeof(peer);
  if (uv_tcp_getpeername(client_tcp_->get(), reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    std::string text = formatSockaddr(reinterpret_cast<sockaddr*>(&peer));
    size_t colon = text.rfind(':');
    client_ip_ = text.substr(0, colon);
    if (!client_ip_.empty() && client_ip_.front() == '[') {
      client_ip_ = client_ip_.substr(1, client_ip_.size() - 2);
    }
    client_port_ = atoi(text.c_str() + colon + 1);
  }
  worker_.addSession(this);
}

HttpSession::~HttpSession() {
  worker_.removeSession(this, frontend_);
}

void HttpSession::start() {
  accept_date_ = std::chrono::system_clock::now();
  t_start_ = uv_now(worker_.loop());
  client_.last_active = t_start_;
  phase_ = Phase::kIdle;
  // A new connection gets timeout_http_request for its first request, as in HAProxy.
  armTimer(frontend_.cfg().timeout_http_request.count());
  updateClientReading();
}

// ---- client side ----

void HttpSession::onAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* self = static_cast<HttpSession*>(handle->data);
  buf->base = self->worker_.pool().take();
  buf->len = BufferPool::kBufferSize;
}

void HttpSession::onClientRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<HttpSession*>(stream->data);
  if (nread > 0) {
    self->onClientData(buf->base, static_cast<size_t>(nread));
  }
  if (buf->base != nullptr) {
    self->worker_.pool().give(buf->base);
  }
  if (nread == UV_EOF) {
    self->onClientEof();
  } else if (nread < 0) {
    self->termination_ = "CD";
    self->close();
  }
}

void HttpSession::onClientData(const char* data, size_t len) {
  client_.last_active = uv_now(worker_.loop());
  frontend_.counters.bytes_in.fetch_add(len, std::memory_order_relaxed);
  if (phase_ == Phase::kLingering) {
    return;  // drained and dropped
  }
  if (phase_ == Phase::kTunnel) {
    writeServer(data, len);
    return;
  }
  in_.append(data, len);
  processClient();
}

void HttpSession::onClientEof() {
  client_eof_ = true;
  updateClientReading();
  switch (phase_) {
    case Phase::kIdle:
    case Phase::kLingering:
      close();
      break;
    case Phase::kHead:
      // A request cut short by the client: nothing to answer to.
      termination_ = "CR";
      frontend_.counters.request_errors.fetch_add(1, std::memory_order_relaxed);
      close();
      break;
    case Phase::kExchange:
      if (!request_done_) {
        termination_ = "CD";
        close();
      }
      // A client that half-closes after a complete request still gets its response.
      break;
    case Phase::kTunnel:
      shutdownUpstream();  // half-close goes through the tunnel, as in TCP mode
      break;
    default:
      break;
  }
}

// Moves the parse forward as far as the current phase allows. Steps it triggers may call it
// again (a pooled connection makes the request go up at once): such a call only asks the
// running one for another pass.
void HttpSession::processClient() {
  if (in_process_) {
    process_again_ = true;
    return;
  }
  in_process_ = true;
  do {
    process_again_ = false;
    processClientOnce();
  } while (process_again_ && phase_ != Phase::kClosing);
  in_process_ = false;
  updateClientReading();
}

void HttpSession::processClientOnce() {
  while (true) {
    if (phase_ == Phase::kIdle && !in_.empty()) {
      phase_ = Phase::kHead;
      t_start_ = uv_now(worker_.loop());
      accept_date_ = std::chrono::system_clock::now();
      armTimer(frontend_.cfg().timeout_http_request.count());
    }
    if (phase_ == Phase::kHead) {
      if (!parseHead()) {
        break;
      }
      continue;
    }
    if (phase_ == Phase::kExchange && !request_done_) {
      if (!forwardRequestBody()) {
        break;
      }
      continue;
    }
    break;
  }
}

// Returns true when the head is complete (and handled), false to wait for more bytes.
bool HttpSession::parseHead() {
  if (in_.empty()) {
    return false;
  }
  HttpParser::Result r = request_parser_.feed(in_.data(), in_.size());
  in_.erase(0, r.consumed);
  if (r.event == HttpParser::Event::kError) {
    frontend_.counters.request_errors.fetch_add(1, std::memory_order_relaxed);
    std::string_view why = request_parser_.errorReason();
    TLOG_DEBUG("frontend %s: bad request from %s: %.*s", frontend_.name().c_str(),
               client_ip_.c_str(), static_cast<int>(why.size()), why.data());
    sendError(request_parser_.errorStatus(), "PR");
    return false;
  }
  if (r.event != HttpParser::Event::kHead) {
    return false;
  }
  onRequestHead();
  return phase_ == Phase::kExchange;
}

// Forwards what the parser accepts as body, raw. Returns true when the request ended (the
// loop then looks at what follows), false to wait.
bool HttpSession::forwardRequestBody() {
  if (in_.empty() || up_ == nullptr) {
    return false;
  }
  HttpParser::Result r = request_parser_.feed(in_.data(), in_.size());
  if (r.event == HttpParser::Event::kError) {
    // The fault is inside a body already streaming: the server connection may hold a
    // partial request, so it is closed, never reused.
    frontend_.counters.request_errors.fetch_add(1, std::memory_order_relaxed);
    up_reusable_ = false;
    closeUpstream();
    sendError(400, "PD");
    return false;
  }
  if (r.consumed > 0) {
    writeServer(in_.data(), r.consumed);
    body_bytes_sent_ += r.consumed;
    in_.erase(0, r.consumed);
  }
  if (r.event == HttpParser::Event::kMessageEnd) {
    request_done_ = true;
    return true;
  }
  return false;
}

// Reading from the client pauses while the server is behind, while a request waits for its
// server, and while pipelined requests wait for the current response; a bound on in_
// keeps memory flat.
void HttpSession::updateClientReading() {
  bool want = !client_eof_ && phase_ != Phase::kClosing && server_side_.queued < kHighWater &&
              in_.size() < static_cast<size_t>(frontend_.cfg().max_header_size);
  if (phase_ == Phase::kQueued || phase_ == Phase::kConnecting) {
    want = false;
  }
  if (phase_ == Phase::kTunnel) {
    want = !client_eof_ && server_side_.queued < kHighWater;
  }
  if (want == client_.reading || !client_tcp_->isOpen()) {
    return;
  }
  if (want) {
    client_.reading = uv_read_start(client_tcp_->stream(), &HttpSession::onAlloc,
                                    &HttpSession::onClientRead) == 0;
  } else {
    uv_read_stop(client_tcp_->stream());
    client_.reading = false;
  }
}

void HttpSession::onRequestHead() {
  uint64_t now = uv_now(worker_.loop());
  t_head_ = now;
  request_ = request_parser_.head();
  frontend_.counters.http_requests.fetch_add(1, std::memory_order_relaxed);
  // An upgrade request's following bytes belong to the new protocol: they stay in in_
  // until a 101 starts the tunnel; any other answer ends the connection.
  keep_client_alive_ = request_.keep_alive && !stopping_ && !request_.upgrade;
  request_done_ = !hasBody(request_) || request_.upgrade;
  if (request_done_) {
    // The parser reports the end of a bodiless message on its next feed; let it see the end
    // now so that pipelined bytes start a new message.
    request_parser_.feed("", 0);
  }
  RequestRewrite rw;
  rw.client_ip = client_ip_;
  rw.keep_upgrade = request_.upgrade;
  auto sent_id = findHeader(request_, "X-Request-Id");
  request_id_ = sent_id ? std::string(*sent_id) : worker_.requestIds().next();
  if (!sent_id) {
    rw.request_id = request_id_;
  }
  request_head_out_ = serializeRequestHead(request_, rw);
  retries_left_ = backend_.cfg().retries;
  uv_timer_stop(timer_.get());
  if (!pickServer()) {
    return;
  }
  acquireUpstream();
}

// ---- choosing a server ----

bool HttpSession::pickServer() {
  PickContext ctx;
  ctx.tried = &tried_;
  Server* chosen = nullptr;
  const BackendConfig& cfg = backend_.cfg();
  if (!cfg.cookie.empty() && tried_.empty()) {
    if (auto value = findCookie(request_, cfg.cookie)) {
      Server* s = backend_.findServer(std::string(*value));
      if (s != nullptr && s->usable() && s->hasFreeSlot()) {
        chosen = s;
        s->picks.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  if (chosen == nullptr) {
    if (cfg.balance == Balance::kUri) {
      ctx.request_hash = hashKey(pathOf(request_.target));
      ctx.has_request_hash = true;
    } else if (cfg.balance == Balance::kHdr) {
      if (auto value = findHeader(request_, cfg.balance_header)) {
        ctx.request_hash = hashKey(*value);
        ctx.has_request_hash = true;
      }
    } else if (cfg.balance == Balance::kSource) {
      ctx.client_hash = hashKey(client_ip_);
    }
    chosen = worker_.balancerFor(backend_).pick(ctx);
    if (chosen == nullptr && !tried_.empty()) {
      tried_.clear();  // each eligible server failed once: the remaining retries go round again
      chosen = worker_.balancerFor(backend_).pick(ctx);
    }
  }
  if (chosen != nullptr) {
    assign(chosen);
    return true;
  }
  if (backend_.hasFullServer()) {
    phase_ = Phase::kQueued;
    armTimer(cfg.timeout_connect.count());
    updateClientReading();
    return false;
  }
  sendError(503, "SC");
  return false;
}

void HttpSession::assign(Server* server) {
  if (!backend_counted_) {
    backend_counted_ = true;
    backend_.counters.onOpen();
    backend_.counters.http_requests.fetch_add(1, std::memory_order_relaxed);
  }
  server_ = server;
  server->counters.onOpen();
  server->counters.http_requests.fetch_add(1, std::memory_order_relaxed);
  t_assigned_ = uv_now(worker_.loop());
}

void HttpSession::releaseServer() {
  if (server_ != nullptr) {
    server_->counters.onClose();
    server_ = nullptr;
  }
}

// The request no longer counts as open on the backend (it ended, or the session did).
void HttpSession::releaseBackend() {
  if (backend_counted_) {
    backend_counted_ = false;
    backend_.counters.onClose();
  }
}

void HttpSession::retryQueued() {
  if (phase_ == Phase::kQueued && pickServer()) {
    uv_timer_stop(timer_.get());
    acquireUpstream();
  }
}

void HttpSession::acquireUpstream() {
  UpstreamConn* conn = force_fresh_ ? nullptr : worker_.upstreams().take(server_);
  if (conn == nullptr) {
    connectUpstream();
    return;
  }
  attachUpstream(conn);
  sendRequestHead();
}

void HttpSession::connectUpstream() {
  phase_ = Phase::kConnecting;
  auto* conn = new UpstreamConn;
  conn->server = server_;
  conn->epoch = server_->shutdown_epoch.load();
  conn->addr = &server_->addr();  // read once: the connect below uses the same address
  if (conn->tcp.init(uv_tcp_init, worker_.loop()) != 0) {
    delete conn;
    sendError(503, "SC");
    return;
  }
  attachUpstream(conn);
  conn->owner = this;
  conn->connect_req.data = conn;
  int rc = uv_tcp_connect(&conn->connect_req, conn->tcp.get(),
                          reinterpret_cast<const sockaddr*>(conn->addr), &HttpSession::onConnect);
  if (rc != 0) {
    retryOrFail(uv_strerror(rc), true);
    return;
  }
  armTimer(backend_.cfg().timeout_connect.count());
}

void HttpSession::onConnect(uv_connect_t* req, int status) {
  auto* conn = static_cast<UpstreamConn*>(req->data);
  if (conn->abandoned || status == UV_ECANCELED) {
    return;
  }
  auto* self = static_cast<HttpSession*>(conn->owner);
  if (status != 0) {
    self->retryOrFail(uv_strerror(status), true);
    return;
  }
  uv_tcp_nodelay(conn->tcp.get(), 1);
  self->sendRequestHead();
}

// The session owns `conn` from here until it gives it back to the pool or closes it.
void HttpSession::attachUpstream(UpstreamConn* conn) {
  up_ = conn;
  ++up_generation_;
  ++open_handles_;
  conn->tcp.get()->data = this;
  server_side_ = Side{};
  up_reusable_ = true;
}

void HttpSession::sendRequestHead() {
  uint64_t now = uv_now(worker_.loop());
  t_connected_ = now;
  phase_ = Phase::kExchange;
  server_side_.last_active = now;
  response_started_ = false;
  response_parser_ = std::make_unique<HttpParser>(HttpParser::Kind::kResponse,
                                                  HttpParser::Limits{64 * 1024, 1000});
  if (request_.method == "HEAD") {
    response_parser_->expectNoBody();
  }
  up_->requests++;
  writeServer(request_head_out_.data(), request_head_out_.size());
  updateServerReading();
  armTimer(backend_.cfg().timeout_server.count());
  processClient();  // body bytes already buffered
}

// Shuts the upstream's write side once its queued bytes are written (tunnel half-close).
void HttpSession::shutdownUpstream() {
  if (up_ == nullptr || !up_->tcp.isOpen()) {
    return;
  }
  auto* req = new uv_shutdown_t;
  if (uv_shutdown(req, up_->tcp.stream(), [](uv_shutdown_t* r, int) { delete r; }) != 0) {
    delete req;
    close();
  }
}

// Closes the current upstream connection; its memory goes in its close callback.
void HttpSession::closeUpstream() {
  if (up_ == nullptr) {
    return;
  }
  UpstreamConn* conn = up_;
  up_ = nullptr;
  conn->abandoned = true;
  server_side_.reading = false;
  if (conn->tcp.isOpen()) {
    conn->tcp.close([this, conn] {
      delete conn;
      onHandleClosed();
    });
  } else {
    delete conn;
    onHandleClosed();
  }
}

// Connect failures always allow a retry (nothing reached the server). A request that may
// have reached it is sent again only when that cannot do harm: the connection was a reused
// one closed before any response byte, or the method is idempotent; and never once body
// bytes have gone, since they are not kept.
bool HttpSession::retryAllowed(bool connect_failure) const {
  if (retries_left_ <= 0 || response_started_) {
    return false;
  }
  if (connect_failure) {
    return true;
  }
  if (body_bytes_sent_ > 0) {
    return false;
  }
  bool reused = up_ != nullptr && up_->requests > 1;
  return reused || isIdempotent(request_.method);
}

void HttpSession::retryOrFail(const char* why, bool connect_failure) {
  Server* failed = server_;
  bool reused = up_ != nullptr && up_->requests > 1;
  bool allowed = retryAllowed(connect_failure);
  if (connect_failure) {
    failed->counters.connect_errors.fetch_add(1, std::memory_order_relaxed);
  }
  if (connect_failure || !reused) {
    noteServerError();  // a stale pooled connection says nothing about the server's health
  }
  TLOG_DEBUG("request to %s failed: %s%s", failed->fullName().c_str(), why,
             allowed ? ", retrying" : "");
  closeUpstream();
  releaseServer();
  if (!allowed) {
    if (connect_failure) {
      backend_.counters.connect_errors.fetch_add(1, std::memory_order_relaxed);
      sendError(503, "SC");
    } else {
      backend_.counters.response_errors.fetch_add(1, std::memory_order_relaxed);
      sendError(502, "SH");
    }
    return;
  }
  --retries_left_;
  ++retries_done_;
  failed->counters.retries.fetch_add(1, std::memory_order_relaxed);
  backend_.counters.retries.fetch_add(1, std::memory_order_relaxed);
  force_fresh_ = true;
  tried_.push_back(failed);
  if (!pickServer()) {
    return;
  }
  if (server_ != failed) {
    redispatched_ = true;
    backend_.counters.redispatches.fetch_add(1, std::memory_order_relaxed);
  }
  acquireUpstream();
}

// Passive checks: error_limit consecutive failures on real traffic mark the server DOWN.
void HttpSession::noteServerError() {
  int limit = backend_.cfg().error_limit;
  if (server_ == nullptr || limit <= 0) {
    return;
  }
  int n = server_->consecutive_errors.fetch_add(1) + 1;
  if (n == limit) {
    worker_.runtime().reportPassiveFailure(
        *server_, std::to_string(n) + " consecutive errors on traffic, last: " +
                      (status_ > 0 ? "status " + std::to_string(status_) : "connection failed"));
  }
}

void HttpSession::noteServerSuccess() {
  if (server_ != nullptr && server_->consecutive_errors.load(std::memory_order_relaxed) != 0) {
    server_->consecutive_errors.store(0, std::memory_order_relaxed);
  }
}

// ---- server side ----

void HttpSession::onServerRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<HttpSession*>(stream->data);
  if (nread > 0) {
    self->onServerData(buf->base, static_cast<size_t>(nread));
  }
  if (buf->base != nullptr) {
    self->worker_.pool().give(buf->base);
  }
  if (nread < 0 && self->up_ != nullptr && stream == self->up_->tcp.stream()) {
    self->onServerEof(static_cast<int>(nread));
  }
}

void HttpSession::onServerData(const char* data, size_t len) {
  server_side_.last_active = uv_now(worker_.loop());
  if (server_ != nullptr) {
    server_->counters.bytes_out.fetch_add(len, std::memory_order_relaxed);
  }
  backend_.counters.bytes_out.fetch_add(len, std::memory_order_relaxed);
  if (phase_ == Phase::kTunnel) {
    writeClient(data, len);
    return;
  }
  if (phase_ != Phase::kExchange) {
    return;
  }
  response_started_ = true;
  // Feeds until the data is used up. After a head the parser is fed again even with nothing
  // left: a message without body (HEAD, 204, 304, 1xx) ends right there.
  while (phase_ == Phase::kExchange && response_parser_ != nullptr) {
    HttpParser::Result r = response_parser_->feed(data, len);
    if (r.event == HttpParser::Event::kError) {
      backend_.counters.response_errors.fetch_add(1, std::memory_order_relaxed);
      noteServerError();
      up_reusable_ = false;
      closeUpstream();
      sendError(502, "PH");
      return;
    }
    if (r.event == HttpParser::Event::kHead) {
      data += r.consumed;
      len -= r.consumed;
      if (!onResponseHead(data, len)) {
        return;
      }
      continue;
    }
    if (r.consumed > 0 && response_head_sent_) {
      writeClient(data, r.consumed);
    }
    data += r.consumed;
    len -= r.consumed;
    if (r.event == HttpParser::Event::kNeedMore) {
      return;
    }
    if (interim_) {
      interim_ = false;  // a 100 or 103 ended: the final response follows
      continue;
    }
    if (len > 0) {
      up_reusable_ = false;  // bytes after the response: the connection is out of step
    }
    onResponseEnd();
    return;
  }
}

// Returns false when the session left the exchange (tunnel, error).
bool HttpSession::onResponseHead(const char* rest, size_t rest_len) {
  const HttpHead& head = response_parser_->head();
  if (head.status >= 100 && head.status < 200 && head.status != 101) {
    interim_ = true;
    std::string interim = serializeResponseHead(head, ResponseRewrite{});
    writeClient(interim.data(), interim.size());
    return true;  // the final response follows on the same parser
  }
  t_response_ = uv_now(worker_.loop());
  status_ = head.status;
  if (head.status == 101 && request_.upgrade) {
    ResponseRewrite rw;
    std::string out = serializeResponseHead(head, rw);
    writeClient(out.data(), out.size());
    response_head_sent_ = true;
    startTunnel(rest, rest_len);
    return false;
  }
  if (head.status >= 500) {
    noteServerError();
  } else {
    noteServerSuccess();
  }
  response_until_close_ = response_parser_->bodyUntilClose();
  if (response_until_close_ || !head.keep_alive) {
    up_reusable_ = false;
  }
  if (response_until_close_ || !request_done_) {
    keep_client_alive_ = false;
  }
  ResponseRewrite rw;
  rw.close = !keep_client_alive_ || stopping_;
  rw.client_http10 = request_.version_minor == 0;
  const BackendConfig& cfg = backend_.cfg();
  std::string cookie;
  if (!cfg.cookie.empty() && server_ != nullptr) {
    auto sent = findCookie(request_, cfg.cookie);
    if (!sent || *sent != server_->name()) {
      cookie = cfg.cookie + "=" + server_->name() + "; path=/";
      rw.set_cookie = cookie;
    }
  }
  std::string out = serializeResponseHead(head, rw);
  writeClient(out.data(), out.size());
  response_head_sent_ = true;
  return true;
}

void HttpSession::onServerEof(int status) {
  if (phase_ == Phase::kTunnel) {
    close();
    return;
  }
  if (phase_ != Phase::kExchange) {
    closeUpstream();
    return;
  }
  if (!response_started_) {
    retryOrFail(status == UV_EOF ? "connection closed before the response" : uv_strerror(status),
                false);
    return;
  }
  if (response_parser_ != nullptr && status == UV_EOF) {
    HttpParser::Result r = response_parser_->finish();
    if (r.event == HttpParser::Event::kMessageEnd) {
      up_reusable_ = false;
      onResponseEnd();
      return;
    }
  }
  backend_.counters.response_errors.fetch_add(1, std::memory_order_relaxed);
  up_reusable_ = false;
  if (!response_head_sent_) {
    closeUpstream();
    sendError(502, "SH");
    return;
  }
  termination_ = "SD";
  close();  // truncated response: the client must see the connection end
}

void HttpSession::updateServerReading() {
  if (up_ == nullptr || !up_->tcp.isOpen()) {
    return;
  }
  bool want =
      (phase_ == Phase::kExchange || phase_ == Phase::kTunnel) && client_.queued < kHighWater;
  if (want == server_side_.reading) {
    return;
  }
  if (want) {
    server_side_.reading =
        uv_read_start(up_->tcp.stream(), &HttpSession::onAlloc, &HttpSession::onServerRead) == 0;
  } else {
    uv_read_stop(up_->tcp.stream());
    server_side_.reading = false;
  }
}

void HttpSession::onResponseEnd() {
  uint64_t now = uv_now(worker_.loop());
  Server* server = server_;
  uint64_t samples = backend_.counters.http_requests.load(std::memory_order_relaxed);
  Counters::addTimer(backend_.counters.avg_queue_ms, static_cast<int64_t>(t_assigned_ - t_head_),
                     samples);
  Counters::addTimer(backend_.counters.avg_connect_ms,
                     static_cast<int64_t>(t_connected_ - t_assigned_), samples);
  if (server != nullptr) {
    server->counters.countResponse(status_);
    auto response_ms = static_cast<int64_t>(t_response_ - t_connected_);
    Counters::addTimer(server->counters.avg_response_ms, response_ms,
                       server->counters.http_requests.load(std::memory_order_relaxed));
    server->latency.add(response_ms);
  }
  backend_.counters.countResponse(status_);
  frontend_.counters.countResponse(status_);
  Counters::addTimer(backend_.counters.avg_total_ms, static_cast<int64_t>(now - t_start_),
                     backend_.counters.http_requests.load(std::memory_order_relaxed));
  logExchange(status_);
  bool reusable = up_reusable_ && request_done_ && server_side_.queued == 0 && up_ != nullptr;
  if (reusable) {
    UpstreamConn* conn = up_;
    up_ = nullptr;
    uv_read_stop(conn->tcp.stream());
    server_side_.reading = false;
    --open_handles_;  // the pool owns it now; no request of ours is pending on it
    worker_.upstreams().give(conn);
  } else {
    closeUpstream();
  }
  releaseServer();
  releaseBackend();
  if (!keep_client_alive_ || stopping_ || !request_done_) {
    finishClient();
    return;
  }
  resetExchange();
  phase_ = Phase::kIdle;
  armTimer(frontend_.cfg().timeout_http_keep_alive.count());
  processClient();
}

void HttpSession::resetExchange() {
  response_parser_.reset();
  response_started_ = false;
  response_head_sent_ = false;
  response_until_close_ = false;
  status_ = -1;
  tried_.clear();
  retries_done_ = 0;
  redispatched_ = false;
  force_fresh_ = false;
  body_bytes_sent_ = 0;
  request_done_ = false;
  bytes_to_client_ = 0;
  termination_ = "--";
  t_head_ = t_assigned_ = t_connected_ = t_response_ = 0;
}

// After 101 Switching Protocols both sides speak a protocol we do not parse: copy raw.
void HttpSession::startTunnel(const char* rest, size_t rest_len) {
  phase_ = Phase::kTunnel;
  logExchange(101);
  response_parser_.reset();
  if (rest_len > 0) {
    writeClient(rest, rest_len);
  }
  if (!in_.empty()) {
    writeServer(in_.data(), in_.size());
    in_.clear();
  }
  armTimer(std::min(frontend_.cfg().timeout_client, backend_.cfg().timeout_server).count());
  updateClientReading();
  updateServerReading();
}

// ---- writing ----

void HttpSession::writeClient(const char* data, size_t len) {
  bytes_to_client_ += len;
  frontend_.counters.bytes_out.fetch_add(len, std::memory_order_relaxed);
  write(true, data, len);
}

void HttpSession::writeServer(const char* data, size_t len) {
  if (server_ != nullptr) {
    server_->counters.bytes_in.fetch_add(len, std::memory_order_relaxed);
  }
  backend_.counters.bytes_in.fetch_add(len, std::memory_order_relaxed);
  write(false, data, len);
}

// Writes at once what the socket takes; copies and queues the rest.
void HttpSession::write(bool to_client, const char* data, size_t len) {
  if (len == 0) {
    return;
  }
  UvHandle<uv_tcp_t>* tcp = to_client ? client_tcp_.get() : (up_ ? &up_->tcp : nullptr);
  if (tcp == nullptr || !tcp->isOpen()) {
    return;
  }
  uv_buf_t b = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
  int written = uv_try_write(tcp->stream(), &b, 1);
  Side& side = to_client ? client_ : server_side_;
  if (written == static_cast<int>(len)) {
    side.last_active = uv_now(worker_.loop());
    return;
  }
  if (written < 0 && written != UV_EAGAIN) {
    if (to_client) {
      termination_ = "CD";
      close();
    } else {
      retryOrFail(uv_strerror(written), false);
    }
    return;
  }
  size_t done = written > 0 ? static_cast<size_t>(written) : 0;
  auto* w = new WriteReq;
  w->session = this;
  w->to_client = to_client;
  w->generation = up_generation_;
  w->data.assign(data + done, len - done);
  w->req.data = w;
  side.queued += w->data.size();
  b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  if (uv_write(&w->req, tcp->stream(), &b, 1, &HttpSession::onWrite) != 0) {
    side.queued -= w->data.size();
    delete w;
    close();
    return;
  }
  if (to_client) {
    updateServerReading();
  } else {
    updateClientReading();
  }
}

void HttpSession::onWrite(uv_write_t* req, int status) {
  auto* w = static_cast<WriteReq*>(req->data);
  HttpSession* self = w->session;
  bool to_client = w->to_client;
  uint32_t generation = w->generation;
  size_t len = w->data.size();
  delete w;
  self->onWritten(to_client, generation, len, status);
}

void HttpSession::onWritten(bool to_client, uint32_t generation, size_t len, int status) {
  if (!to_client && generation != up_generation_) {
    return;  // written to an upstream connection given up since
  }
  Side& side = to_client ? client_ : server_side_;
  side.queued -= len;
  if (phase_ == Phase::kClosing || status == UV_ECANCELED) {
    return;
  }
  if (status != 0) {
    if (to_client) {
      termination_ = "CD";
      close();
    } else {
      retryOrFail(uv_strerror(status), false);
    }
    return;
  }
  side.last_active = uv_now(worker_.loop());
  if (to_client && phase_ == Phase::kLingering && client_.queued == 0) {
    finishClient();
    return;
  }
  updateClientReading();
  updateServerReading();
}

// Answers with an error page (when no response has started) and closes the connection once
// it is written.
void HttpSession::sendError(int status, const char* termination) {
  termination_ = termination;
  if (response_head_sent_ || !client_tcp_->isOpen()) {
    close();
    return;
  }
  status_ = status;
  frontend_.counters.countResponse(status);
  if (status >= 500) {
    backend_.counters.countResponse(status);  // produced on behalf of the backend
  }
  logExchange(status);
  closeUpstream();
  releaseServer();
  releaseBackend();
  std::string page = errorResponse(status);
  response_head_sent_ = true;
  keep_client_alive_ = false;
  phase_ = Phase::kLingering;
  in_.clear();
  writeClient(page.data(), page.size());
  if (client_.queued == 0) {
    finishClient();
  }
}

// Ends the client connection politely: shut our write side once everything is written, then
// drain what the client still sends for up to kLingerMs so that the last response is not
// lost to a reset.
void HttpSession::finishClient() {
  if (phase_ == Phase::kClosing || shutdown_sent_) {
    return;
  }
  phase_ = Phase::kLingering;
  if (client_.queued > 0) {
    return;  // onWritten() comes back here
  }
  shutdown_sent_ = true;
  auto* req = new uv_shutdown_t;
  req->data = this;
  if (uv_shutdown(req, client_tcp_->stream(), &HttpSession::onLingerShutdown) != 0) {
    delete req;
    close();
    return;
  }
  in_.clear();
  armTimer(kLingerMs);
  updateClientReading();
  if (client_eof_) {
    close();
  }
}

void HttpSession::onLingerShutdown(uv_shutdown_t* req, int status) {
  auto* self = static_cast<HttpSession*>(req->data);
  delete req;
  if (status != 0 && status != UV_ECANCELED && self->phase_ != Phase::kClosing) {
    self->close();
  }
}

void HttpSession::armTimer(uint64_t ms) {
  if (timer_.isOpen()) {
    uv_timer_start(timer_.get(), &HttpSession::onTimer, ms, 0);
  }
}

void HttpSession::onTimer(uv_timer_t* timer) {
  static_cast<HttpSession*>(timer->data)->onTimeout();
}

void HttpSession::onTimeout() {
  uint64_t now = uv_now(worker_.loop());
  switch (phase_) {
    case Phase::kIdle:
    case Phase::kLingering:
      close();
      break;
    case Phase::kHead:
      frontend_.counters.request_errors.fetch_add(1, std::memory_order_relaxed);
      sendError(408, "cR");
      break;
    case Phase::kQueued:
      sendError(503, "sQ");
      break;
    case Phase::kConnecting:
      retryOrFail("connection timeout", true);
      break;
    case Phase::kExchange:
    case Phase::kTunnel:
      onExchangeTimeout(now);
      break;
    case Phase::kClosing:
      break;
  }
}

// Idle limits while a request is in flight: the server may stay silent for timeout_server
// (504 if it has not answered at all), the client for timeout_client.
void HttpSession::onExchangeTimeout(uint64_t now) {
  uint64_t server_deadline = server_side_.last_active + backend_.cfg().timeout_server.count();
  uint64_t client_deadline = client_.last_active + frontend_.cfg().timeout_client.count();
  bool client_matters = phase_ == Phase::kTunnel || !request_done_ || client_.queued > 0;
  if (now >= server_deadline) {
    if (phase_ == Phase::kExchange && !response_head_sent_) {
      backend_.counters.response_errors.fetch_add(1, std::memory_order_relaxed);
      noteServerError();
      up_reusable_ = false;
      closeUpstream();
      sendError(504, "sH");
      return;
    }
    termination_ = "sD";
    close();
    return;
  }
  if (client_matters && now >= client_deadline) {
    termination_ = "cD";
    close();
    return;
  }
  uint64_t deadline = client_matters ? std::min(server_deadline, client_deadline) : server_deadline;
  armTimer(deadline - now);
}

// One access-log line per request, in the worker's buffer (no lock, no I/O here).
void HttpSession::logExchange(int status) {
  AccessLog::Buffer* log = worker_.accessLog();
  if (log == nullptr) {
    return;
  }
  uint64_t now = uv_now(worker_.loop());
  auto since = [](uint64_t from, uint64_t to) -> int64_t {
    return from == 0 || to == 0 ? -1 : static_cast<int64_t>(to - from);
  };
  AccessLogRecord r;
  r.client_ip = client_ip_;
  r.client_port = client_port_;
  r.accept_date = accept_date_;
  r.frontend = frontend_.name();
  r.backend = backend_.name();
  Server* s = server_;
  if (s != nullptr) {
    r.server = s->name();
    r.srv_conn = static_cast<int>(s->counters.cur_conns.load(std::memory_order_relaxed));
  }
  r.timers.request = since(t_start_, t_head_);
  r.timers.queue = since(t_head_, t_assigned_);
  r.timers.connect = since(t_assigned_, t_connected_);
  r.timers.response = since(t_connected_, t_response_);
  r.timers.active = since(t_start_, now);
  r.status = status;
  r.bytes_sent = bytes_to_client_;
  r.termination_state = termination_ + "--";
  r.feconn = static_cast<int>(frontend_.counters.cur_conns.load(std::memory_order_relaxed));
  r.actconn = r.feconn;
  r.beconn = static_cast<int>(backend_.counters.cur_conns.load(std::memory_order_relaxed));
  r.retries = retries_done_;
  r.redispatched = redispatched_;
  if (!request_.method.empty()) {
    r.request_line = request_.method + " " + request_.target + " HTTP/" +
                     std::to_string(request_.version_major) + "." +
                     std::to_string(request_.version_minor);
  }
  r.request_id = request_id_;
  log->add(r);
}

void HttpSession::checkShutdown() {
  if (up_ != nullptr && phase_ != Phase::kClosing &&
      up_->server->shutdown_epoch.load() != up_->epoch) {
    termination_ = "DD";
    close();
  }
}

void HttpSession::onStopping() {
  stopping_ = true;
  keep_client_alive_ = false;
  if (phase_ == Phase::kIdle) {
    close();
  }
}

void HttpSession::close() {
  if (phase_ == Phase::kClosing) {
    return;
  }
  phase_ = Phase::kClosing;
  closeUpstream();
  releaseServer();
  releaseBackend();
  auto closed = [this] { onHandleClosed(); };
  client_tcp_->close(closed);
  if (timer_.isOpen()) {
    timer_.close(closed);
  }
}

void HttpSession::onHandleClosed() {
  if (--open_handles_ == 0 && phase_ == Phase::kClosing) {
    delete this;
  }
}

}  // namespace tandem
