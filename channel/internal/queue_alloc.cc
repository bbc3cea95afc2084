#include "channel/internal/queue_alloc.h"

#include <cstdlib>

namespace weave::internal {
namespace {
thread_local int tl_failing = 0;  // live ScopedQueueAllocFailure on this thread
}

void* QueueTraits::malloc(std::size_t size) noexcept {
  if (tl_failing != 0) [[unlikely]] return nullptr;
  return std::malloc(size);
}

void QueueTraits::free(void* p) noexcept { std::free(p); }

ScopedQueueAllocFailure::ScopedQueueAllocFailure() noexcept { ++tl_failing; }
ScopedQueueAllocFailure::~ScopedQueueAllocFailure() { --tl_failing; }

}  // namespace weave::internal
