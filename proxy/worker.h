// A worker thread: one libuv loop, its own listening sockets (SO_REUSEPORT), its own
// balancer instances and every session it accepted. Nothing here is shared with other
// workers except the runtime model's atomics, so the data path takes no lock.
//
// Other threads talk to a worker only through its async handle: requestStop(),
// requestForceClose() and requestShutdownCheck() set a flag and wake the loop.
#pragma once

#include <uv.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/access_log.h"
#include "core/model.h"
#include "core/uv_handle.h"
#include "proxy/balancer.h"
#include "proxy/buffer_pool.h"
#include "proxy/http_message.h"
#include "proxy/listener.h"
#include "proxy/upstream_pool.h"

namespace tandem {

class Session;

class Worker {
 public:
  // `listen_fds[i]` are the bound sockets of runtime.frontends()[i], one per listen address.
  // `access_log` may be null (no HTTP frontend, or tests); it must outlive the worker.
  Worker(Runtime& runtime, int index, std::vector<std::vector<int>> listen_fds,
         AccessLog* access_log = nullptr);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  void start();  // spawns the thread
  void join();
  bool finished() const { return finished_.load(); }

  // Thread-safe requests.
  void requestStop();           // close listeners; exit once the last session ends
  void requestForceClose();     // close every session now (hard stop)
  void requestShutdownCheck();  // close sessions whose server's shutdown_epoch moved

  // For sessions, on the worker's own thread.
  uv_loop_t* loop() { return &loop_; }
  BufferPool& pool() { return pool_; }
  Balancer& balancerFor(Backend& backend);
  void addSession(Session* s);
  void removeSession(Session* s, Frontend& frontend);
  UpstreamPool& upstreams() { return upstreams_; }
  int index() const { return index_; }
  Runtime& runtime() { return runtime_; }
  AccessLog::Buffer* accessLog() { return access_log_.get(); }
  RequestIdGenerator& requestIds() { return request_ids_; }

 private:
  static uv_loop_t* initLoop(uv_loop_t* loop);
  void run();
  void openListeners();
  static void onAsync(uv_async_t* async);
  static void onQueueTick(uv_timer_t* timer);
  void handleRequests();
  void retryWaiting();
  void maybeFinish();
  void wake();

  Runtime& runtime_;
  int index_;
  std::vector<std::vector<int>> listen_fds_;
  uv_loop_t loop_{};
  std::thread thread_;
  BufferPool pool_;
  UpstreamPool upstreams_;
  std::unique_ptr<AccessLog::Buffer> access_log_;
  RequestIdGenerator request_ids_;
  uint64_t ticks_ = 0;
  UvHandle<uv_async_t> async_;
  UvHandle<uv_timer_t> queue_tick_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unordered_map<const Backend*, std::unique_ptr<Balancer>> balancers_;
  Session* sessions_ = nullptr;  // intrusive list head
  size_t session_count_ = 0;
  bool stopping_ = false;

  // Guards async_ against a request arriving while the worker closes it on the way out.
  // Taken only for control requests, never on the data path.
  std::mutex async_mutex_;
  bool async_closed_ = false;

  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> force_requested_{false};
  std::atomic<bool> shutdown_check_requested_{false};
  std::atomic<bool> finished_{false};
};

}  // namespace tandem
