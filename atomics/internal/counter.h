// weave::internal::bump: adds to a counter that only the calling thread
// writes, with a relaxed load and store rather than a locked fetch_add,
// which would drain the store buffer on every call. Readers on other threads
// see some recent value. Never blocks. Never allocates.
#pragma once

#include <atomic>
#include <cstdint>

namespace weave::internal {

// `order` is the store's: std::memory_order_release when a reader that
// acquires the count must also see what was written before it (a plain
// store on x86, still no locked instruction).
inline void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1,
                 std::memory_order order = std::memory_order_relaxed) noexcept {
  counter.store(counter.load(std::memory_order_relaxed) + by, order);
}

}  // namespace weave::internal
