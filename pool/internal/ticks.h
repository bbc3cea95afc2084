// A cheap clock for timing every task: the CPU's time-stamp counter where it
// is invariant (x86-64: constant_tsc + nonstop_tsc, which every x86-64 CPU
// weave targets has and Linux checks before it trusts the TSC), read with
// one instruction (~10 ns here, against ~25 ns for steady_clock::now() through
// the vDSO). Converted to nanoseconds with a factor calibrated once against
// steady_clock. Elsewhere it is steady_clock in nanoseconds. Private to //pool.
//
// Only for durations (a task's wait and run time); deadlines use
// steady_clock. Any thread. Never blocks (after the first calibration, which
// takes ~0.5 ms). Never allocates.
#pragma once

#include <chrono>
#include <cstdint>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "loop/internal/clock.h"

namespace weave::internal {

inline std::uint64_t ticks() noexcept {
#if defined(__x86_64__)
  return __rdtsc();
#else
  return static_cast<std::uint64_t>(now_ns());
#endif
}

// Nanoseconds per tick; calibrated on the first call.
double ns_per_tick() noexcept;

// The nanoseconds from `from` to `to` (0 if `to` is earlier: two CPUs'
// counters may differ by a few ticks).
inline std::uint64_t ticks_to_ns(std::uint64_t from, std::uint64_t to, double ns_per) noexcept {
  return to > from ? static_cast<std::uint64_t>(static_cast<double>(to - from) * ns_per) : 0;
}

}  // namespace weave::internal
