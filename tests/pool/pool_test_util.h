// Helpers shared by the pool's regression and stress tests: a one-shot gate
// with bounded waits, a flag a stuck task spins on, a fixed-size pool's
// options, and how a future settled. Test-only.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>

#include "pool/pool.h"
#include "tests/test_util.h"

namespace weave::pool_testing {

// A one-shot gate: open() lets every waiter through. Waits are bounded by
// kHangGuard, so a pool that never starts or never cancels a task fails the
// test instead of hanging it.
class Gate {
 public:
  void open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  // True once open(); false if `stop` was requested (or kHangGuard passed) first.
  bool wait(std::stop_token stop = {}) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, stop, ::weave::testing::kHangGuard, [this] { return open_; });
  }
  bool is_open() {
    std::lock_guard lock(mu_);
    return open_;
  }

 private:
  std::mutex mu_;
  std::condition_variable_any cv_;
  bool open_ = false;
};

// A flag a stuck task spins on, ignoring its stop token; released at the
// latest when the test's scope ends (a failed test never leaves a thread
// spinning).
struct SpinFlag {
  std::shared_ptr<std::atomic<bool>> released = std::make_shared<std::atomic<bool>>(false);
  void release() const { released->store(true, std::memory_order_release); }
  [[nodiscard]] bool is_released() const { return released->load(std::memory_order_acquire); }
  ~SpinFlag() { release(); }
};

// A pool of exactly `threads` workers.
inline PoolOptions fixed(std::size_t threads) {
  PoolOptions o;
  o.min_threads = threads;
  o.max_threads = threads;
  return o;
}

// The errc a settled future failed with; nullopt if it succeeded or has not settled.
template <class T>
std::optional<TaskErrc> errc_of(const TaskFuture<T>& f) {
  const TaskError* e = f.ready() ? f.error() : nullptr;
  if (e == nullptr) return std::nullopt;
  return e->errc();
}

}  // namespace weave::pool_testing
