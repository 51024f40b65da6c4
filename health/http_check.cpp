#include "health/http_check.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "core/address.h"

namespace tandem {

namespace {

// The reason phrase ends up in log lines and on the admin page: a server may send anything
// there, so only this much of it is kept, in printable ASCII.
constexpr size_t kMaxStatusText = 64;

// Errors that say the check could not even try (HAProxy's SOCKERR) rather than that the
// server did not answer (L4CON); the same split as TcpCheck's.
bool isSocketError(int err) {
  switch (err) {
    case UV_EMFILE:
    case UV_ENFILE:
    case UV_ENOBUFS:
    case UV_ENOMEM:
    case UV_EADDRINUSE:
    case UV_EADDRNOTAVAIL:
    case UV_EAFNOSUPPORT:
    case UV_EINVAL:
      return true;
    default:
      return false;
  }
}

std::string printable(std::string_view text) {
  std::string out(text.substr(0, kMaxStatusText));
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c < 0x20 || c > 0x7e; }, '?');
  return out;
}

}  // namespace

// Lives until libuv calls onConnect, which may be after the HttpCheck is gone (owner null).
struct HttpCheck::ConnectRequest {
  uv_connect_t req{};
  HttpCheck* owner = nullptr;
};

// Holds the request bytes until libuv is done with them; owned by nobody but libuv's
// callback, which may come after the HttpCheck is gone.
struct HttpCheck::WriteRequest {
  uv_write_t req{};
  std::string bytes;
};

HttpCheck::HttpCheck(uv_loop_t* loop, Server& server, const CheckConfig& cfg,
                     TransitionFn on_transition)
    : Check(loop, server, cfg, std::move(on_transition)) {
  timeout_timer_.init(uv_timer_init, loop);
  timeout_timer_.get()->data = this;
}

// The handles close themselves when their owners are destroyed; only the connect request
// must learn that nobody waits for it any more.
HttpCheck::~HttpCheck() {
  detachConnect();
}

std::string HttpCheck::buildRequest(const CheckConfig& cfg, const Server& server) {
  std::string host = cfg.host;
  if (host.empty()) {
    host = formatSockaddr(reinterpret_cast<const sockaddr*>(&server.addr()));
  }
  return cfg.method + " " + cfg.path + " HTTP/1.1\r\nHost: " + host +
         "\r\nUser-Agent: tandem-check\r\nConnection: close\r\n\r\n";
}

bool HttpCheck::expects(const CheckConfig& cfg, int status) {
  return std::any_of(cfg.expect.begin(), cfg.expect.end(), [status](const StatusRange& range) {
    return status >= range.low && status <= range.high;
  });
}

void HttpCheck::startProbe() {
  resetResponse();
  socket_.emplace();
  int rc = socket_->init(uv_tcp_init, loop());
  if (rc == 0) {
    socket_->get()->data = this;  // for onAlloc and onRead
    rc = connect();
  }
  if (rc != 0) {
    onConnectFailed(rc);
    return;
  }
  step_ = Step::kConnecting;
  uv_timer_start(timeout_timer_.get(), &HttpCheck::onTimer, cfg().timeout.count(), 0);
}

// A fresh parser per probe, as each connection carries exactly one response. llhttp keeps
// a pointer to the settings, hence their static storage.
void HttpCheck::resetResponse() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_status = &HttpCheck::onStatusText;
    s.on_headers_complete = &HttpCheck::onHeadersComplete;
    return s;
  }();
  llhttp_init(&parser_, HTTP_RESPONSE, &settings);
  parser_.data = this;
  head_bytes_ = 0;
  status_text_.clear();
  head_done_ = false;
}

int HttpCheck::connect() {
  auto* request = new ConnectRequest;
  request->owner = this;
  request->req.data = request;
  const auto* addr = reinterpret_cast<const sockaddr*>(&server().addr());
  int rc = uv_tcp_connect(&request->req, socket_->get(), addr, &HttpCheck::onConnect);
  if (rc != 0) {
    delete request;  // libuv keeps no reference to a request it refused
    return rc;
  }
  connect_ = request;
  return 0;
}

void HttpCheck::onConnect(uv_connect_t* req, int status) {
  auto* request = static_cast<ConnectRequest*>(req->data);
  HttpCheck* owner = request->owner;
  delete request;
  if (owner == nullptr) {
    return;  // abandoned (timeout, close, or the check was destroyed): UV_ECANCELED
  }
  owner->connect_ = nullptr;
  if (status == 0) {
    owner->onConnected();
  } else {
    owner->onConnectFailed(status);
  }
}

void HttpCheck::onConnectFailed(int status) {
  const char* check_status = isSocketError(status) ? "SOCKERR" : "L4CON";
  endProbe(CheckResult{false, check_status, uv_strerror(status), elapsedMs()});
}

// From here on, the timeout is a layer-7 one: the server accepted but did not answer.
void HttpCheck::onConnected() {
  step_ = Step::kExchanging;
  int rc = sendRequest();
  if (rc == 0) {
    rc = uv_read_start(socket_->stream(), &HttpCheck::onAlloc, &HttpCheck::onRead);
  }
  if (rc != 0) {
    onIoError(rc);
  }
}

int HttpCheck::sendRequest() {
  auto* request = new WriteRequest;
  request->bytes = buildRequest(cfg(), server());
  request->req.data = request;
  uv_buf_t buf = uv_buf_init(request->bytes.data(), static_cast<unsigned>(request->bytes.size()));
  int rc = uv_write(&request->req, socket_->stream(), &buf, 1, &HttpCheck::onWrite);
  if (rc != 0) {
    delete request;
  }
  return rc;
}

// A failed write is left for the read side to report: a server may answer and close
// without reading the request (its answer still counts), and otherwise the read ends in an
// error, an end of stream or the timeout. So the callback only frees the request, and it
// may safely come (with UV_ECANCELED) after the HttpCheck is gone.
void HttpCheck::onWrite(uv_write_t* req, int /*status*/) {
  delete static_cast<WriteRequest*>(req->data);
}

// One read at a time on the loop thread: a single buffer per check is enough.
void HttpCheck::onAlloc(uv_handle_t* handle, size_t /*suggested*/, uv_buf_t* buf) {
  auto* self = static_cast<HttpCheck*>(handle->data);
  *buf = uv_buf_init(self->read_buffer_.data(), self->read_buffer_.size());
}

void HttpCheck::onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<HttpCheck*>(stream->data);
  if (nread > 0) {
    self->onResponseBytes(buf->base, static_cast<size_t>(nread));
  } else if (nread == UV_EOF) {
    self->onResponseInvalid();  // the head would have ended the probe already
  } else if (nread < 0) {
    self->onIoError(static_cast<int>(nread));
  }
}

// llhttp pauses at the end of the head (onHeadersComplete), so the body, if any, is never
// parsed: framing errors in it are not the health check's business.
void HttpCheck::onResponseBytes(const char* data, size_t len) {
  head_bytes_ += len;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  if (head_done_) {
    onHead();
  } else if (err != HPE_OK || head_bytes_ > kMaxHeadBytes) {
    onResponseInvalid();
  }
}

void HttpCheck::onHead() {
  int status = llhttp_get_status_code(&parser_);
  std::string text = std::to_string(status);
  if (!status_text_.empty()) {
    text += " " + printable(status_text_);
  }
  if (expects(cfg(), status)) {
    endProbe(CheckResult{true, "L7OK", "Layer7 check passed: " + text, elapsedMs()});
  } else {
    endProbe(CheckResult{false, "L7STS", "Layer7 wrong status: " + text, elapsedMs()});
  }
}

void HttpCheck::onResponseInvalid() {
  endProbe(CheckResult{false, "L7RSP", "Layer7 invalid response", elapsedMs()});
}

void HttpCheck::onIoError(int status) {
  endProbe(CheckResult{false, "SOCKERR", uv_strerror(status), elapsedMs()});
}

// The reason phrase may arrive split over several reads.
int HttpCheck::onStatusText(llhttp_t* parser, const char* at, size_t len) {
  auto* self = static_cast<HttpCheck*>(parser->data);
  size_t room = kMaxStatusText - std::min(self->status_text_.size(), kMaxStatusText);
  self->status_text_.append(at, std::min(len, room));
  return 0;
}

int HttpCheck::onHeadersComplete(llhttp_t* parser) {
  static_cast<HttpCheck*>(parser->data)->head_done_ = true;
  return HPE_PAUSED;
}

void HttpCheck::onTimer(uv_timer_t* timer) {
  static_cast<HttpCheck*>(timer->data)->onTimeout();
}

void HttpCheck::onTimeout() {
  if (step_ == Step::kConnecting) {
    endProbe(CheckResult{false, "L4TOUT", "connection timeout", elapsedMs()});
    return;
  }
  endProbe(CheckResult{false, "L7TOUT", "Layer7 timeout", elapsedMs()});
}

// The result waits for the socket's close callback: the next probe (started from
// finishProbe) then always finds the previous socket gone. Closing also stops reading, so
// no read callback follows this one.
void HttpCheck::endProbe(CheckResult result) {
  uv_timer_stop(timeout_timer_.get());
  detachConnect();
  result_ = std::move(result);
  step_ = Step::kClosingSocket;
  socket_->close([this] { onSocketClosed(); });
}

void HttpCheck::detachConnect() {
  if (connect_ != nullptr) {
    connect_->owner = nullptr;
    connect_ = nullptr;
  }
}

void HttpCheck::onSocketClosed() {
  step_ = Step::kIdle;
  if (closing_) {
    onHandleClosed();
    return;
  }
  finishProbe(std::move(result_));
}

// Counts the timeout timer and a socket still open or closing; a socket in kClosingSocket
// already has onSocketClosed() coming, which reports to onHandleClosed() once closing_ is
// set. One extra count is held until everything is under way.
void HttpCheck::closeProbe(std::function<void()> on_closed) {
  closing_ = true;
  on_closed_ = std::move(on_closed);
  detachConnect();
  handles_left_ = 2;
  timeout_timer_.close([this] { onHandleClosed(); });
  if (step_ == Step::kConnecting || step_ == Step::kExchanging) {
    step_ = Step::kClosingSocket;
    socket_->close([this] { onSocketClosed(); });
  }
  if (step_ == Step::kClosingSocket) {
    ++handles_left_;
  }
  onHandleClosed();
}

void HttpCheck::onHandleClosed() {
  if (--handles_left_ > 0) {
    return;
  }
  auto done = std::move(on_closed_);
  if (done) {
    done();
  }
}

}  // namespace tandem
