// The store-buffer litmus test, for the barrier tests: each round, the fast
// side stores x and reads y behind its barrier, the slow side stores y and
// reads x behind its own, both started together by a per-round handshake.
// Without barriers x86 lets both reads see 0 (each store still in its core's
// store buffer); with a barrier pair that works, at least one read must see
// the other side's store.
//
// What it can show: with fast barriers on both sides (fences), the two sides'
// store-then-load windows overlap often enough that a missing fence shows up
// as both-zero rounds (the control run, with compiler barriers only, counts
// them). What it cannot show: that heavy_barrier() (membarrier, microseconds
// long) really fences the other core — a slow no-op on that side would pass
// too, because the fast side's store drains long before the slow side reads.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

#include "atomics/internal/futex.h"  // cpu_relax

namespace weave::testing {

struct LitmusCounts {
  int both_zero = 0;  // forbidden when both barriers work
  int fast_saw = 0;   // only the fast side saw the other's store
  int slow_saw = 0;   // only the slow side did
  int both_saw = 0;
};

template <class FastBarrier, class SlowBarrier>
LitmusCounts store_buffer_litmus(int rounds, FastBarrier fast_barrier, SlowBarrier slow_barrier) {
  // Each variable on lines of its own, so each store really sits in its
  // core's store buffer while the other core reads.
  alignas(128) std::atomic<int> x{0};
  alignas(128) std::atomic<int> y{0};
  alignas(128) std::atomic<int> fast_ready{-1};  // round the fast side is at
  alignas(128) std::atomic<int> slow_ready{-1};
  alignas(128) std::atomic<int> fast_read{-1};  // what it read, once done
  LitmusCounts counts;
  auto wait_until = [](auto&& ready) {
    for (int i = 1; !ready(); ++i) {
      internal::cpu_relax();
      if ((i & 4095) == 0) std::this_thread::yield();  // a shared core
    }
  };
  std::thread fast([&] {
    for (int r = 0; r < rounds; ++r) {
      fast_ready.store(r, std::memory_order_release);
      wait_until([&] { return slow_ready.load(std::memory_order_acquire) == r; });
      x.store(1, std::memory_order_relaxed);
      fast_barrier();
      const int r1 = y.load(std::memory_order_relaxed);
      fast_read.store(r1, std::memory_order_release);
      // The slow side resets x and y for the next round only after it took r1.
      wait_until([&] { return fast_read.load(std::memory_order_acquire) == -1; });
    }
  });
  for (int r = 0; r < rounds; ++r) {
    slow_ready.store(r, std::memory_order_release);
    wait_until([&] { return fast_ready.load(std::memory_order_acquire) == r; });
    y.store(1, std::memory_order_relaxed);
    slow_barrier();
    const int r2 = x.load(std::memory_order_relaxed);
    int r1 = -1;
    wait_until([&] { return (r1 = fast_read.load(std::memory_order_acquire)) != -1; });
    if (r1 == 0 && r2 == 0) ++counts.both_zero;
    if (r1 == 1 && r2 == 0) ++counts.fast_saw;
    if (r1 == 0 && r2 == 1) ++counts.slow_saw;
    if (r1 == 1 && r2 == 1) ++counts.both_saw;
    x.store(0, std::memory_order_relaxed);
    y.store(0, std::memory_order_relaxed);
    fast_read.store(-1, std::memory_order_release);
  }
  fast.join();
  return counts;
}

}  // namespace weave::testing
