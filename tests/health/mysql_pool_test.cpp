// The blocking pool that MySQL checks run on: jobs on its threads, completions on the loop,
// and a stop that drops what waits, lets what runs finish and never calls into a target
// that is gone. Run under -DTANDEM_SANITIZE=ON to make a use-after-free loud.
#include <gtest/gtest.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/uv_handle.h"
#include "health/blocking_pool.h"

namespace tandem {
namespace {

using std::chrono::milliseconds;

// A gate the test opens from outside: jobs block on it, as a libmysqlclient call blocks on
// a silent server.
class Gate {
 public:
  void open() {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  // Returns false if the gate stayed shut for `limit`.
  bool wait(milliseconds limit = milliseconds(5000)) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, limit, [this] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
};

class MysqlPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    tick_.init(uv_timer_init, &loop_);
    tick_.get()->data = this;
  }

  // Every pool must be gone by now: its async handle would keep the loop from closing.
  void TearDown() override {
    tick_.close();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle is still open";
  }

  // Runs the loop until `done` holds or 5 s pass.
  bool runUntil(const std::function<bool()>& done) {
    done_ = done;
    deadline_ = uv_now(&loop_) + 5000;
    uv_timer_start(tick_.get(), &MysqlPoolTest::onTick, 1, 1);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_timer_stop(tick_.get());
    return done_();
  }

  static void onTick(uv_timer_t* timer) {
    auto* self = static_cast<MysqlPoolTest*>(timer->data);
    if (self->done_() || uv_now(timer->loop) >= self->deadline_) {
      uv_stop(timer->loop);
    }
  }

  uv_loop_t loop_{};
  UvHandle<uv_timer_t> tick_;
  std::function<bool()> done_;
  uint64_t deadline_ = 0;
};

TEST_F(MysqlPoolTest, JobsRunOffTheLoopAndCompletionsOnIt) {
  BlockingPool pool(&loop_, 2);
  EXPECT_EQ(pool.threadCount(), 2);
  std::thread::id loop_thread = std::this_thread::get_id();
  std::vector<std::thread::id> job_threads;
  std::vector<std::thread::id> completion_threads;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(pool.post([&]() -> BlockingPool::Completion {
      std::thread::id me = std::this_thread::get_id();
      return [&, me] {
        job_threads.push_back(me);
        completion_threads.push_back(std::this_thread::get_id());
      };
    }));
  }
  ASSERT_TRUE(runUntil([&] { return completion_threads.size() == 3; }));
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(job_threads[i], loop_thread);
    EXPECT_EQ(completion_threads[i], loop_thread);
  }
}

// Two jobs that each wait for the other can only both finish when they run at the same
// time: one stuck server must not hold up the check of another.
TEST_F(MysqlPoolTest, RunsJobsInParallel) {
  BlockingPool pool(&loop_, 2);
  std::atomic<int> inside{0};
  std::atomic<int> met{0};
  auto job = [&]() -> BlockingPool::Completion {
    ++inside;
    auto limit = std::chrono::steady_clock::now() + milliseconds(5000);
    while (inside.load() < 2 && std::chrono::steady_clock::now() < limit) {
      std::this_thread::sleep_for(milliseconds(1));
    }
    if (inside.load() == 2) {
      ++met;
    }
    return nullptr;
  };
  pool.post(job);
  pool.post(job);
  auto limit = std::chrono::steady_clock::now() + milliseconds(6000);
  while (met.load() < 2 && std::chrono::steady_clock::now() < limit) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_EQ(met.load(), 2) << "the jobs did not run side by side";
}

TEST_F(MysqlPoolTest, StopDropsQueuedJobsAndLateCompletions) {
  auto pool = std::make_unique<BlockingPool>(&loop_, 1);
  Gate gate;
  std::promise<void> started;
  std::atomic<bool> queued_job_ran{false};
  bool completion_ran = false;
  pool->post([&]() -> BlockingPool::Completion {
    started.set_value();
    gate.wait();
    return [&completion_ran] { completion_ran = true; };
  });
  pool->post([&]() -> BlockingPool::Completion {
    queued_job_ran = true;
    return nullptr;
  });
  ASSERT_EQ(started.get_future().wait_for(milliseconds(5000)), std::future_status::ready);
  EXPECT_EQ(pool->queuedJobs(), 1u);
  // stop() joins the thread, which is blocked until the gate opens.
  std::thread opener([&gate] {
    std::this_thread::sleep_for(milliseconds(100));
    gate.open();
  });
  auto before = std::chrono::steady_clock::now();
  pool->stop();
  auto waited = std::chrono::steady_clock::now() - before;
  opener.join();
  EXPECT_GE(waited, milliseconds(50)) << "stop() did not wait for the running job";
  EXPECT_FALSE(queued_job_ran.load());
  EXPECT_FALSE(pool->post([]() -> BlockingPool::Completion { return nullptr; }));
  pool.reset();
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_FALSE(completion_ran);
}

// The pattern MysqlCheck uses: the completion holds a ticket, not its target, and the
// target clears the ticket when it goes.
TEST_F(MysqlPoolTest, CompletionForATargetThatIsGoneIsDropped) {
  struct Target {
    int results = 0;
  };
  struct Ticket {
    Target* owner = nullptr;
  };
  BlockingPool pool(&loop_, 1);
  auto target = std::make_unique<Target>();
  auto ticket = std::make_shared<Ticket>(Ticket{target.get()});
  Gate gate;
  bool completion_ran = false;
  pool.post([&gate, &completion_ran, ticket]() -> BlockingPool::Completion {
    gate.wait();
    return [&completion_ran, ticket] {
      completion_ran = true;
      if (ticket->owner != nullptr) {
        ++ticket->owner->results;
      }
    };
  });
  ticket->owner = nullptr;
  target.reset();
  gate.open();
  ASSERT_TRUE(runUntil([&] { return completion_ran; }));
}

TEST_F(MysqlPoolTest, DestroyedFromItsOwnCompletion) {
  auto pool = std::make_unique<BlockingPool>(&loop_, 2);
  int ran = 0;
  std::promise<void> both_done;
  std::atomic<int> finished{0};
  for (int i = 0; i < 2; ++i) {
    pool->post([&]() -> BlockingPool::Completion {
      if (++finished == 2) {
        both_done.set_value();
      }
      // Both completions wait in one queue before the loop runs them.
      return [&] {
        ++ran;
        pool.reset();
      };
    });
  }
  ASSERT_EQ(both_done.get_future().wait_for(milliseconds(5000)), std::future_status::ready);
  ASSERT_TRUE(runUntil([&] { return pool == nullptr; }));
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(ran, 1) << "a completion ran after its pool was destroyed";
}

TEST_F(MysqlPoolTest, ThreadHooksRunOnEachThread) {
  std::atomic<int> started{0};
  std::atomic<int> exited{0};
  {
    BlockingPool pool(&loop_, 3, BlockingPool::ThreadHooks{[&] { ++started; }, [&] { ++exited; }});
    EXPECT_EQ(pool.threadCount(), 3);
  }
  EXPECT_EQ(started.load(), 3);
  EXPECT_EQ(exited.load(), 3);
}

}  // namespace
}  // namespace tandem
