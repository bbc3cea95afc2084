#include "atomics/internal/barrier.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace weave::internal {

namespace {
long membarrier(int cmd) noexcept { return syscall(__NR_membarrier, cmd, 0, 0); }

bool probe() noexcept {
  const long cmds = membarrier(MEMBARRIER_CMD_QUERY);
  if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) return false;
  // Registration is per process and must precede the first expedited call.
  return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}
}  // namespace

std::atomic<int> g_barrier_mode{0};

bool asymmetric_barriers_available() noexcept {
  // A function-local static: initialised once, thread-safely, and both sides
  // of every handshake read the same answer.
  static const bool available = [] {
    const bool a = probe();
    g_barrier_mode.store(a ? 1 : 2, std::memory_order_relaxed);
    return a;
  }();
  return available;
}

void heavy_barrier() noexcept {
  if (!asymmetric_barriers_available() || membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

}  // namespace weave::internal
