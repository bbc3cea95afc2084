// weave::internal asymmetric barriers: a pair of fences for a Dekker-style
// handshake where one side runs constantly (a producer posting messages) and
// the other rarely (a consumer about to park, or closing).
//
//   fast side:  store A; light_barrier(); load B;
//   slow side:  store B; heavy_barrier(); load A;
//
// Guarantee, as for two seq_cst fences: at least one side sees the other's
// store. light_barrier() is a compiler barrier only; heavy_barrier() makes
// every other running thread of the process execute a full memory barrier
// (Linux membarrier(2), MEMBARRIER_CMD_PRIVATE_EXPEDITED), which stands in
// for the fence the fast side skipped. Where membarrier is unavailable (old
// kernel, seccomp), both are seq_cst fences: slower, equally correct.
//
// Why: a fence (or any locked RMW) on the posting path drains the store
// buffer that the enqueue just filled, and halves a port's throughput.
//
// Threading: any thread. light_barrier never blocks; heavy_barrier makes one
// system call (~0.5-5 us, it interrupts the CPUs running this process's
// threads), so it belongs on slow paths only. Neither allocates.
// ThreadSanitizer does not model either barrier; code built on them keeps all
// shared state in atomics so that it has nothing to report.
#pragma once

#include <atomic>

namespace weave::internal {

// True when heavy_barrier() is membarrier and light_barrier() a compiler
// barrier. Decided once, on first use, by whichever side comes first.
bool asymmetric_barriers_available() noexcept;

// 0 until decided, then 1 (asymmetric) or 2 (fences). Read inline by
// light_barrier(), so the posting path pays a load and a branch, no call.
extern std::atomic<int> g_barrier_mode;

inline void light_barrier() noexcept {
  // relaxed: the mode is written once, before any barrier depends on it
  // (asymmetric_barriers_available() runs the probe under a static guard).
  int mode = g_barrier_mode.load(std::memory_order_relaxed);
  if (mode == 0) mode = asymmetric_barriers_available() ? 1 : 2;
  if (mode == 1) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

void heavy_barrier() noexcept;

}  // namespace weave::internal
