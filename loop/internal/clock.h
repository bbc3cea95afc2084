// The steady clock as a count of nanoseconds: for timestamps kept in atomics
// (worker and pool activity) and for deadlines checked on hot paths (a
// port's batch building).
#pragma once

#include <chrono>
#include <cstdint>

namespace weave::internal {

// Any thread. Never blocks. Never allocates.
inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace weave::internal
