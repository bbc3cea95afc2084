// For tests that must know, without sleeping, that threads (or asynchronous
// waiters) are parked in an atomics wait: the waiter list's own count.
#pragma once

#include <chrono>
#include <cstddef>
#include <thread>

#include "atomics/atomics.h"
#include "atomics/shared_view.h"
#include "tests/test_util.h"

namespace weave::testing {

// Spins (yielding) until exactly `n` waiters, blocking or asynchronous, are
// on view[i]; false if that did not happen within kHangGuard.
template <class T>
[[nodiscard]] bool wait_for_waiters(const SharedView<T>& view, std::size_t i, std::size_t n) {
  const auto deadline = std::chrono::steady_clock::now() + kHangGuard;
  while (internal::waiter_count_approx(view, i) != n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace weave::testing
