// A few threads for work that blocks (libmysqlclient calls), so that it never runs on an
// event loop. Each job runs on a pool thread and returns a completion, which runs on the
// loop that owns the pool:
//
//   BlockingPool pool(control_loop);            // 4 threads
//   pool.post([request] {                       // on a pool thread: may block
//     Outcome outcome = talkToServer(request);
//     return [outcome, ticket] { ... };          // on the loop thread
//   });
//   ...
//   pool.stop();                                // or let the destructor do it
//
// Completions cross to the loop through a uv_async_t. libuv merges wake-ups, so one
// callback runs every completion queued so far, in the order the jobs finished.
//
// Lifetime, the part that must never go wrong:
//   1. stop() (loop thread) refuses new jobs, drops the queued ones, lets the running ones
//      finish, joins the threads and closes the async handle. It blocks for as long as the
//      slowest running job, which the job's own timeouts must bound (the MySQL checks set
//      connect, read and write timeouts).
//   2. A job that finishes after stop() began has its completion destroyed on its pool
//      thread, never run: what a completion captures must be safe to destroy there (plain
//      values and shared_ptrs are).
//   3. A completion must not assume that the object that posted the job still lives: it
//      carries a shared token that the owner clears when it stops waiting (see MysqlCheck).
//   4. The pool may be destroyed from inside one of its own completions; the completions
//      still queued behind it are then dropped.
// The async handle belongs to the loop, so stop() (or the destructor) must run on the loop
// thread before the loop is closed.
#pragma once

#include <uv.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/uv_handle.h"

namespace tandem {

class BlockingPool {
 public:
  // Runs on the loop thread.
  using Completion = std::function<void()>;
  // Runs on a pool thread; may return an empty Completion when there is nothing to report.
  using Job = std::function<Completion()>;
  // Per-thread set-up and tear-down, each run on the pool thread itself (libmysqlclient
  // wants mysql_thread_init()/mysql_thread_end() there).
  struct ThreadHooks {
    std::function<void()> on_start;
    std::function<void()> on_exit;
  };

  static constexpr int kDefaultThreads = 4;

  explicit BlockingPool(uv_loop_t* loop, int threads = kDefaultThreads, ThreadHooks hooks = {});
  ~BlockingPool();
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // Queues `job`; returns false (and drops it) once stop() has begun. Thread-safe.
  bool post(Job job);
  // See the lifetime steps above. Later calls do nothing.
  void stop();

  int threadCount() const { return static_cast<int>(threads_.size()); }
  // Jobs queued and not yet taken by a thread.
  size_t queuedJobs() const;

 private:
  void startThreads(int count);
  void threadMain();
  bool takeJob(Job* job);
  void deliver(Completion completion);
  static void onAsync(uv_async_t* async);
  void runCompletions();

  uv_loop_t* loop_;
  ThreadHooks hooks_;
  UvHandle<uv_async_t> async_;
  std::vector<std::thread> threads_;
  bool stopped_ = false;  // loop thread only: stop() has run

  mutable std::mutex mutex_;
  std::condition_variable wake_;         // a job was queued, or the pool is stopping
  std::deque<Job> jobs_;                 // guarded
  std::vector<Completion> completions_;  // guarded
  bool stopping_ = false;                // guarded: no job is taken, no completion sent

  // Set while runCompletions() runs, so that a destructor called from a completion can
  // tell it to stop touching members.
  bool* destroyed_ = nullptr;
};

}  // namespace tandem
