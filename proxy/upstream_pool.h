// Idle keep-alive connections to servers, kept per worker and per server so that HTTP
// requests reuse them instead of paying a connect each time.
//
// A connection in the pool is watched: if the server closes it or sends anything while it
// is idle, it is dropped at once. One that is taken may still turn out closed by the server
// a moment later (the race every keep-alive pool has); the HTTP session then retries the
// request on a fresh connection.
#pragma once

#include <uv.h>

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "core/model.h"
#include "core/uv_handle.h"

namespace tandem {

class UpstreamPool;

// One connection to a server. Owned by an HTTP session while in use, by the pool while idle;
// freed in its handle's close callback.
struct UpstreamConn {
  UvHandle<uv_tcp_t> tcp;
  uv_connect_t connect_req{};
  Server* server = nullptr;
  uint32_t epoch = 0;  // server->shutdown_epoch when connected
  // &server->addr() when connected: once DNS moves the server, idle connections to its old
  // address are not reused (see core/dns.h).
  const sockaddr_storage* addr = nullptr;
  uint64_t idle_since = 0;          // uv_now() when given to the pool
  uint64_t requests = 0;            // requests sent over it so far
  bool abandoned = false;           // its owner gave up on it: ignore its callbacks
  UpstreamPool* idle_in = nullptr;  // the pool holding it while idle
  void* owner = nullptr;            // the session using it (for its connect callback)
};

class UpstreamPool {
 public:
  // Idle connections kept per server, and how long one may stay idle. Servers usually close
  // idle connections after 5 s or more (Apache's KeepAliveTimeout default is 5 s); closing
  // ours first avoids most reuse races.
  static constexpr size_t kMaxIdlePerServer = 256;
  static constexpr uint64_t kMaxIdleMs = 4000;

  explicit UpstreamPool(uv_loop_t* loop) : loop_(loop) {}
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;
  ~UpstreamPool();

  // The most recently used idle connection to `server`, or nullptr.
  UpstreamConn* take(Server* server);
  // Keeps `conn` for reuse (or closes it when the server's share of the pool is full or the
  // server is not usable any more).
  void give(UpstreamConn* conn);
  // Closes the connections idle for longer than kMaxIdleMs.
  void sweep(uint64_t now);
  void closeAll();
  size_t idleCount() const;

  // Closes a connection that nobody owns any more and frees it in its close callback.
  static void discard(UpstreamConn* conn);

 private:
  static void onAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void onIdleRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  void remove(UpstreamConn* conn);

  uv_loop_t* loop_;
  std::unordered_map<const Server*, std::vector<UpstreamConn*>> idle_;
};

}  // namespace tandem
