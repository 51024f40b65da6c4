// UvHandle: memory is freed only in the close callback, closing twice is harmless, and a
// request pending on a closed stream still gets its (cancelled) callback safely.
#include "core/uv_handle.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <memory>
#include <string>

namespace tandem {
namespace {

class UvLoop {
 public:
  UvLoop() { uv_loop_init(&loop_); }
  ~UvLoop() {
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was left open";
  }
  uv_loop_t* get() { return &loop_; }

 private:
  uv_loop_t loop_;
};

TEST(UvHandle, CloseCallbackRunsOnceAfterLoopReleasesHandle) {
  UvLoop loop;
  UvHandle<uv_timer_t> timer;
  ASSERT_EQ(timer.init(uv_timer_init, loop.get()), 0);
  EXPECT_TRUE(timer.isOpen());
  int closed = 0;
  timer.close([&] { ++closed; });
  timer.close([&] { closed += 100; });  // second close: ignored
  EXPECT_EQ(timer.state(), UvHandle<uv_timer_t>::State::kClosing);
  EXPECT_EQ(closed, 0) << "close is asynchronous";
  uv_run(loop.get(), UV_RUN_DEFAULT);
  EXPECT_EQ(closed, 1);
  EXPECT_EQ(timer.state(), UvHandle<uv_timer_t>::State::kClosed);
  timer.close([&] { closed += 100; });  // after closed: still ignored
  EXPECT_EQ(closed, 1);
}

TEST(UvHandle, NeverOpenedHandleClosesAtOnce) {
  UvHandle<uv_tcp_t> tcp;
  bool closed = false;
  tcp.close([&] { closed = true; });
  EXPECT_TRUE(closed);
}

TEST(UvHandle, DestroyingOwnerWhileClosingIsSafe) {
  UvLoop loop;
  bool called = false;
  {
    auto timer = std::make_unique<UvHandle<uv_timer_t>>();
    ASSERT_EQ(timer->init(uv_timer_init, loop.get()), 0);
    timer->close([&] { called = true; });
    timer.reset();  // owner gone; the block must survive until the close callback
  }
  uv_run(loop.get(), UV_RUN_DEFAULT);
  EXPECT_FALSE(called) << "the owner was gone: nobody left to tell";
}

TEST(UvHandle, DestroyingOpenOwnerClosesTheHandle) {
  UvLoop loop;
  {
    UvHandle<uv_timer_t> timer;
    ASSERT_EQ(timer.init(uv_timer_init, loop.get()), 0);
  }
  // ~UvLoop runs the loop and asserts that uv_loop_close finds nothing open.
}

TEST(UvHandle, OwnerMayDeleteItselfFromCloseCallback) {
  UvLoop loop;
  auto* owner = new UvHandle<uv_timer_t>;
  ASSERT_EQ(owner->init(uv_timer_init, loop.get()), 0);
  bool deleted = false;
  owner->close([&] {
    delete owner;
    deleted = true;
  });
  uv_run(loop.get(), UV_RUN_DEFAULT);
  EXPECT_TRUE(deleted);
}

// A connect pending on a stream that is closed gets UV_ECANCELED before the close callback.
TEST(UvHandle, PendingConnectIsCancelledBeforeCloseCallback) {
  UvLoop loop;
  UvHandle<uv_tcp_t> listener;
  ASSERT_EQ(listener.init(uv_tcp_init, loop.get()), 0);
  sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  ASSERT_EQ(uv_tcp_bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), 0), 0);
  ASSERT_EQ(uv_listen(listener.stream(), 1, [](uv_stream_t*, int) {}), 0);
  sockaddr_storage bound;
  int len = sizeof(bound);
  uv_tcp_getsockname(listener.get(), reinterpret_cast<sockaddr*>(&bound), &len);

  std::string order;
  UvHandle<uv_tcp_t> client;
  ASSERT_EQ(client.init(uv_tcp_init, loop.get()), 0);
  uv_connect_t req;
  req.data = &order;
  ASSERT_EQ(uv_tcp_connect(&req, client.get(), reinterpret_cast<sockaddr*>(&bound),
                           [](uv_connect_t* r, int status) {
                             auto* o = static_cast<std::string*>(r->data);
                             *o += status == UV_ECANCELED ? "cancelled," : "connected,";
                           }),
            0);
  client.close([&] { order += "closed"; });
  listener.close();
  uv_run(loop.get(), UV_RUN_DEFAULT);
  EXPECT_EQ(order, "cancelled,closed");
}

}  // namespace
}  // namespace tandem
