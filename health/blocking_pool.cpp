#include "health/blocking_pool.h"

#include <pthread.h>

#include <system_error>
#include <utility>

#include "core/log.h"

namespace tandem {

BlockingPool::BlockingPool(uv_loop_t* loop, int threads, ThreadHooks hooks)
    : loop_(loop), hooks_(std::move(hooks)) {
  async_.init(uv_async_init, loop_, &BlockingPool::onAsync);
  async_.get()->data = this;
  startThreads(threads);
}

BlockingPool::~BlockingPool() {
  if (destroyed_ != nullptr) {
    *destroyed_ = true;
  }
  stop();
}

// A pool with fewer threads than asked still works, only with less parallelism; one with none
// leaves every job queued, which its owner's timeouts then report.
void BlockingPool::startThreads(int count) {
  for (int i = 0; i < count; ++i) {
    try {
      threads_.emplace_back([this] { threadMain(); });
    } catch (const std::system_error& e) {
      TLOG_ERROR("blocking pool: started %d of %d threads: %s", i, count, e.what());
      return;
    }
    pthread_setname_np(threads_.back().native_handle(), "tandem-blocking");
  }
}

bool BlockingPool::post(Job job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) {
      return false;
    }
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

void BlockingPool::stop() {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  // Destroyed at the end of this function, outside the lock: what they capture may post.
  std::deque<Job> dropped_jobs;
  std::vector<Completion> dropped_completions;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    dropped_jobs.swap(jobs_);
    dropped_completions.swap(completions_);
  }
  wake_.notify_all();
  for (std::thread& thread : threads_) {
    thread.join();
  }
  threads_.clear();
  // After the joins no thread can send on the handle, so it may be closed.
  async_.close();
}

size_t BlockingPool::queuedJobs() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return jobs_.size();
}

void BlockingPool::threadMain() {
  if (hooks_.on_start) {
    hooks_.on_start();
  }
  Job job;
  while (takeJob(&job)) {
    Completion completion = job();
    job = nullptr;  // what the job captured goes now, not when the next one comes
    deliver(std::move(completion));
  }
  if (hooks_.on_exit) {
    hooks_.on_exit();
  }
}

// Waits for a job; false once the pool is stopping (queued jobs are dropped by stop()).
bool BlockingPool::takeJob(Job* job) {
  std::unique_lock<std::mutex> lock(mutex_);
  wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
  if (stopping_) {
    return false;
  }
  *job = std::move(jobs_.front());
  jobs_.pop_front();
  return true;
}

// The send happens under the mutex: stop() sets stopping_ under the same mutex and joins
// every thread before it closes the handle, so no send reaches a closing handle.
void BlockingPool::deliver(Completion completion) {
  if (!completion) {
    return;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopping_) {
    lock.unlock();  // destroyed here, on this thread, outside the lock (step 2)
    return;
  }
  completions_.push_back(std::move(completion));
  uv_async_send(async_.get());
}

void BlockingPool::onAsync(uv_async_t* async) {
  static_cast<BlockingPool*>(async->data)->runCompletions();
}

void BlockingPool::runCompletions() {
  std::vector<Completion> ready;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ready.swap(completions_);
  }
  bool destroyed = false;
  destroyed_ = &destroyed;
  for (Completion& completion : ready) {
    completion();
    if (destroyed) {
      return;  // `this` is gone; `ready` still frees the rest
    }
  }
  destroyed_ = nullptr;
}

}  // namespace tandem
