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
#pragma once

#include <uv.h>

#include <functional>
#include <optional>

#include "core/uv_handle.h"
#include "health/check.h"

namespace tandem {

class TcpCheck final : public Check {
 public:
  TcpCheck(uv_loop_t* loop, Server& server, const CheckConfig& cfg, TransitionFn on_transition);
  ~TcpCheck() override;

 protected:
  void startProbe() override;
  void closeProbe(std::function<void()> on_closed) override;

 private:
  enum class Step { kIdle, kConnecting, kClosingSocket };
  struct ConnectRequest;

  int connect();
  static void onConnect(uv_connect_t* req, int status);
  void onConnected();
  void onConnectFailed(int status);
  static void onTimer(uv_timer_t* timer);
  void onTimeout();
  void endProbe(CheckResult result);
  void detachConnect();
  void onSocketClosed();
  void onHandleClosed();

  Step step_ = Step::kIdle;
  UvHandle<uv_timer_t> timeout_timer_;
  std::optional<UvHandle<uv_tcp_t>> socket_;  // a fresh one per probe
  ConnectRequest* connect_ = nullptr;         // the connect we still wait for, if any
  CheckResult result_;                        // held while the socket closes
  bool closing_ = false;
  int handles_left_ = 0;
  std::function<void()> on_closed_;
};

}  // namespace tandem
