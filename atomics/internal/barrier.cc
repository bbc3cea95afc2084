#include "atomics/internal/barrier.h"

#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <mutex>
#include <thread>

#include "atomics/internal/spin_lock.h"

namespace weave::internal {

namespace {
long membarrier(int cmd) noexcept { return syscall(__NR_membarrier, cmd, 0, 0); }

bool probe() noexcept {
  const long cmds = membarrier(MEMBARRIER_CMD_QUERY);
  if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) return false;
  // Registration is per process and must precede the first expedited call.
  return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

// Test hook (see barrier.h): the errno to fail with and how many more calls
// fail (-1: all). Relaxed: a test sets it before the calls it affects, on
// the same thread or ordered by a thread start.
std::atomic<int> g_fail_errno{0};
std::atomic<int> g_fail_left{0};

std::atomic<std::uint64_t> g_failures{0};
std::atomic<std::uint64_t> g_retries{0};
std::atomic<std::uint64_t> g_ipi_fallbacks{0};

// One expedited membarrier: 0, or the errno it failed with.
int expedited() noexcept {
  if (g_fail_left.load(std::memory_order_relaxed) != 0) {
    const int left = g_fail_left.load(std::memory_order_relaxed);
    if (left > 0) g_fail_left.store(left - 1, std::memory_order_relaxed);
    return g_fail_errno.load(std::memory_order_relaxed);
  }
  return membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0 ? 0 : errno;
}

// membarrier(2) fails with ENOMEM when the kernel cannot allocate its cpumask
// (CONFIG_CPUMASK_OFFSTACK, memory pressure): worth retrying. EINTR/EAGAIN
// are not documented for it, but are transient wherever they come from.
bool transient(int err) noexcept { return err == ENOMEM || err == EINTR || err == EAGAIN; }

constexpr int kTransientRetries = 8;

void back_off(int attempt) noexcept {
  if (attempt < 2) {
    std::this_thread::yield();
    return;
  }
  // 50 us, 100 us, ... up to ~1.6 ms: memory pressure takes a while to ease.
  timespec ts{0, 50'000L << (attempt - 2 < 5 ? attempt - 2 : 5)};
  nanosleep(&ts, nullptr);
}

// A process-wide memory barrier that does not need membarrier: a permission
// reduction on a page this process has touched makes the kernel shoot down
// that page's TLB entries on every CPU that runs one of our threads, by an
// inter-processor interrupt; the interrupt is a full barrier on each such CPU
// (x86: interrupt entry and iret serialise), and mprotect returns only once
// every CPU has acknowledged. The trick Folly's asymmetricHeavyBarrier and
// .NET's FlushProcessWriteBuffers fall back on. Not a barrier where TLB
// invalidation is broadcast in hardware (arm64): there, false always.
bool tlb_shootdown_barrier() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  static SpinLock mu;
  static void* page = nullptr;
  static long page_size = 0;
  std::lock_guard lock(mu);
  if (page == nullptr) {
    page_size = sysconf(_SC_PAGESIZE);
    if (page_size <= 0) page_size = 4096;
    void* p = mmap(nullptr, static_cast<std::size_t>(page_size), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    page = p;
  }
  const auto size = static_cast<std::size_t>(page_size);
  if (mprotect(page, size, PROT_READ | PROT_WRITE) != 0) return false;
  *static_cast<volatile char*>(page) = 0;  // present and dirty: the next change must flush
  if (mprotect(page, size, PROT_NONE) != 0) return false;
  return true;
#else
  return false;
#endif
}

// membarrier failed for good after mode 1 was chosen. Fencing only this side
// would be unsound (one fence does not forbid the store-buffer outcome), so
// the process switches to symmetric fences — and makes the switch itself
// sound with one barrier that reaches every thread:
//
//  - mode 2 is stored first (seq_cst), then a process-wide barrier runs (a
//    TLB shootdown, else membarrier retried until it succeeds).
//  - A light side whose mode load comes after that barrier reached its CPU
//    sees 2 and fences itself from then on.
//  - A light side that read 1 did so before the barrier reached its CPU, so
//    its store was drained by that barrier, which returned before this heavy
//    side reads: this round is sound, and so is every later one (its store is
//    visible to every later heavy side).
//
// Serialised, so concurrent failing heavy sides switch once; one that comes
// after the switch is covered by the barrier of the one that made it (it
// completed before the lock was released).
SpinLock g_switch_mu;

void switch_to_fences() noexcept {
  std::lock_guard lock(g_switch_mu);
  if (g_barrier_mode.load(std::memory_order_seq_cst) == 2) return;
  g_barrier_mode.store(2, std::memory_order_seq_cst);
  for (int attempt = 0;; ++attempt) {
    if (tlb_shootdown_barrier()) {
      g_ipi_fallbacks.fetch_add(1, std::memory_order_relaxed);  // a counter: no ordering
      return;
    }
    if (expedited() == 0) return;
    back_off(attempt < 7 ? attempt : 7);
  }
}
}  // namespace

std::atomic<int> g_barrier_mode{0};

namespace {
// Whether the probe chose the asymmetric mode (it may have been left since).
bool probed_asymmetric() noexcept {
  // A function-local static: initialised once, thread-safely, and both sides
  // of every handshake read the same answer.
  static const bool available = [] {
    const bool a = probe();
    g_barrier_mode.store(a ? 1 : 2, std::memory_order_relaxed);
    return a;
  }();
  return available;
}
}  // namespace

bool asymmetric_barriers_available() noexcept {
  return probed_asymmetric() && g_barrier_mode.load(std::memory_order_relaxed) == 1;
}

void heavy_barrier() noexcept {
  if (!probed_asymmetric()) {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // fences on both sides from the start
    return;
  }
  if (g_barrier_mode.load(std::memory_order_relaxed) == 1) {
    for (int attempt = 0;; ++attempt) {
      const int err = expedited();
      if (err == 0) return;
      g_failures.fetch_add(1, std::memory_order_relaxed);  // counters: no ordering
      if (!transient(err) || attempt >= kTransientRetries) break;
      g_retries.fetch_add(1, std::memory_order_relaxed);
      back_off(attempt);
    }
  }
  // Switches, or — once switched — waits until the switch's process-wide
  // barrier has completed (a heavy side that saw mode 2 while the switch was
  // still under way would otherwise rely on a light side that skipped its
  // fence).
  switch_to_fences();
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void fail_membarrier_for_testing(int err, int times) noexcept {
  g_fail_errno.store(err, std::memory_order_relaxed);
  g_fail_left.store(times, std::memory_order_relaxed);
}

BarrierStats barrier_stats_approx() noexcept {
  return BarrierStats{g_failures.load(std::memory_order_relaxed),
                      g_retries.load(std::memory_order_relaxed),
                      g_ipi_fallbacks.load(std::memory_order_relaxed),
                      g_barrier_mode.load(std::memory_order_relaxed)};
}

}  // namespace weave::internal
