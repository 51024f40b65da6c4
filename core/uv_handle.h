// RAII ownership of libuv handles.
//
// libuv closes handles asynchronously: after uv_close() the loop still touches the handle
// until the close callback runs, so its memory may be freed only there. UvHandle<T> keeps
// the handle in a heap block that outlives the owner when needed:
//
//   1. init(uv_tcp_init, loop) initialises the handle; the state becomes kOpen.
//   2. close(on_closed) calls uv_close once; later calls do nothing (closing twice is
//      harmless). on_closed runs from the close callback, after libuv is done with it.
//   3. The destructor closes an open handle and forgets on_closed (the owner is gone); the
//      block is freed by the close callback, never before.
//
// Requests (uv_write_t, uv_connect_t, uv_shutdown_t) pending on a closed stream still get
// their callbacks, with UV_ECANCELED, before the handle's close callback: an owner that may
// be deleted must count its requests too (see proxy/tcp_session.cpp).
#pragma once

#include <uv.h>

#include <functional>
#include <utility>

namespace tandem {

template <typename T>
class UvHandle {
 public:
  enum class State { kUninit, kOpen, kClosing, kClosed };

  UvHandle() : block_(new Block) {}
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  ~UvHandle() {
    if (block_->state == State::kOpen) {
      close();
    }
    if (block_->state == State::kClosing) {
      block_->on_closed = nullptr;  // the owner is gone: nobody to tell
      block_->owner_alive = false;  // the close callback frees the block
    } else {
      delete block_;
    }
  }

  T* get() { return &block_->handle; }
  const T* get() const { return &block_->handle; }
  uv_handle_t* handle() { return reinterpret_cast<uv_handle_t*>(&block_->handle); }
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&block_->handle); }
  State state() const { return block_->state; }
  bool isOpen() const { return block_->state == State::kOpen; }

  // Runs init(loop, handle, args...) (for example uv_tcp_init) and returns its result.
  template <typename InitFn, typename... Args>
  int init(InitFn init_fn, uv_loop_t* loop, Args&&... args) {
    int rc = init_fn(loop, &block_->handle, std::forward<Args>(args)...);
    if (rc == 0) {
      block_->state = State::kOpen;
    }
    return rc;
  }

  // Starts closing; on_closed runs once libuv has released the handle. A handle that was
  // never opened counts as closed at once (on_closed runs now). Calls after the first do
  // nothing.
  void close(std::function<void()> on_closed = nullptr) {
    if (block_->state == State::kUninit) {
      block_->state = State::kClosed;
      if (on_closed) {
        on_closed();
      }
      return;
    }
    if (block_->state != State::kOpen) {
      return;
    }
    block_->state = State::kClosing;
    block_->on_closed = std::move(on_closed);
    block_->handle.data = block_;  // the owner's data pointer is no longer needed
    uv_close(handle(), &UvHandle::onClose);
  }

 private:
  struct Block {
    T handle{};
    State state = State::kUninit;
    std::function<void()> on_closed;
    bool owner_alive = true;
  };

  static void onClose(uv_handle_t* h) {
    Block* block = static_cast<Block*>(h->data);
    block->state = State::kClosed;
    auto done = std::move(block->on_closed);
    if (!block->owner_alive) {
      delete block;
    }
    // `done` may destroy the owner, whose destructor then frees the (closed) block.
    if (done) {
      done();
    }
  }

  Block* block_;
};

}  // namespace tandem
