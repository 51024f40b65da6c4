// A layer-4 check: the server is healthy when a TCP connection to its address completes
// within the check timeout. The connection is closed at once; nothing is sent.
//
// One probe, each step a method:
//   startProbe()        open a socket, connect to server.addr(), arm the `timeout` timer
//   onConnected()       L4OK   "Layer4 check passed"
//   onConnectFailed()   L4CON  with libuv's text ("connection refused", "network unreachable")
//                       or SOCKERR when no connection could even be attempted (no free
//                       descriptor, no local address, an address that did not resolve)
//   onTimeout()         L4TOUT "connection timeout"
//   endProbe()          keep the result, close the socket; onSocketClosed() hands the
//                       result to Check::finishProbe()
//
// A connect abandoned by a timeout or by close() still calls back later with UV_ECANCELED,
// possibly after this object is gone: the request lives on the heap with a pointer back to
// its owner, cleared when the owner stops waiting for it.
//
// Checks that talk over the connection (HttpCheck) derive from this one: it owns the
// socket, the connect, the timeout and the close sequence; they override onConnected() to
// go on (setting step_ to kExchanging) and onTimeout() for their own wording, and end with
// endProbe() like every step here.
#pragma once

#include <uv.h>

#include <functional>
#include <optional>

#include "core/uv_handle.h"
#include "health/check.h"

namespace tandem {

class TcpCheck : public Check {
 public:
  TcpCheck(uv_loop_t* loop, Server& server, const CheckConfig& cfg, TransitionFn on_transition);
  ~TcpCheck() override;

 protected:
  enum class Step { kIdle, kConnecting, kExchanging, kClosingSocket };

  void startProbe() override;
  void closeProbe(std::function<void()> on_closed) override;
  virtual void onConnected();  // L4OK here; a subclass starts its exchange
  virtual void onTimeout();    // L4TOUT here; a subclass may report L7TOUT once exchanging
  void endProbe(CheckResult result);

  Step step_ = Step::kIdle;
  std::optional<UvHandle<uv_tcp_t>> socket_;  // a fresh one per probe

 private:
  struct ConnectRequest;

  int connect();
  static void onConnect(uv_connect_t* req, int status);
  void onConnectFailed(int status);
  static void onTimer(uv_timer_t* timer);
  void detachConnect();
  void onSocketClosed();
  void onHandleClosed();

  UvHandle<uv_timer_t> timeout_timer_;
  ConnectRequest* connect_ = nullptr;  // the connect we still wait for, if any
  CheckResult result_;                 // held while the socket closes
  bool closing_ = false;
  int handles_left_ = 0;
  std::function<void()> on_closed_;
};

}  // namespace tandem
