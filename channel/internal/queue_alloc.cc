#include "channel/internal/queue_alloc.h"

#include <atomic>
#include <cstdlib>

namespace weave::internal {
namespace {
thread_local int tl_failing = 0;  // live ScopedQueueAllocFailure on this thread
// relaxed: a statistic for tests, ordered by nothing.
std::atomic<std::size_t> g_allocations{0};
}  // namespace

void* QueueTraits::malloc(std::size_t size) noexcept {
  if (tl_failing != 0) [[unlikely]]
    return nullptr;
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size);
}

void QueueTraits::free(void* p) noexcept { std::free(p); }

std::size_t queue_allocation_count_approx() noexcept {
  return g_allocations.load(std::memory_order_relaxed);
}

ScopedQueueAllocFailure::ScopedQueueAllocFailure() noexcept { ++tl_failing; }
ScopedQueueAllocFailure::~ScopedQueueAllocFailure() { --tl_failing; }

}  // namespace weave::internal
