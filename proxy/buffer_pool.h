// Fixed-size read buffers, recycled per worker so that the data path does not call the
// allocator for every read. Not thread-safe: each worker owns one pool.
#pragma once

#include <cstddef>
#include <vector>

namespace tandem {

class BufferPool {
 public:
  static constexpr size_t kBufferSize = 32 * 1024;

  explicit BufferPool(size_t max_idle = 512) : max_idle_(max_idle) {}
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool() {
    for (char* b : idle_) {
      delete[] b;
    }
  }

  char* take() {
    if (idle_.empty()) {
      return new char[kBufferSize];
    }
    char* b = idle_.back();
    idle_.pop_back();
    return b;
  }

  // Keeps up to max_idle buffers for reuse; frees the rest, so an idle worker gives back what
  // a burst of traffic took.
  void give(char* b) {
    if (idle_.size() < max_idle_) {
      idle_.push_back(b);
    } else {
      delete[] b;
    }
  }

 private:
  size_t max_idle_;
  std::vector<char*> idle_;
};

}  // namespace tandem
