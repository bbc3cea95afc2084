// internal::ns_per_tick(): the one calibration of the pool's cheap clock
// (pool/internal/ticks.h).
#include "pool/internal/ticks.h"

#include <chrono>
#include <cstdint>

#include "loop/internal/clock.h"

namespace weave::internal {

double ns_per_tick() noexcept {
#if defined(__x86_64__)
  static const double factor = [] {
    // 0.5 ms against steady_clock: the error is two clock reads (~50 ns)
    // in 0.5 ms, 0.01%.
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t k0 = ticks();
    auto t1 = t0;
    while (t1 - t0 < std::chrono::microseconds(500)) t1 = std::chrono::steady_clock::now();
    const std::uint64_t k1 = ticks();
    const double ns = std::chrono::duration<double, std::nano>(t1 - t0).count();
    return k1 > k0 ? ns / static_cast<double>(k1 - k0) : 1.0;
  }();
  return factor;
#else
  return 1.0;
#endif
}

}  // namespace weave::internal
