// Where the message queues get their memory: std::malloc, unless the calling
// thread asked (in a test) for those allocations to fail. A post that cannot
// get a block reports kOutOfMemory; this is how tests reach that path.
#pragma once

#include <concurrentqueue/concurrentqueue.h>

#include <cstddef>

namespace weave::internal {

// The traits of every message queue (channel/internal/inbox.h).
struct QueueTraits : moodycamel::ConcurrentQueueDefaultTraits {
  static void* malloc(std::size_t size) noexcept;
  static void free(void* p) noexcept;
};

// Allocations the message queues made so far in the process (blocks, block
// indexes, producers), for tests that check what a pattern of use costs. Any
// thread. Never blocks. Never allocates.
[[nodiscard]] std::size_t queue_allocation_count_approx() noexcept;

// While one lives, every allocation a message queue makes on the calling
// thread fails: a post that needs a new block (or a bigger block index)
// reports kOutOfMemory. Nests. For tests. Never allocates.
class ScopedQueueAllocFailure {
 public:
  ScopedQueueAllocFailure() noexcept;
  ~ScopedQueueAllocFailure();
  ScopedQueueAllocFailure(const ScopedQueueAllocFailure&) = delete;
  ScopedQueueAllocFailure& operator=(const ScopedQueueAllocFailure&) = delete;
};

}  // namespace weave::internal
