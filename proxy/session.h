// What a worker knows of any client session, TCP or HTTP: the list links and the few
// requests it makes of all of them. A session deletes itself once its handles are closed.
#pragma once

namespace tandem {

class Session {
 public:
  Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  virtual void start() = 0;
  // Closes everything now; the session frees itself when libuv has released its handles.
  virtual void close() = 0;
  // Closes the session if its server's shutdown_epoch moved (on_marked_down).
  virtual void checkShutdown() = 0;
  // A server slot may have freed: a session waiting for one tries to pick again.
  virtual void retryQueued() {}
  virtual bool queued() const { return false; }
  // Graceful stop: an idle keep-alive connection closes now, a busy one after its
  // current exchange. A TCP tunnel simply goes on until it ends.
  virtual void onStopping() {}

  // Intrusive list links, owned by the worker's session list.
  Session* prev = nullptr;
  Session* next = nullptr;

 protected:
  virtual ~Session() = default;
};

}  // namespace tandem
