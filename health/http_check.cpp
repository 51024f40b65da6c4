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

std::string printable(std::string_view text) {
  std::string out(text.substr(0, kMaxStatusText));
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c < 0x20 || c > 0x7e; }, '?');
  return out;
}

}  // namespace

// Holds the request bytes until libuv is done with them; owned by nobody but libuv's
// callback, which may come after the HttpCheck is gone.
struct HttpCheck::WriteRequest {
  uv_write_t req{};
  std::string bytes;
};

HttpCheck::HttpCheck(uv_loop_t* loop, Server& server, const CheckConfig& cfg,
                     TransitionFn on_transition)
    : TcpCheck(loop, server, cfg, std::move(on_transition)) {}

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
  TcpCheck::startProbe();
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

// From here on, the timeout is a layer-7 one: the server accepted but did not answer.
void HttpCheck::onConnected() {
  step_ = Step::kExchanging;
  socket_->get()->data = this;  // for onAlloc and onRead
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

void HttpCheck::onTimeout() {
  if (step_ == Step::kConnecting) {
    TcpCheck::onTimeout();
    return;
  }
  endProbe(CheckResult{false, "L7TOUT", "Layer7 timeout", elapsedMs()});
}

}  // namespace tandem
