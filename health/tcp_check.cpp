#include "health/tcp_check.h"

#include <utility>

namespace tandem {

namespace {

// Errors that say the check could not even try (HAProxy's SOCKERR) rather than that the
// server did not answer (L4CON): resources and local addressing. EINVAL is what an address
// that never resolved (AF_UNSPEC) gives.
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

}  // namespace

// Lives until libuv calls onConnect, which may be after the TcpCheck is gone (owner null).
struct TcpCheck::ConnectRequest {
  uv_connect_t req{};
  TcpCheck* owner = nullptr;
};

TcpCheck::TcpCheck(uv_loop_t* loop, Server& server, const CheckConfig& cfg,
                   TransitionFn on_transition)
    : Check(loop, server, cfg, std::move(on_transition)) {
  timeout_timer_.init(uv_timer_init, loop);
  timeout_timer_.get()->data = this;
}

// The handles close themselves when their owners are destroyed; only the connect request
// must learn that nobody waits for it any more.
TcpCheck::~TcpCheck() {
  detachConnect();
}

void TcpCheck::startProbe() {
  socket_.emplace();
  int rc = socket_->init(uv_tcp_init, loop());
  if (rc == 0) {
    rc = connect();
  }
  if (rc != 0) {
    onConnectFailed(rc);
    return;
  }
  step_ = Step::kConnecting;
  uv_timer_start(timeout_timer_.get(), &TcpCheck::onTimer, cfg().timeout.count(), 0);
}

int TcpCheck::connect() {
  auto* request = new ConnectRequest;
  request->owner = this;
  request->req.data = request;
  const auto* addr = reinterpret_cast<const sockaddr*>(&server().addr());
  int rc = uv_tcp_connect(&request->req, socket_->get(), addr, &TcpCheck::onConnect);
  if (rc != 0) {
    delete request;  // libuv keeps no reference to a request it refused
    return rc;
  }
  connect_ = request;
  return 0;
}

void TcpCheck::onConnect(uv_connect_t* req, int status) {
  auto* request = static_cast<ConnectRequest*>(req->data);
  TcpCheck* owner = request->owner;
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

void TcpCheck::onConnected() {
  endProbe(CheckResult{true, "L4OK", "Layer4 check passed", elapsedMs()});
}

void TcpCheck::onConnectFailed(int status) {
  const char* check_status = isSocketError(status) ? "SOCKERR" : "L4CON";
  endProbe(CheckResult{false, check_status, uv_strerror(status), elapsedMs()});
}

void TcpCheck::onTimer(uv_timer_t* timer) {
  static_cast<TcpCheck*>(timer->data)->onTimeout();
}

void TcpCheck::onTimeout() {
  endProbe(CheckResult{false, "L4TOUT", "connection timeout", elapsedMs()});
}

// The result waits for the socket's close callback: the next probe (started from
// finishProbe) then always finds the previous socket gone.
void TcpCheck::endProbe(CheckResult result) {
  uv_timer_stop(timeout_timer_.get());
  detachConnect();
  result_ = std::move(result);
  step_ = Step::kClosingSocket;
  socket_->close([this] { onSocketClosed(); });
}

void TcpCheck::detachConnect() {
  if (connect_ != nullptr) {
    connect_->owner = nullptr;
    connect_ = nullptr;
  }
}

void TcpCheck::onSocketClosed() {
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
void TcpCheck::closeProbe(std::function<void()> on_closed) {
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

void TcpCheck::onHandleClosed() {
  if (--handles_left_ > 0) {
    return;
  }
  auto done = std::move(on_closed_);
  if (done) {
    done();
  }
}

}  // namespace tandem
