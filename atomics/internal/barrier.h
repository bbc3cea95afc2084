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
// When membarrier fails after the asymmetric mode was chosen: ENOMEM (the
// kernel could not allocate its cpumask) and EINTR/EAGAIN are retried a few
// times with back-off; if it keeps failing, the process switches for good to
// seq_cst fences on both sides, and makes the switch sound with one
// process-wide barrier that does not need membarrier (an mprotect TLB
// shootdown on x86; elsewhere membarrier retried until it succeeds). Never is
// one side silently weakened: see switch_to_fences() in barrier.cc.
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
#include <cstdint>

namespace weave::internal {

// True when heavy_barrier() is membarrier and light_barrier() a compiler
// barrier. Decided once, on first use, by whichever side comes first; it
// turns false for good if membarrier later fails for good (see the top).
bool asymmetric_barriers_available() noexcept;

// 0 until decided, then 1 (asymmetric) or 2 (fences); 1 may become 2 once,
// never back. Read inline by light_barrier(), so the posting path pays a
// load and a branch, no call.
extern std::atomic<int> g_barrier_mode;

inline void light_barrier() noexcept {
  // relaxed: the first decision is made under a static guard before any
  // barrier depends on it; the later switch 1 -> 2 is followed by a
  // process-wide barrier, so a load that still sees 1 is covered by it (see
  // switch_to_fences() in barrier.cc).
  int mode = g_barrier_mode.load(std::memory_order_relaxed);
  if (mode == 0) mode = asymmetric_barriers_available() ? 1 : 2;
  if (mode == 1) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

// Any thread. Never allocates. Blocks only while retrying a failing
// membarrier (microseconds to a few milliseconds, see the top).
void heavy_barrier() noexcept;

// --- for tests ---------------------------------------------------------------

// Makes the next `times` expedited membarrier calls (-1: all of them) fail
// with `err` instead of being made; (0, 0) restores the real calls. Test
// only: call it before the barriers it should affect. Any thread.
void fail_membarrier_for_testing(int err, int times) noexcept;

struct BarrierStats {
  std::uint64_t failures = 0;       // membarrier calls that failed
  std::uint64_t retries = 0;        // of those, retried as transient
  std::uint64_t ipi_fallbacks = 0;  // switches made sound by a TLB shootdown
  int mode = 0;                     // g_barrier_mode now
};
// Relaxed counters: for tests and diagnostics. Any thread. Never blocks.
[[nodiscard]] BarrierStats barrier_stats_approx() noexcept;

}  // namespace weave::internal
