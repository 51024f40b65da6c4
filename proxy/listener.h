// Listening sockets. Each worker has its own socket per frontend address, bound with
// SO_REUSEPORT, so the kernel spreads new connections over the workers and no accept lock
// is shared between threads.
//
// Sockets are bound by the main thread before any worker starts (a bind error stops start-up
// with a clear message) and handed to the worker, which opens them on its own loop.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/address.h"
#include "core/model.h"
#include "core/uv_handle.h"

namespace tandem {

// Creates, binds and listens on one SO_REUSEPORT socket. Returns the fd, or -1 with *error
// set ("127.0.0.1:8090: Address already in use").
int bindListenSocket(const HostPort& address, std::string* error);

// One listening socket on one worker's loop. When its frontend is at maxconn it stops
// accepting: the pending client waits, connected, in the kernel's accept queue (HAProxy's
// behaviour), and resume() takes it once a slot frees.
class Listener {
 public:
  // Called with a freshly accepted, opened client handle; takes ownership.
  using AcceptFn = std::function<void(Listener&, std::unique_ptr<UvHandle<uv_tcp_t>>)>;

  Listener(uv_loop_t* loop, Frontend& frontend, int fd, AcceptFn on_accept);
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Starts listening; returns a libuv error code (0 on success).
  int start();
  // Accepts the client held back by maxconn, if any and if a slot is now free.
  void resume();
  bool paused() const { return paused_; }
  void close() { handle_.close(); }
  Frontend& frontend() const { return frontend_; }

 private:
  static void onConnection(uv_stream_t* server, int status);
  bool reserveSlot();
  void acceptOne();

  uv_loop_t* loop_;
  Frontend& frontend_;
  int fd_;
  AcceptFn on_accept_;
  UvHandle<uv_tcp_t> handle_;
  bool paused_ = false;
};

}  // namespace tandem
