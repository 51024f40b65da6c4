#include "proxy/upstream_pool.h"

#include <algorithm>

namespace tandem {

namespace {

// What an idle connection may read: nothing is expected, so a small shared buffer does.
char g_discard[256];

}  // namespace

UpstreamPool::~UpstreamPool() {
  closeAll();
}

UpstreamConn* UpstreamPool::take(Server* server) {
  auto it = idle_.find(server);
  if (it == idle_.end()) {
    return nullptr;
  }
  while (!it->second.empty()) {
    UpstreamConn* conn = it->second.back();
    it->second.pop_back();
    conn->idle_in = nullptr;
    if (conn->tcp.isOpen() && conn->epoch == server->shutdown_epoch.load() &&
        conn->addr == &server->addr()) {
      uv_read_stop(conn->tcp.stream());
      return conn;
    }
    discard(conn);
  }
  return nullptr;
}

void UpstreamPool::give(UpstreamConn* conn) {
  std::vector<UpstreamConn*>& list = idle_[conn->server];
  if (!conn->tcp.isOpen() || list.size() >= kMaxIdlePerServer || !conn->server->usable() ||
      conn->epoch != conn->server->shutdown_epoch.load() || conn->addr != &conn->server->addr()) {
    discard(conn);
    return;
  }
  conn->idle_since = uv_now(loop_);
  conn->idle_in = this;
  conn->tcp.get()->data = conn;
  if (uv_read_start(conn->tcp.stream(), &UpstreamPool::onAlloc, &UpstreamPool::onIdleRead) != 0) {
    discard(conn);
    return;
  }
  list.push_back(conn);
}

void UpstreamPool::onAlloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  buf->base = g_discard;
  buf->len = sizeof(g_discard);
}

// An idle connection that becomes readable was closed by the server (EOF or reset) or
// talks out of turn: either way it can no longer carry a request.
void UpstreamPool::onIdleRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
  if (nread == 0) {
    return;
  }
  auto* conn = static_cast<UpstreamConn*>(stream->data);
  conn->idle_in->remove(conn);
  discard(conn);
}

void UpstreamPool::remove(UpstreamConn* conn) {
  std::vector<UpstreamConn*>& list = idle_[conn->server];
  list.erase(std::remove(list.begin(), list.end(), conn), list.end());
  conn->idle_in = nullptr;
}

void UpstreamPool::sweep(uint64_t now) {
  for (auto& [server, list] : idle_) {
    // The list grows at the back, so its front is the oldest: usually nothing to do.
    if (list.empty() || now - list.front()->idle_since <= kMaxIdleMs) {
      continue;
    }
    std::vector<UpstreamConn*> kept;
    for (UpstreamConn* conn : list) {
      if (now - conn->idle_since > kMaxIdleMs) {
        conn->idle_in = nullptr;
        discard(conn);
      } else {
        kept.push_back(conn);
      }
    }
    list.swap(kept);
  }
}

void UpstreamPool::closeAll() {
  for (auto& [server, list] : idle_) {
    for (UpstreamConn* conn : list) {
      conn->idle_in = nullptr;
      discard(conn);
    }
  }
  idle_.clear();
}

size_t UpstreamPool::idleCount() const {
  size_t n = 0;
  for (const auto& [server, list] : idle_) {
    n += list.size();
  }
  return n;
}

void UpstreamPool::discard(UpstreamConn* conn) {
  conn->abandoned = true;
  if (!conn->tcp.isOpen()) {
    if (conn->tcp.state() != UvHandle<uv_tcp_t>::State::kClosing) {
      delete conn;
    }
    return;
  }
  conn->tcp.close([conn] { delete conn; });
}

}  // namespace tandem
