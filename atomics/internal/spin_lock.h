// weave::internal::SpinLock: a test-and-set lock for sections of a few
// instructions. Cheaper than a mutex on a signal path (one RMW to take, a
// plain store to give back); never held across anything that blocks.
// Lockable, so std::lock_guard works. Any thread. Never allocates.
//
// Spin, then sched_yield: under SCHED_FIFO (or SCHED_RR), a waiter that
// preempted the holder on the same core never lets it run again (yield only
// yields to equal or higher priorities), a livelock. weave does not support
// real-time scheduling classes for threads that use it; the same holds for
// the loop's shut-down wait (loop/internal/loop_core.h) and the inbox's
// publish wait (channel/internal/inbox.h).
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
