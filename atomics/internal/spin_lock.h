// weave::internal::SpinLock: a test-and-set lock for sections of a few
// instructions. Cheaper than a mutex on a signal path (one RMW to take, a
// plain store to give back); never held across anything that blocks.
// Lockable, so std::lock_guard works. Any thread. Never allocates.
#pragma once

#include <atomic>
#include <thread>

#include "atomics/internal/futex.h"  // cpu_relax

namespace weave::internal {

class SpinLock {
 public:
  void lock() noexcept {
    while (flag_.exchange(true, std::memory_order_acquire)) {
      // The holder may have been preempted (by us, even, on a shared core):
      // after a short spin, let it run.
      for (int spins = 0; flag_.load(std::memory_order_relaxed); ++spins) {
        if (spins < 128) {
          cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  void unlock() noexcept { flag_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> flag_{false};
};

}  // namespace weave::internal
