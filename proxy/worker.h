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

#include "core/model.h"
#include "core/uv_handle.h"
#include "proxy/balancer.h"
#include "proxy/buffer_pool.h"
#include "proxy/listener.h"

namespace tandem {

class TcpSession;

class Worker {
 public:
  // `listen_fds[i]` are the bound sockets of runtime.frontends()[i], one per listen address.
  Worker(Runtime& runtime, int index, std::vector<std::vector<int>> listen_fds);
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
  void addSession(TcpSession* s);
  void removeSession(TcpSession* s, Frontend& frontend);
  int index() const { return index_; }

 private:
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
  UvHandle<uv_async_t> async_;
  UvHandle<uv_timer_t> queue_tick_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unordered_map<const Backend*, std::unique_ptr<Balancer>> balancers_;
  TcpSession* sessions_ = nullptr;  // intrusive list head
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
